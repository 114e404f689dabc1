"""The challenge's tracks: objectives, constraints (from the edition) and the metrics their ranking uses."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from editions import DEFAULT_EDITION, Constraint, Edition, get_edition


@dataclass(frozen=True)
class Metric:
    """One objective of a track: a column of the trials table and its direction."""

    metric: str
    direction: str  # "minimize" | "maximize"
    label: str


@dataclass(frozen=True)
class Track:
    """One NTIRE track of an edition. `constraints` are the edition's rules (search.constraints computes them);
    `ranked_by` the metrics the 2022 rank rule sums (the edition's ranking decides how they are used)."""

    name: str
    objectives: tuple[Metric, ...]
    constraints: tuple[Constraint, ...]
    ranked_by: tuple[str, ...]

    @property
    def directions(self) -> list[str]:
        return [objective.direction for objective in self.objectives]

    @property
    def metrics(self) -> list[str]:
        return [objective.metric for objective in self.objectives]

    @property
    def constraint_names(self) -> tuple[str, ...]:
        return tuple(c.value for c in self.constraints)


LATENCY = Metric("latency_ratio", "minimize", "latency / baseline's")
PSNR = Metric("psnr", "maximize", "proxy PSNR [dB]")
PARAMS = Metric("params", "minimize", "parameters")
FLOPS = Metric("flops_g", "minimize", "FLOPs [G]")
ACTIVATIONS = Metric("activations_m", "minimize", "activations [M]")
MEMORY = Metric("memory_mb", "minimize", "memory [MB]")

# name -> (objectives, ranked_by); the constraints come from the edition.
_TRACKS = {
    "runtime": ((LATENCY, PSNR), ("latency_ratio",)),
    "complexity": ((PARAMS, FLOPS, PSNR), ("params", "flops_g")),
    "overall": ((LATENCY, PARAMS, FLOPS, ACTIVATIONS, MEMORY, PSNR),
                ("latency_ratio", "params", "flops_g", "activations_m", "memory_mb")),
}


def get_track(name: str, edition: Edition | None = None) -> Track:
    """The track `name` under `edition`'s rules (default: NTIRE 2022)."""
    if name not in _TRACKS:
        raise ValueError(f"unknown track {name!r}; choose one of: {', '.join(_TRACKS)}")
    edition = edition or get_edition(DEFAULT_EDITION)
    objectives, ranked_by = _TRACKS[name]
    return Track(name, objectives, tuple(edition.constraints[name]), ranked_by)


# The tracks under the default edition's rules (NTIRE 2022).
TRACKS: dict[str, Track] = {name: get_track(name) for name in _TRACKS}


def rank(board: pd.DataFrame, *, track: Track, edition: Edition, baseline: dict[str, float]) -> pd.Series:
    """The edition's score of each row (lower is better); `baseline`: the baseline's measured params, flops_g."""
    return edition.ranking.score(board, ranked_by=track.ranked_by, baseline=baseline)
