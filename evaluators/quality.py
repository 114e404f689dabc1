"""Image quality exactly as the NTIRE efficient-SR challenge scores it.

The challenge rounds the model output to uint8 RGB, crops the HR image to a multiple of the scale,
cuts a 4-pixel border and computes PSNR over all three RGB channels (no Y channel). Reported
figures are means of per-image PSNRs. Every function here takes one image as a (3, H, W) or
(1, 3, H, W) float tensor in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from skimage.metrics import structural_similarity


def to_uint8_image(t: torch.Tensor) -> np.ndarray:
    """The (H, W, 3) uint8 image of a [0, 1] RGB tensor: clamp, x255, round (the challenge's tensor2uint).

    The arithmetic is float32, as in the challenge. NaN has no uint8 value, so it raises instead of
    turning into an arbitrary pixel.
    """
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected one RGB image of shape (3, H, W) or (1, 3, H, W), got {tuple(t.shape)}")
    t = t.detach().to("cpu", torch.float32)
    if torch.isnan(t).any():
        raise ValueError("image contains NaN")
    return t.clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    return image[: image.shape[0] - image.shape[0] % scale, : image.shape[1] - image.shape[1] % scale]


def _challenge_crops(sr: torch.Tensor, hr: torch.Tensor, *, scale: int, border: int) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 SR and HR images the challenge compares: modcropped to `scale`, `border` cut off."""
    # An SR image of the uncropped HR size is cropped the same way; any other mismatch is an error.
    sr_image, hr_image = _modcrop(to_uint8_image(sr), scale), _modcrop(to_uint8_image(hr), scale)
    height, width = hr_image.shape[:2]
    if sr_image.shape != hr_image.shape:
        raise ValueError(
            f"sr shape {tuple(sr.shape)} does not match hr shape {tuple(hr.shape)} "
            f"(hr cropped to a multiple of {scale}: {height}x{width})"
        )
    if 2 * border >= min(height, width):
        raise ValueError(f"border {border} leaves nothing of a {height}x{width} image")
    if border:
        sr_image = sr_image[border:-border, border:-border]
        hr_image = hr_image[border:-border, border:-border]
    return sr_image, hr_image


def challenge_psnr(sr: torch.Tensor, hr: torch.Tensor, *, scale: int = 4, border: int = 4) -> float:
    """PSNR in dB of one image, RGB, on the challenge's uint8 crops; inf for identical crops."""
    sr_image, hr_image = _challenge_crops(sr, hr, scale=scale, border=border)
    mse = np.mean((sr_image.astype(np.float64) - hr_image.astype(np.float64)) ** 2)
    if mse == 0:
        return math.inf
    return float(20 * math.log10(255.0 / math.sqrt(mse)))


def challenge_ssim(sr: torch.Tensor, hr: torch.Tensor, *, scale: int = 4, border: int = 4) -> float:
    """SSIM of one image on the same uint8 RGB crops as `challenge_psnr` (an extra; the challenge ranks PSNR)."""
    sr_image, hr_image = _challenge_crops(sr, hr, scale=scale, border=border)
    return float(structural_similarity(sr_image, hr_image, channel_axis=2, data_range=255))


def mean_psnr(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], **kw: int) -> float:
    """The mean of per-image `challenge_psnr`s over (sr, hr) pairs, as the challenge reports it."""
    values = [challenge_psnr(sr, hr, **kw) for sr, hr in pairs]
    if not values:
        raise ValueError("mean_psnr needs at least one (sr, hr) pair")
    return float(np.mean(values))
