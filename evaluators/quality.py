"""Image quality exactly as the NTIRE efficient-SR challenge scores it.

The challenge rounds the model output to uint8 RGB, crops the HR image to a multiple of the scale,
cuts a 4-pixel border and computes PSNR over all three RGB channels (no Y channel). Reported
figures are means of per-image PSNRs. The scoring functions take one image as a (3, H, W) or
(1, 3, H, W) float tensor in [0, 1]; `quantize` and `squared_error` work on the image's device, so
that validation on a GPU moves one number per image to the host instead of the image.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from skimage.metrics import structural_similarity


def quantize(t: torch.Tensor) -> torch.Tensor:
    """The (3, H, W) uint8 image of a [0, 1] RGB tensor, on its device: clamp, x255, round (the kit's tensor2uint).

    The arithmetic is float32, as in the challenge. NaN has no uint8 value: callers check for it (this
    function does not, so that scoring on a GPU need not wait for the device at every image).
    """
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected one RGB image of shape (3, H, W) or (1, 3, H, W), got {tuple(t.shape)}")
    return t.detach().to(torch.float32).clamp(0, 1).mul(255.0).round().to(torch.uint8)


def _checked_quantize(t: torch.Tensor) -> torch.Tensor:
    """`quantize`, with NaN refused (it would turn into an arbitrary pixel)."""
    image = quantize(t)
    if torch.isnan(t).any():
        raise ValueError("image contains NaN")
    return image


def to_uint8_image(t: torch.Tensor) -> np.ndarray:
    """The (H, W, 3) uint8 numpy image of a [0, 1] RGB tensor (see `quantize`); NaN raises."""
    return _checked_quantize(t).cpu().permute(1, 2, 0).numpy()


def challenge_crops(sr: torch.Tensor, hr: torch.Tensor, *, scale: int,
                    border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (3, h, w) uint8 SR and HR images the challenge compares: modcropped to `scale`, `border` cut off."""
    # An SR image of the uncropped HR size is cropped the same way; any other mismatch is an error.
    sr_image, hr_image = _modcrop(sr, scale), _modcrop(hr, scale)
    height, width = hr_image.shape[1:]
    if sr_image.shape != hr_image.shape:
        raise ValueError(
            f"sr shape {tuple(sr.shape)} does not match hr shape {tuple(hr.shape)} "
            f"(hr cropped to a multiple of {scale}: {height}x{width})"
        )
    if 2 * border >= min(height, width):
        raise ValueError(f"border {border} leaves nothing of a {height}x{width} image")
    if border:
        sr_image = sr_image[:, border:-border, border:-border]
        hr_image = hr_image[:, border:-border, border:-border]
    return sr_image, hr_image


def _modcrop(image: torch.Tensor, scale: int) -> torch.Tensor:
    return image[:, : image.shape[1] - image.shape[1] % scale, : image.shape[2] - image.shape[2] % scale]


def squared_error(sr: torch.Tensor, hr: torch.Tensor, *, scale: int = 4, border: int = 4) -> tuple[torch.Tensor, int]:
    """(sum of squared differences, pixel values compared) of two uint8 (3, H, W) images on the challenge's crops.

    The sum is an int64 tensor on the images' device, exact (the float64 mean of the challenge adds
    integers below 2**53, exactly too), so the host reads one number per image and only when it wants it.
    """
    sr_image, hr_image = challenge_crops(sr, hr, scale=scale, border=border)
    difference = sr_image.to(torch.int32) - hr_image.to(torch.int32)
    return difference.square().sum(dtype=torch.int64), difference.numel()


def psnr_from_squared_error(total: int, count: int) -> float:
    """PSNR in dB of 8-bit images whose squared differences sum to `total` over `count` values; inf for 0."""
    mse = total / count
    if mse == 0:
        return math.inf
    return float(20 * math.log10(255.0 / math.sqrt(mse)))


def challenge_psnr(sr: torch.Tensor, hr: torch.Tensor, *, scale: int = 4, border: int = 4) -> float:
    """PSNR in dB of one image, RGB, on the challenge's uint8 crops; inf for identical crops."""
    total, count = squared_error(_checked_quantize(sr), _checked_quantize(hr), scale=scale, border=border)
    return psnr_from_squared_error(int(total), count)


def challenge_ssim(sr: torch.Tensor, hr: torch.Tensor, *, scale: int = 4, border: int = 4) -> float:
    """SSIM of one image on the same uint8 RGB crops as `challenge_psnr` (an extra; the challenge ranks PSNR)."""
    crops = challenge_crops(_checked_quantize(sr), _checked_quantize(hr), scale=scale, border=border)
    sr_image, hr_image = (image.permute(1, 2, 0).cpu().numpy() for image in crops)
    return float(structural_similarity(sr_image, hr_image, channel_axis=2, data_range=255))


def mean_psnr(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], **kw: int) -> float:
    """The mean of per-image `challenge_psnr`s over (sr, hr) pairs, as the challenge reports it."""
    return average_psnr([challenge_psnr(sr, hr, **kw) for sr, hr in pairs])


def average_psnr(values: list[float]) -> float:
    """The challenge's figure for a set of images: the mean of their PSNRs (not the PSNR of the mean error)."""
    if not values:
        raise ValueError("a mean PSNR needs at least one image")
    return float(np.mean(values))
