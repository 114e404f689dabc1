"""The FLOPs counters of the challenge's editions, as one choice: the 2022 kit's rules or fvcore's.

Params, activations and #conv are counted the same way by every edition's kit; only FLOPs differ.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from torch import nn

from evaluators.complexity import COMPLEXITY_INPUT_SHAPE, ComplexityReport, profile_complexity
from evaluators.fvcore_flops import count_fvcore_flops


SPREAD_SEEDS = (1, 2)  # the inputs besides seed 0's at which a count is repeated to see if it depends on the input


class Counter(enum.Enum):
    """How FLOPs are counted: the 2022 kit's module hooks (2022-2023) or fvcore's trace (2024 on)."""

    NTIRE2022 = "ntire2022"
    FVCORE = "fvcore"


def count_complexity(model: nn.Module, *, counter: Counter, input_shape: tuple[int, ...] = COMPLEXITY_INPUT_SHAPE,
                     seed: int = 0) -> ComplexityReport:
    """`profile_complexity`'s report with FLOPs counted by `counter`, on the input drawn from `seed`."""
    report = profile_complexity(model, input_shape=input_shape, seed=seed)
    if counter is Counter.FVCORE:
        report = dataclasses.replace(report, flops=count_fvcore_flops(model, input_shape=input_shape, seed=seed))
    return report


def input_dependence(model: nn.Module, *, counter: Counter, first: ComplexityReport,
                     seeds: tuple[int, ...] = SPREAD_SEEDS) -> dict[str, Any] | None:
    """None when the counts at the inputs drawn from `seeds` equal `first` (seed 0's); else, for a network whose
    work depends on its input or on sampling, the range of each figure over the inputs (seed 0's stays the figure)."""
    reports = [first] + [count_complexity(model, counter=counter, input_shape=first.input_shape, seed=seed)
                         for seed in seeds]
    figures = ("flops_g", "activations_m", "convs")
    if all(getattr(report, name) == getattr(first, name) for report in reports for name in figures):
        return None
    return {"inputs": len(reports), **{name: [min(getattr(r, name) for r in reports),
                                              max(getattr(r, name) for r in reports)] for name in figures}}
