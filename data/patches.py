"""Random training patches: an LR crop, the aligned x4 HR crop, flips and 90-degree rotations.

Batches are uint8 NCHW tensors; the training loop converts them to float on its device (a quarter
of the bytes to move). On CPU they are sampled in the main process (no worker start-up, nothing to
pickle); on CUDA a DataLoader with worker processes and pinned memory keeps the GPU fed.

The stream is a pure function of the seed, whatever the number of loader workers (so workers of one
study on different machines train on the same batches): every worker replays the one seeded draw of
crop positions and keeps the batches k = worker, worker + W, ... ; the DataLoader hands them out in
turn, so batch k is always the k-th draw. Workers are forked where the platform can: they never touch
CUDA, and a forked worker shares the in-memory images instead of receiving a pickled copy of them.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from data.dataset import SCALE, DataError, ImagePair

logger = logging.getLogger(__name__)

LOADER_WORKERS_ENV = "NAS_SR_LOADER_WORKERS"
PREFETCH_FACTOR = 4


class LoaderSharedMemoryError(OSError):
    """The loader's worker processes ran out of shared memory (/dev/shm): a machine setting, not a candidate."""


@dataclass(frozen=True)
class _Plan:
    """Which image, where and which symmetry for each patch of one batch."""

    picks: np.ndarray
    tops: np.ndarray
    lefts: np.ndarray
    flips: np.ndarray


def _draw(shapes: np.ndarray, *, rng: np.random.Generator, batch_size: int, lr_patch: int,
          augment: bool) -> _Plan:
    """The random part of a batch; `shapes` holds each image's LR (height, width)."""
    picks = rng.integers(len(shapes), size=batch_size)
    tops = rng.integers(shapes[picks, 0] - lr_patch + 1)
    lefts = rng.integers(shapes[picks, 1] - lr_patch + 1)
    flips = rng.integers(2, size=(batch_size, 3)) if augment else np.zeros((batch_size, 3), dtype=np.int64)
    return _Plan(picks, tops, lefts, flips)


def _cut(pairs: Sequence[ImagePair], plan: _Plan, *, lr_patch: int) -> tuple[np.ndarray, np.ndarray]:
    """The (LR, HR) uint8 (N, p, p, 3) and (N, 4p, 4p, 3) batches that `plan` describes."""
    hr_patch = lr_patch * SCALE
    batch_size = len(plan.picks)
    lr_batch = np.empty((batch_size, lr_patch, lr_patch, 3), dtype=np.uint8)
    hr_batch = np.empty((batch_size, hr_patch, hr_patch, 3), dtype=np.uint8)
    for k, (i, top, left) in enumerate(zip(plan.picks, plan.tops, plan.lefts)):
        lr = pairs[i].lr[top:top + lr_patch, left:left + lr_patch]
        hr = pairs[i].hr[top * SCALE:top * SCALE + hr_patch, left * SCALE:left * SCALE + hr_patch]
        lr_batch[k], hr_batch[k] = _augment(lr, plan.flips[k]), _augment(hr, plan.flips[k])
    return lr_batch, hr_batch


def _lr_shapes(pairs: Sequence[ImagePair]) -> np.ndarray:
    return np.array([pair.lr.shape[:2] for pair in pairs], dtype=np.int64).reshape(-1, 2)


