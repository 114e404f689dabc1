"""Parameters, FLOPs, activations and #Conv, counted the way the NTIRE efficient-SR challenge counts them.

The challenge's FLOPs are multiply-accumulates of Conv2d (no bias) plus one per output element of
each ReLU-family activation module; everything else counts zero. thop's default rules count bias,
normalisation, pooling and more, so every module type of the profiled model gets an explicit rule here.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import Any

import torch
from torch import nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # thop imports distutils' LooseVersion.
    import thop
    from thop.profile import register_hooks as THOP_DEFAULT_RULES

COMPLEXITY_INPUT_SHAPE = (3, 256, 256)  # The challenge counts FLOPs and activations on 1x3x256x256.
COUNTED_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.ReLU6)


@dataclasses.dataclass(frozen=True)
class ComplexityReport:
    """The challenge's complexity figures of one model, and the input shape they were counted at."""

    params: int
    flops: int
    activations: int
    convs: int
    input_shape: tuple[int, ...]

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


def _conv_macs(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    kernel_h, kernel_w = module.kernel_size
    macs = output.numel() * kernel_h * kernel_w * module.in_channels // module.groups
    module.total_ops += torch.tensor([macs], dtype=torch.float64)


def _linear_macs(module: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    module.total_ops += torch.tensor([output.numel() * module.in_features], dtype=torch.float64)


def _output_elements(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    module.total_ops += torch.tensor([output.numel()], dtype=torch.float64)


def _zero(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    """Counts nothing; overrides thop's default rule for a module the challenge does not count."""


def _challenge_rules(model: nn.Module) -> dict[type, Any]:
    """thop rules for every module type in `model` (subclasses included) and every type thop knows."""
    rules: dict[type, Any] = {module_type: _zero for module_type in THOP_DEFAULT_RULES}
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            rules[type(module)] = _conv_macs
        elif isinstance(module, nn.Linear):
            rules[type(module)] = _linear_macs
        elif isinstance(module, COUNTED_ACTIVATIONS):
            rules[type(module)] = _output_elements
    return rules


def profile_complexity(model: nn.Module, *, input_shape: tuple[int, ...] = COMPLEXITY_INPUT_SHAPE) -> ComplexityReport:
    """Params, FLOPs (MACs, challenge rules), Conv2d output elements and Conv2d calls on one 1 x `input_shape` input.

    A deep copy in eval mode is profiled (thop adds buffers to the modules it hooks), so the model's
    state_dict and training flag stay as they were. Modules called twice count twice.
    """
    profiled = copy.deepcopy(model).eval()
    conv_outputs: list[int] = []

    def record_conv(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        conv_outputs.append(output.numel())

    for module in profiled.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(record_conv)
    parameter = next(profiled.parameters(), torch.empty(0))
    # A fixed input from a private generator: counting must not advance the caller's RNG.
    x = torch.rand(1, *input_shape, generator=torch.Generator().manual_seed(0))
    x = x.to(device=parameter.device, dtype=parameter.dtype)
    with torch.inference_mode():
        flops, _ = thop.profile(profiled, inputs=(x,), custom_ops=_challenge_rules(profiled), verbose=False)
    return ComplexityReport(
        params=count_params(model),
        flops=round(flops),
        activations=sum(conv_outputs),
        convs=len(conv_outputs),
        input_shape=tuple(input_shape),
    )
