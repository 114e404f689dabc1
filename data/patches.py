"""Random training patches: an LR crop, the aligned x4 HR crop, flips and 90-degree rotations.

Batches are uint8 NCHW tensors; the training loop converts them to float on its device (a quarter
of the bytes to move). On CPU they are sampled in the main process (no worker start-up, nothing to
pickle); on CUDA a DataLoader with worker processes and pinned memory keeps the GPU fed. Either way
the stream is a pure function of the seed (and, on CUDA, of the number of workers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from data.dataset import SCALE, DataError, ImagePair


def sample_batch(pairs: Sequence[ImagePair], *, rng: np.random.Generator, batch_size: int,
                 lr_patch: int, augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) uint8 batches of shape (N, p, p, 3) and (N, 4p, 4p, 3): a uniformly chosen image, then a crop."""
    hr_patch = lr_patch * SCALE
    picks = rng.integers(len(pairs), size=batch_size)
    heights = np.array([pairs[i].lr.shape[0] for i in picks])
    widths = np.array([pairs[i].lr.shape[1] for i in picks])
    tops = rng.integers(heights - lr_patch + 1)
    lefts = rng.integers(widths - lr_patch + 1)
    flips = rng.integers(2, size=(batch_size, 3)) if augment else np.zeros((batch_size, 3), dtype=np.int64)
    lr_batch = np.empty((batch_size, lr_patch, lr_patch, 3), dtype=np.uint8)
    hr_batch = np.empty((batch_size, hr_patch, hr_patch, 3), dtype=np.uint8)
    for k, (i, top, left) in enumerate(zip(picks, tops, lefts)):
        lr = pairs[i].lr[top:top + lr_patch, left:left + lr_patch]
        hr = pairs[i].hr[top * SCALE:top * SCALE + hr_patch, left * SCALE:left * SCALE + hr_patch]
        lr_batch[k], hr_batch[k] = _augment(lr, flips[k]), _augment(hr, flips[k])
    return lr_batch, hr_batch


def check_patch_size(pairs: Sequence[ImagePair], *, lr_patch: int) -> None:
    """Raise DataError when an image is smaller than the LR patch."""
    for pair in pairs:
        if min(pair.lr.shape[:2]) < lr_patch:
            height, width = pair.lr.shape[:2]
            raise DataError(f"training image {pair.name} is {width}x{height} at LR, smaller than the "
                            f"{lr_patch}x{lr_patch} LR patch; use a patch of at most {min(height, width)}")


class PatchStream(IterableDataset):
    """An endless stream of uint8 NCHW (LR, HR) batches; worker w of a DataLoader draws from seed (seed, w)."""

    def __init__(self, pairs: Sequence[ImagePair], *, batch_size: int, lr_patch: int, seed: int,
                 augment: bool = True) -> None:
        check_patch_size(pairs, lr_patch=lr_patch)
        self.pairs, self.batch_size, self.lr_patch = tuple(pairs), batch_size, lr_patch
        self.seed, self.augment = seed, augment

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        rng = np.random.default_rng([self.seed, 0 if info is None else info.id])
        while True:
            lr, hr = sample_batch(self.pairs, rng=rng, batch_size=self.batch_size, lr_patch=self.lr_patch,
                                  augment=self.augment)
            yield _nchw(lr), _nchw(hr)


def patch_batches(pairs: Sequence[ImagePair], *, batch_size: int, lr_patch: int, seed: int,
                  device: torch.device, workers: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless uint8 (LR, HR) batches for training on `device` (see the module docstring for how)."""
    stream = PatchStream(pairs, batch_size=batch_size, lr_patch=lr_patch, seed=seed)
    if device.type != "cuda":
        return iter(stream)
    workers = min(4, max(1, (os.cpu_count() or 2) - 1)) if workers is None else workers
    loader = DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=True,
                        prefetch_factor=4 if workers > 0 else None)
    return iter(loader)


def _augment(image: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """Vertical flip, horizontal flip, transpose: the eight symmetries of the square."""
    if flips[0]:
        image = image[::-1]
    if flips[1]:
        image = image[:, ::-1]
    if flips[2]:
        image = image.transpose(1, 0, 2)
    return image


def _nchw(batch: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
