"""What one checkpoint's validation costs on DIV2K-size images, the old way and the new.

Old (until issue 12): every float output copied to the host and kept, with a float copy of its HR image,
then all scored on the CPU in numpy. New (`train_proxy.validation_psnr`): scored on the device, one image
at a time, against the uint8 HR, one integer per image read back at the end. Both give the same PSNR.
A tiny network keeps the forward pass small, so the figures show the scoring's own cost; synthetic
2040x1356 HR images (LR 510x339, the DIV2K validation size) stand in for DIV2K.

    python3 -m bench.validation_cost                  # CPU, 4 images, 2 repeats
    python3 -m bench.validation_cost --device cuda --images 100
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
from torch import nn

from bench.common import write_result
from data import ImagePair, to_tensor
from evaluators.device import resolve_device
from evaluators.quality import to_uint8_image
from spaces import ArchConfig, build_model
from train_proxy import NonFiniteError, validation_psnr

TINY = ArchConfig(block="rlfb", num_blocks=1, channels=8)
HR_SIZE = (1356, 2040)  # DIV2K validation: 2040x1356 (width x height)


def synthetic_pairs(count: int, *, seed: int = 0) -> list[ImagePair]:
    """`count` random DIV2K-size pairs: the content does not change what scoring costs."""
    rng = np.random.default_rng(seed)
    height, width = HR_SIZE
    return [ImagePair(name=f"synthetic{k}", hr=rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8),
                      lr=rng.integers(0, 256, size=(height // 4, width // 4, 3), dtype=np.uint8))
            for k in range(count)]


@torch.inference_mode()
def old_validation_psnr(model: nn.Module, pairs: list[ImagePair], *, device: torch.device) -> tuple[float, int]:
    """The pre-issue-12 validation, as it was: (mean PSNR, bytes of float images held until the end)."""
    model.eval()
    outputs = []
    for pair in pairs:
        lr, hr = pair.tensors()
        sr = model(lr.to(device)).float()
        if not bool(torch.isfinite(sr).all()):
            raise NonFiniteError(f"the model's output on validation image {pair.name} is not finite")
        outputs.append((sr.cpu(), hr))
    held = sum(sr.numel() * sr.element_size() + hr.numel() * hr.element_size() for sr, hr in outputs)
    values = []
    for sr, hr in outputs:  # the numpy scoring of the old evaluators.quality.challenge_psnr
        sr_image, hr_image = to_uint8_image(sr)[4:-4, 4:-4], to_uint8_image(hr)[4:-4, 4:-4]
        mse = np.mean((sr_image.astype(np.float64) - hr_image.astype(np.float64)) ** 2)
        values.append(math.inf if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse)))
    return float(np.mean(values)), held


@torch.inference_mode()
def forward_only(model: nn.Module, pairs: list[ImagePair], *, device: torch.device) -> None:
    for pair in pairs:
        model(to_tensor(pair.lr).to(device))


def _timed(function, *, device: torch.device, repeats: int) -> tuple[list[float], object]:
    seconds, value = [], None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        begin = time.perf_counter()
        value = function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - begin)
    return seconds, value


def measure(*, device: torch.device, images: int, repeats: int) -> dict:
    """Seconds per checkpoint (median of `repeats`), old and new, with the forward passes alone beside them."""
    pairs = synthetic_pairs(images)
    torch.manual_seed(0)
    model = build_model(TINY).to(device)
    old_s, (old_psnr, held) = _timed(lambda: old_validation_psnr(model, pairs, device=device), device=device,
                                     repeats=repeats)
    new_s, new_psnr = _timed(lambda: validation_psnr(model, pairs, device=device), device=device, repeats=repeats)
    forward_s, _ = _timed(lambda: forward_only(model, pairs, device=device), device=device, repeats=repeats)
    old, new, forward = (statistics.median(values) for values in (old_s, new_s, forward_s))
    return {
        "images": images, "hr_size": f"{HR_SIZE[1]}x{HR_SIZE[0]}", "model": TINY.describe(), "repeats": repeats,
        "old_s": old, "new_s": new, "forward_only_s": forward, "old_samples_s": old_s, "new_samples_s": new_s,
        "old_scoring_s_per_image": (old - forward) / images, "new_scoring_s_per_image": (new - forward) / images,
        "old_held_mb": held / 1024**2, "new_held_bytes_per_image": 8,
        "psnr_old": old_psnr, "psnr_new": new_psnr, "same_psnr": old_psnr == new_psnr,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--name", default="validation_cost")
    args = parser.parse_args(argv)
    figures = measure(device=resolve_device(args.device), images=args.images, repeats=args.repeats)
    print(f"{figures['images']} images {figures['hr_size']}, {figures['model']} on {args.device}: one checkpoint "
          f"{figures['old_s']:.2f} s old, {figures['new_s']:.2f} s new (forward passes alone "
          f"{figures['forward_only_s']:.2f} s); scoring {figures['old_scoring_s_per_image']:.3f} -> "
          f"{figures['new_scoring_s_per_image']:.3f} s an image; {figures['old_held_mb']:.0f} MB held -> none; "
          f"same PSNR: {figures['same_psnr']}")
    write_result(args.name, {"settings": vars(args), **figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
