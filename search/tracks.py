"""The challenge's tracks: objectives, constraints and the ranking that names a winner."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

IMDN_PARAMS = 893_936


@dataclass(frozen=True)
class Objective:
    metric: str  # a column of the trials table
    direction: str  # "minimize" | "maximize"
    label: str


@dataclass(frozen=True)
class Track:
    """One NTIRE track. `constraints` name the checks of search.constraints; `ranked_by` the ranking."""

    name: str
    objectives: tuple[Objective, ...]
    constraints: tuple[str, ...]
    ranked_by: tuple[str, ...]  # metrics whose ranks are summed (lower is better for each)

    @property
    def directions(self) -> list[str]:
        return [objective.direction for objective in self.objectives]

    @property
    def metrics(self) -> list[str]:
        return [objective.metric for objective in self.objectives]

    def rank(self, frame: pd.DataFrame) -> pd.Series:
        """The challenge's score (lower is better): the rank sum of `ranked_by`, latency breaking ties."""
        score = sum(frame[metric].rank(method="min") for metric in self.ranked_by)
        return score + frame["latency_ratio"].rank(method="min") / (len(frame) + 1)


LATENCY = Objective("latency_ratio", "minimize", "latency / IMDN's")
PSNR = Objective("psnr", "maximize", "proxy PSNR [dB]")
PARAMS = Objective("params", "minimize", "parameters")
FLOPS = Objective("flops_g", "minimize", "FLOPs [G]")
ACTIVATIONS = Objective("activations_m", "minimize", "activations [M]")
MEMORY = Objective("memory_mb", "minimize", "memory [MB]")

TRACKS: dict[str, Track] = {
    "runtime": Track("runtime", (LATENCY, PSNR), ("params", "psnr"), ("latency_ratio",)),
    "complexity": Track("complexity", (PARAMS, FLOPS, PSNR), ("psnr", "latency"), ("params", "flops_g")),
    "overall": Track("overall", (LATENCY, PARAMS, FLOPS, ACTIVATIONS, MEMORY, PSNR), ("psnr",),
                     ("latency_ratio", "params", "flops_g", "activations_m", "memory_mb")),
}


def get_track(name: str) -> Track:
    try:
        return TRACKS[name]
    except KeyError:
        raise ValueError(f"unknown track {name!r}; choose one of: {', '.join(TRACKS)}") from None
