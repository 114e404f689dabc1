"""Parameters, FLOPs, activations and #Conv, counted the way the NTIRE efficient-SR challenge counts them.

The 2022 kit's counter (`utils/model_summary.py`, also used in 2023) puts a forward hook on each module
of a few types and adds one figure per call; everything else counts zero. Our rules, one per type:

- Conv2d, ConvTranspose2d: kernel_h * kernel_w * C_in * (C_out / groups) * N * H_out * W_out (no bias; for a
  transposed conv this is the output-size figure the kit prints, not the true multiply-accumulates);
- Linear: N * shape[1] of its input * shape[1] of its output (its true MACs only on a 2-D input);
- BatchNorm2d: its output elements, twice when affine;
- ReLU, LeakyReLU, PReLU, ELU, ReLU6: their output elements.

Activations are the output elements of every Conv2d / ConvTranspose2d call, #Conv the number of those calls.
A module is hooked once however many parents hold it, so it counts at every call (thop's per-parent sums
counted a shared module once per parent instead). Convolutions and linear maps called as functions
(`F.conv2d` in a forward) count zero, as in the kit; the profile says so in `uncounted`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

logger = logging.getLogger(__name__)

COMPLEXITY_INPUT_SHAPE = (3, 256, 256)  # The challenge counts FLOPs and activations on 1x3x256x256.
COUNTED_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.ReLU6)
CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)  # their calls are the activations and #Conv


@dataclasses.dataclass(frozen=True)
class ComplexityReport:
    """The challenge's complexity figures of one model, and the input shape they were counted at.

    uncounted: one line per functional conv / linear the forward called outside a counted module
    (they count zero, as in the challenge's counter, so FLOPs understate the work).
    """

    params: int
    flops: int
    activations: int
    convs: int
    input_shape: tuple[int, ...]
    uncounted: tuple[str, ...] = ()

    @property
    def flops_g(self) -> float:
        return self.flops / 1e9

    @property
    def activations_m(self) -> float:
        return self.activations / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "flops_g": self.flops_g, "activations_m": self.activations_m}


def count_params(model: nn.Module) -> int:
    """The number of parameters, as the challenge counts them (sum of numel over `model.parameters()`)."""
    return sum(p.numel() for p in model.parameters())


def _conv_flops(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> int:
    per_position = math.prod(module.kernel_size) * module.in_channels * (module.out_channels // module.groups)
    return per_position * output.shape[0] * math.prod(output.shape[2:])


def _linear_flops(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> int:
    x = inputs[0]
    if x.dim() == 1:
        return x.shape[0] * output.shape[0]
    return x.shape[0] * x.shape[1] * output.shape[1]


def _batch_norm_flops(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> int:
    return output.shape[0] * module.num_features * math.prod(output.shape[2:]) * (2 if module.affine else 1)


def _output_elements(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> int:
    return output.numel()


# Module types and their FLOPs rule, first match wins (subclasses match their base type).
FLOP_RULES: tuple[tuple[tuple[type, ...], Callable[..., int]], ...] = (
    (CONV_TYPES, _conv_flops),
    (COUNTED_ACTIVATIONS, _output_elements),
    ((nn.Linear,), _linear_flops),
    ((nn.BatchNorm2d,), _batch_norm_flops),
)
# Functions whose calls the rules above count only when a module of these types makes them.
COUNTED_FUNCTIONS: dict[Callable[..., Any], tuple[type, ...]] = {
    torch.conv2d: (nn.Conv2d,),
    torch.conv_transpose2d: (nn.ConvTranspose2d,),
    torch._C._nn.linear: (nn.Linear,),  # F.linear
}


def flop_rule(module: nn.Module) -> Callable[..., int] | None:
    """The FLOPs rule of `module`'s type, None when the challenge counts it zero."""
    return next((rule for types, rule in FLOP_RULES if isinstance(module, types)), None)


class _FunctionCalls(TorchFunctionMode):
    """Counts calls of COUNTED_FUNCTIONS, wherever they come from (a counted module or a bare forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[Callable[..., Any]] = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in COUNTED_FUNCTIONS:
            self.calls[func] += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def seeded_rng(seed: int, *, device: torch.device) -> Iterator[None]:
    """torch's RNG (CPU, and `device`'s when it is a GPU) seeded with `seed`, restored afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def profile_complexity(model: nn.Module, *, input_shape: tuple[int, ...] = COMPLEXITY_INPUT_SHAPE,
                       seed: int = 0) -> ComplexityReport:
    """Params, FLOPs, Conv output elements and Conv calls of one eval-mode forward on a 1 x `input_shape` input.

    The model is hooked in place and restored (hooks removed, training flags put back): no copy, so models
    holding computed tensors (weight_norm) profile too. Shared modules count at every call. The input is drawn
    from `seed`, and the forward runs with torch's RNG seeded by it and restored after, so a network whose work
    depends on its input or on sampling (top-k routing, Gumbel noise left on in eval) counts the same every time,
    and the caller's RNG does not move. Params are counted after the forward (some files fuse on their first).
    """
    flops: list[int] = []
    conv_outputs: list[int] = []
    module_calls: collections.Counter[type] = collections.Counter()

    def count(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        rule = flop_rule(module)
        if rule is not None:
            flops.append(int(rule(module, inputs, output)))
        if isinstance(module, CONV_TYPES):
            conv_outputs.append(output.numel())
        for types in COUNTED_FUNCTIONS.values():
            if isinstance(module, types):
                module_calls[types] += 1

    training = {module: module.training for module in model.modules()}
    handles = [module.register_forward_hook(count) for module in model.modules()
               if flop_rule(module) is not None]
    parameter = next(model.parameters(), torch.empty(0))
    # A fixed input from a private generator: counting must not advance the caller's RNG.
    x = torch.rand(1, *input_shape, generator=torch.Generator().manual_seed(seed))
    x = x.to(device=parameter.device, dtype=parameter.dtype)
    try:
        model.eval()
        with seeded_rng(seed, device=parameter.device), torch.no_grad(), _FunctionCalls() as calls:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training.items():
            module.training = flag
    uncounted = tuple(
        f"{calls.calls[func] - module_calls[types]} call(s) of {func.__name__} outside a "
        f"{'/'.join(t.__name__ for t in types)} module count zero FLOPs (the challenge's counter skips them)"
        for func, types in COUNTED_FUNCTIONS.items() if calls.calls[func] > module_calls[types])
    for line in uncounted:
        logger.warning("%s: %s", type(model).__name__, line)
    return ComplexityReport(
        params=count_params(model),
        flops=sum(flops),
        activations=sum(conv_outputs),
        convs=len(conv_outputs),
        input_shape=tuple(input_shape),
        uncounted=uncounted,
    )
