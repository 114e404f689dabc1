"""The constraint rules of the tracks, in one place: each rule's value (Optuna's: <= 0 is feasible).

Limits are the edition's: its baseline's params and FLOPs (measured with the edition's counter) and its
PSNR floor; latency is a ratio to the baseline measured side by side, so its limit is 1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from editions import Constraint

# Known before training: a candidate that breaks one of these is cut without training.
BEFORE_TRAINING = (Constraint.PARAMS, Constraint.FLOPS, Constraint.LATENCY)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the constraints compare against: the baseline's params and FLOPs, and the PSNR floor."""

    params: int
    flops_g: float
    floor: float


def constraint_value(constraint: Constraint, record: dict[str, Any], *, limits: Limits) -> float:
    """The value of one constraint on a trial's record (<= 0: kept)."""
    if constraint is Constraint.PARAMS:
        return float(record["params"] - limits.params)
    if constraint is Constraint.FLOPS:
        return float(record["flops_g"] - limits.flops_g)
    if constraint is Constraint.LATENCY:
        return float(record["latency_ratio"] - 1.0)
    if constraint is Constraint.PSNR:  # kept unless the whole 80% interval is under the floor (uncertain is kept)
        return float(limits.floor - record["psnr_high"])
    raise ValueError(f"unknown constraint {constraint!r}; known: {', '.join(c.value for c in Constraint)}")


def constraint_values(constraints: tuple[Constraint, ...], record: dict[str, Any], *,
                      limits: Limits) -> dict[str, float]:
    """Optuna constraint values by name; a candidate that ran out of memory meets none."""
    if "out_of_memory" in record:
        return {c.value: math.inf for c in constraints}
    return {c.value: constraint_value(c, record, limits=limits) for c in constraints}


def violated_before_training(constraints: tuple[Constraint, ...], record: dict[str, Any], *,
                             limits: Limits) -> list[str]:
    """The names of the constraints known before training that `record` breaks."""
    return [c.value for c in constraints
            if c in BEFORE_TRAINING and constraint_value(c, record, limits=limits) > 0]


def parse_constraint(name: str) -> Constraint:
    """A constraint by its name; unknown names are an error, never dropped."""
    try:
        return Constraint(name)
    except ValueError:
        raise ValueError(f"unknown constraint {name!r}; known: {', '.join(c.value for c in Constraint)}") from None
