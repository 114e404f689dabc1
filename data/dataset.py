"""The in-memory dataset every loader returns: aligned uint8 LR/HR pairs, split into train and validation."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from data.bicubic import bicubic_downscale, crop_to_multiple

SCALE = 4
# The challenge's PSNR cuts 4 HR pixels off each side (evaluators.quality): a validation image keeps some
# pixels only when its LR side is 3 or more (HR 12).
PSNR_BORDER = 4
SMALLEST_VALID_LR = 2 * PSNR_BORDER // SCALE + 1


class DataError(ValueError):
    """Unusable input data; the message names the file or folder and how to fix it."""


@dataclass(frozen=True, eq=False)
class ImagePair:
    """One image: HR (4h, 4w, 3) and its LR (h, w, 3), both uint8 RGB, held read-only in memory.

    path: the HR file it was read from (None for the embedded photographs), named by errors.
    """

    name: str
    hr: np.ndarray
    lr: np.ndarray
    path: str | None = None

    def __post_init__(self) -> None:
        for label, image in (("hr", self.hr), ("lr", self.lr)):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise DataError(f"{self.where}: {label} must be a uint8 (H, W, 3) array, got "
                                 f"{image.dtype} {image.shape}")
        if min(self.lr.shape[:2]) < 1:
            raise DataError(f"{self.where}: image is smaller than {SCALE}x{SCALE} pixels; remove it")
        if self.hr.shape != (self.lr.shape[0] * SCALE, self.lr.shape[1] * SCALE, 3):
            raise DataError(f"{self.where}: hr {self.hr.shape[:2]} is not x{SCALE} of lr {self.lr.shape[:2]}")
        for image in (self.hr, self.lr):
            image.setflags(write=False)  # pairs are shared (cached, fork-shared by workers): never mutated

    @property
    def where(self) -> str:
        """The image as errors name it: its file, else its name."""
        return self.path or self.name

    @classmethod
    def from_hr(cls, name: str, hr: np.ndarray, *, path: str | None = None) -> ImagePair:
        """HR cropped to a multiple of 4 and its MATLAB-compatible bicubic LR (how DIV2K's LR was made)."""
        check_hr_size(hr, where=path or name)
        hr = crop_to_multiple(hr, multiple=SCALE)
        return cls(name=name, hr=hr, lr=bicubic_downscale(hr, scale=SCALE), path=path)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR) as (1, 3, H, W) float32 tensors in [0, 1]."""
        return to_tensor(self.lr), to_tensor(self.hr)


@dataclass(frozen=True)
class SRDataset:
    """Training and validation pairs, with where they and their LR images came from.

    valid_set: which validation set was read (DIV2K_valid, DIV2K_LSDIR_valid, or the embedded photographs).
    """

    source: str
    valid_set: str
    train: tuple[ImagePair, ...]
    valid: tuple[ImagePair, ...]
    train_lr: str
    valid_lr: str

    def __post_init__(self) -> None:
        if not self.train or not self.valid:
            raise DataError(f"{self.source}: needs at least one training and one validation image "
                            f"(got {len(self.train)} and {len(self.valid)})")

    def describe_valid(self) -> str:
        """The validation set and its size, as reports say it: e.g. `DIV2K_LSDIR_valid (200 images)`."""
        return f"{self.valid_set} ({len(self.valid)} image{'s' if len(self.valid) > 1 else ''})"

    def to_dict(self) -> dict[str, Any]:
        """How the data was made, for the record kept beside every PSNR (and the key of cached measurements).

        `valid_set` is left out: the folder and the image names already tell it, and keys stay those of
        figures measured before it existed (the shipped calibration points among them).
        """
        return {
            "source": self.source,
            "scale": SCALE,
            "train_images": len(self.train),
            "valid_images": len(self.valid),
            "valid_names": [pair.name for pair in self.valid],
            "valid_lr_pixels": int(sum(pair.lr.shape[0] * pair.lr.shape[1] for pair in self.valid)),
            "train_lr": self.train_lr,
            "valid_lr": self.valid_lr,
        }


def check_hr_size(hr: np.ndarray, *, where: str) -> None:
    """Refuse an HR image too small to have an x4 LR image (bicubic would divide by zero), naming it."""
    if min(hr.shape[:2]) < SCALE:
        side = SMALLEST_VALID_LR * SCALE
        raise DataError(f"image {where} is {hr.shape[1]}x{hr.shape[0]} pixels, too small to have an x{SCALE} LR "
                        f"image: the smallest that works is {side}x{side} for validation and {SCALE} x the LR patch "
                        f"side for training; remove or replace it")


def check_validation_sizes(pairs: Sequence[ImagePair]) -> None:
    """Refuse a validation image that the challenge's PSNR border would leave empty, naming the smallest size."""
    for pair in pairs:
        height, width = pair.lr.shape[:2]
        if min(height, width) < SMALLEST_VALID_LR:
            side = SMALLEST_VALID_LR * SCALE
            raise DataError(f"validation image {pair.where} is {width * SCALE}x{height * SCALE} pixels (HR): the "
                            f"challenge's PSNR cuts a {PSNR_BORDER}-pixel border, so the smallest that works is "
                            f"{side}x{side}; remove or replace it")


def to_uint8_tensor(image: np.ndarray, *, device: torch.device) -> torch.Tensor:
    """A uint8 (H, W, 3) image as a (3, H, W) uint8 tensor on `device` (a quarter of the float bytes to move).

    On CPU it is a view of the read-only array: read it, never write to it.
    """
    with warnings.catch_warnings():  # torch warns that the array is read-only; the view is only read
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(image)
    return tensor.to(device).permute(2, 0, 1)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """A uint8 (H, W, 3) image as a (1, 3, H, W) float32 tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).unsqueeze(0).float().div_(255.0)
