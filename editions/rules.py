"""The pieces of a challenge's rules that vary between editions: constraints, ranking, data, floors."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping

import pandas as pd


class Constraint(enum.Enum):
    """A track's must-keep rule; search.constraints computes each one's value."""

    PARAMS = "params"  # params <= the baseline's
    FLOPS = "flops"  # FLOPs <= the baseline's
    LATENCY = "latency"  # latency <= the baseline's
    PSNR = "psnr"  # (predicted) PSNR >= the floor


class ValidationSet(enum.Enum):
    """The challenge's validation/test layout."""

    DIV2K = "DIV2K"  # DIV2K 0801-0900 valid, 0901-1000 test
    DIV2K_LSDIR = "DIV2K_LSDIR"  # LSDIR 000001-000100 + DIV2K 0801-0900 valid; hidden DIV2K_LSDIR test

    def image_names(self) -> frozenset[str]:
        """The validation images' names (file stems of the HR images)."""
        div2k = {f"{i:04d}" for i in range(801, 901)}
        if self is ValidationSet.DIV2K:
            return frozenset(div2k)
        return frozenset(div2k | {f"{i:06d}" for i in range(1, 101)})


@dataclasses.dataclass(frozen=True)
class Floor:
    """The PSNR a solution must reach [dB]: on the validation set, and on the test set when published."""

    valid: float
    test: float | None = None


@dataclasses.dataclass(frozen=True)
class RankSum:
    """NTIRE 2022: the rank sum of the track's ranked metrics (lower is better), latency breaking ties."""

    def score(self, board: pd.DataFrame, *, ranked_by: tuple[str, ...], baseline: Mapping[str, float]) -> pd.Series:
        score = sum(board[metric].rank(method="min") for metric in ranked_by)
        return score + board["latency_ratio"].rank(method="min") / (len(board) + 1)

    def describe(self) -> str:
        return "rank sum of the track's metrics"


@dataclasses.dataclass(frozen=True)
class WeightedScore:
    """NTIRE 2024 on: per metric exp(2 m / m_baseline), weighted sum (lower is better; the baseline scores e^2).

    `weights`: (metric, weight) pairs over the trials table's columns; latency_ratio is already m / m_baseline.
    """

    weights: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        if not math.isclose(sum(weight for _, weight in self.weights), 1.0):
            raise ValueError(f"score weights must sum to 1, got {self.weights}")

    def score(self, board: pd.DataFrame, *, ranked_by: tuple[str, ...], baseline: Mapping[str, float]) -> pd.Series:
        total = pd.Series(0.0, index=board.index)
        for metric, weight in self.weights:
            if metric != "latency_ratio" and metric not in baseline:
                raise ValueError(f"the weighted score needs the baseline's measured {metric}; measure the baseline first")
            reference = 1.0 if metric == "latency_ratio" else baseline[metric]
            total += weight * (2.0 * board[metric].astype(float) / reference).map(math.exp)
        return total

    def describe(self) -> str:
        names = {"latency_ratio": "runtime", "flops_g": "FLOPs", "params": "params"}
        return " + ".join(f"{w:g} exp(2 {names.get(m, m)}/baseline)" for m, w in self.weights)


Ranking = RankSum | WeightedScore
