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
