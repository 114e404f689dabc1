"""Peak memory of inference, in MB of 1024**2 bytes as the challenge reports it.

On CUDA this is torch.cuda.max_memory_allocated() over the model's weights, the input and the forward pass,
less what the process held before. The challenge reports the maximum of that over the validation set
(`measure_memory_over`); a search measures one input of the latency size (`measure_memory`), and each
report says which (`images`, `input_shape`). A CPU has no such counter, so there the figure is an
estimate, labelled as one: the peak total size of live tensor storages (weights, input, activations,
output) seen between aten operations. Kernel workspaces and allocator overhead are not in it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from evaluators.device import resolve_device
from evaluators.latency import (
    default_input_shape,
    device_name,
    make_input,
    modes_kept,
    prepare_model,
    resolve_dtype,
)

MB = 1024**2


@dataclasses.dataclass(frozen=True)
class MemoryReport:
    """Peak memory of inference, and how it was measured (`method` says whether it is an estimate).

    images: how many inputs the peak is the maximum over (1: one input of the latency size; the
    challenge's figure is over the validation set). input_shape: the input that gave the peak.
    """

    peak_mb: float
    method: str
    device_name: str
    input_shape: tuple[int, ...]
    dtype: str
    images: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _LiveStorageBytes(TorchDispatchMode):
    """Tracks the bytes of live tensor storages across aten calls and keeps the peak.

    Storages are held by weak reference, so a tensor freed between two calls leaves the count at the next.
    """

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        super().__init__()
        self._live: dict[StorageWeakRef, int] = {}
        for tensor in tensors:
            self._track(tensor)
        self.peak_bytes = sum(self._live.values())

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        self._live.setdefault(StorageWeakRef(storage), storage.nbytes())

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self._live = {ref: size for ref, size in self._live.items() if not ref.expired()}
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._track(leaf)
        self.peak_bytes = max(self.peak_bytes, sum(self._live.values()))
        return out


def measure_memory(model: nn.Module, *, device: str | torch.device, input_shape: tuple[int, ...] | None,
                   dtype: str = "fp32") -> MemoryReport:
    """Peak memory of one forward pass of `model` in eval mode (as `prepare_model` readies it) on a 1 x `input_shape`
    input.

    `input_shape` None means the latency default of the device, so memory and latency see the same input.
    """
    device = resolve_device(device)
    shape = tuple(input_shape or default_input_shape(device))
    x = make_input(shape, device=torch.device("cpu"), dtype=torch.float32, channels_last=False)
    return _peak_over(model, [x], device=device, dtype=dtype)


def measure_memory_over(model: nn.Module, *, images: Iterable[torch.Tensor], device: str | torch.device,
                        dtype: str = "fp32") -> MemoryReport:
    """The challenge's memory figure: the maximum over `images` of the peak memory of one forward pass of `model`
    in eval mode. `images`: (1, 3, H, W) float host tensors, e.g. the validation LR images; each
    is copied to the device inside its measurement, as the challenge's loop does."""
    return _peak_over(model, images, device=resolve_device(device), dtype=dtype)


def _peak_over(model: nn.Module, images: Iterable[torch.Tensor], *, device: torch.device, dtype: str) -> MemoryReport:
    torch_dtype = resolve_dtype(dtype, device)
    if device.type == "cuda":
        method, peaks = "cuda_max_memory_allocated", _cuda_peaks(model, device, torch_dtype, images)
    else:
        method, peaks = "cpu_estimate_peak_live_tensors", _cpu_peaks(model, torch_dtype, images)
    with modes_kept([model]):
        measured = list(peaks)
    if not measured:
        raise ValueError("no input to measure memory on")
    peak_bytes, input_shape = max(measured, key=lambda pair: pair[0])
    return MemoryReport(peak_mb=peak_bytes / MB, method=method, device_name=device_name(device),
                        input_shape=input_shape, dtype=dtype, images=len(measured))


def _cuda_peaks(model: nn.Module, device: torch.device, dtype: torch.dtype,
                images: Iterable[torch.Tensor]) -> Iterator[tuple[int, tuple[int, ...]]]:
    """Per image: max_memory_allocated over its copy to the device and the forward pass, with the model there,
    less what the process held besides the model (so other live tensors do not count, the model's weights do,
    whether they were on the device already or are moved or copied there now)."""
    with torch.cuda.device(device):
        torch.cuda.synchronize()
        resident = _bytes_on(model, device)
        before = torch.cuda.memory_allocated()
        prepared = prepare_model(model, device=device, dtype=dtype, channels_last=False)
        if prepared is model:  # measured in place: its weights already on the device count too
            before -= resident
        for image in images:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            x = image.to(device=device, dtype=dtype)
            with torch.inference_mode():
                prepared(x)
            del x
            torch.cuda.synchronize()
            yield torch.cuda.max_memory_allocated() - before, tuple(image.shape[1:])


def _bytes_on(model: nn.Module, device: torch.device) -> int:
    """Bytes of the model's parameters and buffers that are on `device` now."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors if t.device.type == device.type)


def _cpu_peaks(model: nn.Module, dtype: torch.dtype,
               images: Iterable[torch.Tensor]) -> Iterator[tuple[int, tuple[int, ...]]]:
    prepared = prepare_model(model, device=torch.device("cpu"), dtype=dtype, channels_last=False)
    weights = [*prepared.parameters(), *prepared.buffers()]
    for image in images:
        x = image.to(device="cpu", dtype=dtype)
        with torch.inference_mode(), _LiveStorageBytes([*weights, x]) as tracker:
            prepared(x)
        del x
        yield tracker.peak_bytes, tuple(image.shape[1:])
