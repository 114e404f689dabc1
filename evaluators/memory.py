"""Peak memory of one inference call, in MB of 1024**2 bytes as the challenge reports it.

On CUDA this is the challenge's figure: torch.cuda.max_memory_allocated() over the model copy, the
input and the forward pass. A CPU has no such counter, so there the figure is an estimate, labelled
as one: the peak total size of live tensor storages (weights, input, activations, output) seen between
aten operations. Kernel workspaces and allocator overhead are not in it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from evaluators.latency import (
    default_input_shape,
    device_name,
    make_input,
    prepare_model,
    resolve_device,
    resolve_dtype,
)

MB = 1024**2


@dataclasses.dataclass(frozen=True)
class MemoryReport:
    """Peak memory of one forward pass, and how it was measured (`method` says whether it is an estimate)."""

    peak_mb: float
    method: str
    device_name: str
    input_shape: tuple[int, ...]
    dtype: str

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
    """Peak memory of one forward pass of an eval-mode copy of `model` on a 1 x `input_shape` input.

    `input_shape` None means the latency default of the device, so memory and latency see the same input.
    """
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    input_shape = tuple(input_shape or default_input_shape(device))
    if device.type == "cuda":
        method, peak_bytes = "cuda_max_memory_allocated", _cuda_peak_bytes(model, device, torch_dtype, input_shape)
    else:
        method, peak_bytes = "cpu_estimate_peak_live_tensors", _cpu_peak_bytes(model, torch_dtype, input_shape)
    return MemoryReport(peak_mb=peak_bytes / MB, method=method, device_name=device_name(device),
                        input_shape=input_shape, dtype=dtype)


def _cuda_peak_bytes(model: nn.Module, device: torch.device, dtype: torch.dtype, input_shape: tuple[int, ...]) -> int:
    """max_memory_allocated from the model copy's arrival on, less what the process held before it."""
    with torch.cuda.device(device):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        prepared = prepare_model(model, device=device, dtype=dtype, channels_last=False)
        torch.cuda.reset_peak_memory_stats()
        x = make_input(input_shape, device=device, dtype=dtype, channels_last=False)
        with torch.inference_mode():
            prepared(x)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before


def _cpu_peak_bytes(model: nn.Module, dtype: torch.dtype, input_shape: tuple[int, ...]) -> int:
    cpu = torch.device("cpu")
    prepared = prepare_model(model, device=cpu, dtype=dtype, channels_last=False)
    x = make_input(input_shape, device=cpu, dtype=dtype, channels_last=False)
    with torch.inference_mode(), _LiveStorageBytes([*prepared.parameters(), *prepared.buffers(), x]) as tracker:
        prepared(x)
    return tracker.peak_bytes
