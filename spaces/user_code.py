"""How the toolkit runs a model file's own code (its import, constructor, weight loading and after-load step).

Two things the kits' users do by hand, done here in one place:
- the code's prints go to stderr, so a command's stdout holds its `--json` alone (some constructors print);
- with the CPU shim, on a machine without CUDA, `.cuda()` of a tensor or a module returns it unchanged: the way
  users of the kits run an entry whose constructor calls `.cuda()` (a warm-up forward, say) on a CPU. It is off
  unless asked for (`--cpu-shim`), and the records of a shimmed model say so.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import torch
from torch import nn

from spaces.errors import first_line


@contextlib.contextmanager
def running_user_code(*, cpu_shim: bool) -> Iterator[bool]:
    """Prints to stderr and, with `cpu_shim` where torch sees no CUDA device, `.cuda()` a no-op; yields whether
    the shim is on."""
    active = cpu_shim and not torch.cuda.is_available()
    with contextlib.redirect_stdout(sys.stderr), (_cuda_is_a_no_op() if active else contextlib.nullcontext()):
        yield active


@contextlib.contextmanager
def _cuda_is_a_no_op() -> Iterator[None]:
    tensor_cuda, module_cuda = torch.Tensor.cuda, nn.Module.cuda
    torch.Tensor.cuda = _unchanged
    nn.Module.cuda = _unchanged
    try:
        yield
    finally:
        torch.Tensor.cuda, nn.Module.cuda = tensor_cuda, module_cuda


def _unchanged(self, *args, **kwargs):
    return self


def failure(error: BaseException, *, cpu_shim: bool) -> str:
    """A model file's error in one line; where it is CUDA missing, what to do about it."""
    text = f"{type(error).__name__}: {first_line(error)}"
    if torch.cuda.is_available() or not any(word in text.lower() for word in ("cuda", "nvidia")):
        return text
    if cpu_shim:
        return f"{text} (the code needs CUDA beyond .cuda(), which --cpu-shim makes a no-op: run it on a GPU machine)"
    return (f"{text}: the code calls CUDA and this machine has no CUDA device; --cpu-shim makes .cuda() a no-op "
            "here, as users of the kits do on a CPU, or run it on a GPU machine")
