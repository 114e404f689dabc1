"""Patch sampling: LR/HR alignment under every augmentation, determinism, and the loader on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data import DataError, ImagePair, PatchStream, patch_batches, sample_batch
from data.patches import LOADER_WORKERS_ENV, LoaderSharedMemoryError, _explain_shared_memory_errors, loader_workers


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


def _first_batches(workers: int, count: int = 6) -> list[torch.Tensor]:
    stream = patch_batches(PAIRS, batch_size=2, lr_patch=8, seed=0, device=torch.device("cpu"), workers=workers)
    return [torch.cat([t.flatten() for t in next(stream)]) for _ in range(count)]


def test_the_stream_is_the_same_for_any_number_of_loader_workers() -> None:
    """Workers of one study on machines with other core counts must train on the same batches."""
    in_process = _first_batches(0)
    assert len({batch.numpy().tobytes() for batch in in_process}) == len(in_process)
    for workers in (1, 2):
        assert all(torch.equal(a, b) for a, b in zip(in_process, _first_batches(workers))), workers


def test_the_in_process_stream_is_the_one_seeded_generator_of_sample_batch() -> None:
    """The stream is the sequence of sample_batch draws from default_rng([seed, 0]) (the pre-fix CPU stream)."""
    rng = np.random.default_rng([0, 0])
    expected = [sample_batch(PAIRS, rng=rng, batch_size=2, lr_patch=8) for _ in range(3)]
    stream = patch_batches(PAIRS, batch_size=2, lr_patch=8, seed=0, device=torch.device("cpu"))
    for (lr, hr), (lr_t, hr_t) in zip(expected, stream):
        assert np.array_equal(lr_t.permute(0, 2, 3, 1).numpy(), lr)
        assert np.array_equal(hr_t.permute(0, 2, 3, 1).numpy(), hr)


def test_loader_workers_get_the_images_without_pickling_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawned workers would receive a pickled copy of the whole training set every trial; forked ones share it."""
    def refuse(self, protocol):
        raise AssertionError("the patch stream was pickled for a loader worker")

    monkeypatch.setattr(PatchStream, "__reduce_ex__", refuse)
    lr, hr = next(patch_batches(PAIRS, batch_size=2, lr_patch=8, seed=0, device=torch.device("cpu"), workers=2))
    assert lr.shape == (2, 3, 8, 8) and torch.equal(hr[:, :, ::4, ::4], lr)


def test_loader_worker_count_comes_from_the_environment_else_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOADER_WORKERS_ENV, raising=False)
    assert loader_workers(torch.device("cpu")) == 0
    assert 1 <= loader_workers(torch.device("cuda")) <= 4
    monkeypatch.setenv(LOADER_WORKERS_ENV, "0")
    assert loader_workers(torch.device("cuda")) == 0
    monkeypatch.setenv(LOADER_WORKERS_ENV, "two")
    with pytest.raises(ValueError, match="NAS_SR_LOADER_WORKERS must be a count"):
        loader_workers(torch.device("cuda"))


def test_a_workers_bus_error_names_shared_memory_and_the_fix() -> None:
    def dying_loader():
        yield torch.zeros(1), torch.zeros(1)
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Bus error. It is possible that "
                           "dataloader's workers are out of shared memory. Please try to raise your shared memory "
                           "limit.")

    batches = _explain_shared_memory_errors(dying_loader(), workers=4, prefetch_mb=214.5)
    next(batches)
    with pytest.raises(LoaderSharedMemoryError) as caught:
        next(batches)
    message = str(caught.value)
    assert "\n" not in message and "/dev/shm" in message and "214 MB" in message
    assert f"{LOADER_WORKERS_ENV}=0" in message and "--shm-size" in message


def test_other_loader_errors_pass_through() -> None:
    def failing_loader():
        raise RuntimeError("Caught ValueError in DataLoader worker process 0")
        yield

    with pytest.raises(RuntimeError, match="Caught ValueError"):
        next(_explain_shared_memory_errors(failing_loader(), workers=1, prefetch_mb=1.0))


def test_patch_larger_than_an_image_is_refused() -> None:
    with pytest.raises(DataError, match=r"training image b is 68x100 pixels \(HR\), smaller than the 18-pixel LR "
                                        r"patch allows: the smallest that works is 72x72"):
        PatchStream(PAIRS, batch_size=2, lr_patch=18, seed=0)
