"""The FLOPs counters of the challenge's editions, as one choice: the 2022 kit's rules or fvcore's.

Params, activations and #conv are counted the same way by every edition's kit; only FLOPs differ.
"""

from __future__ import annotations

import dataclasses
import enum

from torch import nn

from evaluators.complexity import COMPLEXITY_INPUT_SHAPE, ComplexityReport, profile_complexity
from evaluators.fvcore_flops import count_fvcore_flops


class Counter(enum.Enum):
    """How FLOPs are counted: the 2022 kit's module hooks (2022-2023) or fvcore's trace (2024 on)."""

    NTIRE2022 = "ntire2022"
    FVCORE = "fvcore"


def count_complexity(model: nn.Module, *, counter: Counter,
                     input_shape: tuple[int, ...] = COMPLEXITY_INPUT_SHAPE) -> ComplexityReport:
    """`profile_complexity`'s report with FLOPs counted by `counter`."""
    report = profile_complexity(model, input_shape=input_shape)
    if counter is Counter.FVCORE:
        report = dataclasses.replace(report, flops=count_fvcore_flops(model, input_shape=input_shape))
    return report