def sample_batch(pairs: Sequence[ImagePair], *, rng: np.random.Generator, batch_size: int,
                 lr_patch: int, augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) uint8 batches of shape (N, p, p, 3) and (N, 4p, 4p, 3): a uniformly chosen image, then a crop."""
    plan = _draw(_lr_shapes(pairs), rng=rng, batch_size=batch_size, lr_patch=lr_patch, augment=augment)
    return _cut(pairs, plan, lr_patch=lr_patch)


def check_patch_size(pairs: Sequence[ImagePair], *, lr_patch: int) -> None:
    """Raise DataError when an image is smaller than the LR patch, naming the smallest size that works."""
    for pair in pairs:
        if min(pair.lr.shape[:2]) < lr_patch:
            height, width = pair.lr.shape[:2]
            side = lr_patch * SCALE
            raise DataError(f"training image {pair.where} is {width * SCALE}x{height * SCALE} pixels (HR), smaller "
                            f"than the {lr_patch}-pixel LR patch allows: the smallest that works is {side}x{side}; "
                            f"remove or replace it, or use a patch of at most {min(height, width)} (--patch)")


class PatchStream(IterableDataset):
    """An endless stream of uint8 NCHW (LR, HR) batches drawn from one seeded generator.

    In a DataLoader with W workers, worker w yields the draws w, w + W, w + 2W, ... (see the module docstring).
    """

    def __init__(self, pairs: Sequence[ImagePair], *, batch_size: int, lr_patch: int, seed: int,
                 augment: bool = True) -> None:
        check_patch_size(pairs, lr_patch=lr_patch)
        self.pairs, self.batch_size, self.lr_patch = tuple(pairs), batch_size, lr_patch
        self.seed, self.augment = seed, augment

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        rng = np.random.default_rng([self.seed, 0])
        shapes = _lr_shapes(self.pairs)
        for index in itertools.count():
            plan = _draw(shapes, rng=rng, batch_size=self.batch_size, lr_patch=self.lr_patch, augment=self.augment)
            if index % workers == worker:
                lr, hr = _cut(self.pairs, plan, lr_patch=self.lr_patch)
                yield _nchw(lr), _nchw(hr)


def loader_workers(device: torch.device) -> int:
    """Loader worker processes for training on `device`: $NAS_SR_LOADER_WORKERS, else 0 on CPU and up to 4 on CUDA."""
    configured = os.environ.get(LOADER_WORKERS_ENV)
    if configured is not None:
        if not configured.isdigit():
            raise ValueError(f"{LOADER_WORKERS_ENV} must be a count of 0 or more, got {configured!r}")
        return int(configured)
    if device.type != "cuda":
        return 0
    return min(4, max(1, (os.cpu_count() or 2) - 1))


def patch_batches(pairs: Sequence[ImagePair], *, batch_size: int, lr_patch: int, seed: int,
                  device: torch.device, workers: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless uint8 (LR, HR) batches for training on `device`; `workers` None means `loader_workers(device)`.

    The batches are the same for any number of workers (see the module docstring).
    """
    stream = PatchStream(pairs, batch_size=batch_size, lr_patch=lr_patch, seed=seed)
    workers = loader_workers(device) if workers is None else workers
    if workers == 0:
        return iter(stream)
    context = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    loader = DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=device.type == "cuda",
                        prefetch_factor=PREFETCH_FACTOR, multiprocessing_context=context)
    prefetch_mb = workers * PREFETCH_FACTOR * batch_size * lr_patch**2 * (1 + SCALE**2) * 3 / 1024**2
    logger.debug("loader: %d %s workers, %.0f MB prefetched in shared memory", workers,
                 context.get_start_method() if context else "default", prefetch_mb)
    return _explain_shared_memory_errors(iter(loader), workers=workers, prefetch_mb=prefetch_mb)


def _explain_shared_memory_errors(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], *, workers: int,
                                  prefetch_mb: float) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`batches`, with a worker's bus error (a full /dev/shm, e.g. Docker's 64 MB default) said in one line."""
    while True:
        try:
            batch = next(batches)
        except RuntimeError as error:
            text = str(error).lower()
            if "bus error" not in text and "shared memory" not in text:
                raise
            raise LoaderSharedMemoryError(
                f"the data loader's {workers} worker processes ran out of shared memory (/dev/shm; they prefetch "
                f"about {prefetch_mb:.0f} MB, Docker gives 64 MB by default): set {LOADER_WORKERS_ENV}=0 (or fewer "
                f"workers), or give the machine a larger /dev/shm (docker run --shm-size=1g)") from None
        yield batch


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
