"""The one rule that turns a device option (auto | cpu | cuda | cuda:N) into a torch.device, and the one way a
model is put on one.

Training, validation, latency, memory and the command lines all resolve devices here, so they accept
and refuse the same options with the same messages.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`auto` or None: CUDA when torch sees one, else CPU; a name or torch.device as given (a CUDA index is kept,
    none added: "cuda" means the current GPU). A ValueError when CUDA is asked for but absent, or for a device
    type the toolkit does not measure."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} was asked for, but CUDA is not available (torch sees no CUDA device); "
                         f"use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"only cpu and cuda devices are supported, got {device}")
    return device


def place(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` on `device`: moved in place as the kits move it, `model.to(device)` (a model file's own `.to()` may
    take nothing else, and may run forwards), and only when some parameter or buffer is elsewhere."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    if all(_on(tensor.device, device) for tensor in tensors):
        return model
    moved = model.to(device)
    return moved if isinstance(moved, nn.Module) else model


def _on(where: torch.device, device: torch.device) -> bool:
    return where.type == device.type and (device.index is None or where.index in (None, device.index))
