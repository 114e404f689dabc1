"""Patch sampling: LR/HR alignment under every augmentation, determinism, and the loader on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data import DataError, ImagePair, PatchStream, patch_batches, sample_batch


def _nearest_pair(name: str, height: int, width: int, seed: int) -> ImagePair:
    """An HR image that is its LR image enlarged by pixel repetition: any aligned crop keeps hr[::4, ::4] == lr."""
    lr = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return ImagePair(name=name, hr=lr.repeat(4, axis=0).repeat(4, axis=1), lr=lr)


PAIRS = (_nearest_pair("a", 20, 30, 0), _nearest_pair("b", 25, 17, 1))


def test_hr_patch_is_aligned_with_the_lr_patch_under_augmentation() -> None:
    lr, hr = sample_batch(PAIRS, rng=np.random.default_rng(0), batch_size=64, lr_patch=8)
    assert lr.shape == (64, 8, 8, 3) and hr.shape == (64, 32, 32, 3) and lr.dtype == hr.dtype == np.uint8
    np.testing.assert_array_equal(hr[:, ::4, ::4], lr)


def test_augmentation_reaches_all_eight_symmetries() -> None:
    pair = _nearest_pair("whole", 6, 6, 2)  # patch = whole image: every sample is a symmetry of it
    lr, _ = sample_batch([pair], rng=np.random.default_rng(0), batch_size=200, lr_patch=6)
    assert len({patch.tobytes() for patch in lr}) == 8
    plain, _ = sample_batch([pair], rng=np.random.default_rng(0), batch_size=20, lr_patch=6, augment=False)
    assert all(np.array_equal(patch, pair.lr) for patch in plain)


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    def first_batches(seed: int) -> list[torch.Tensor]:
        stream = patch_batches(PAIRS, batch_size=4, lr_patch=8, seed=seed, device=torch.device("cpu"))
        return [torch.cat([t.flatten() for t in next(stream)]) for _ in range(3)]

    assert all(torch.equal(a, b) for a, b in zip(first_batches(3), first_batches(3)))
    assert not all(torch.equal(a, b) for a, b in zip(first_batches(3), first_batches(4)))


def test_cpu_batches_are_uint8_nchw() -> None:
    lr, hr = next(patch_batches(PAIRS, batch_size=5, lr_patch=8, seed=0, device=torch.device("cpu")))
    assert lr.shape == (5, 3, 8, 8) and hr.shape == (5, 3, 32, 32) and lr.dtype == torch.uint8
    assert lr.is_contiguous() and torch.equal(hr[:, :, ::4, ::4], lr)


def test_dataloader_workers_draw_distinct_reproducible_streams() -> None:
    def batches() -> list[torch.Tensor]:
        loader = DataLoader(PatchStream(PAIRS, batch_size=2, lr_patch=8, seed=0), batch_size=None, num_workers=2)
        iterator = iter(loader)
        return [next(iterator)[0] for _ in range(4)]

    first, second = batches(), batches()
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], first[1])  # worker 0 and worker 1 alternate with different seeds


def test_patch_larger_than_an_image_is_refused() -> None:
    with pytest.raises(DataError, match="training image b is 17x25 at LR, smaller than the 18x18 LR patch"):
        PatchStream(PAIRS, batch_size=2, lr_patch=18, seed=0)
