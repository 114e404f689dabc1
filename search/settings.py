"""What one search run is: the settings given on the command line, validated once."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editions import DEFAULT_EDITION, Edition, get_edition
from search.verdict.rungs import DEFAULT_MAX_RUNG, DEFAULT_REDUCTION_FACTOR, Ladder
from train_proxy import get_budget
from search.verdict.calibration import DEFAULT_FEATURES, FEATURE_SETS
from search.tracks import get_track
from spaces import get_space

SAMPLERS = ("tpe", "nsga2", "nsga3", "gp", "random")
# Promotion time of the default run: with the search's ~9 minutes on 2 CPU cores, the whole run stays within 20.
DEFAULT_CONFIRM_MINUTES = 8.0

# Settings that the reference measurements depend on: a resumed study must keep them.
STUDY_DEFINING = ("edition", "track", "space", "budget", "iterations", "batch_size", "patch", "lr", "seed", "data",
                  "device", "latency_input", "dtype", "predictor", "calibrate_with", "floor", "valid_limit",
                  "reduction_factor")


@dataclass(frozen=True)
class SearchSettings:
    edition: int = DEFAULT_EDITION
    track: str = "runtime"
    space: str = "mixed"
    sampler: str = "tpe"
    seed: int = 0
    trials: int = 24
    budget: str = "quick"
    iterations: int | None = None
    batch_size: int | None = None
    patch: int | None = None
    lr: float | None = None
    data: str | None = None  # a DIV2K folder; None: the embedded photographs
    valid_limit: int | None = None  # validate on the first N validation images of `data` (None: all)
    device: str = "cpu"
    latency_input: tuple[int, int, int] | None = None  # None: the evaluators' per-device default
    dtype: str = "fp32"
    predictor: str = DEFAULT_FEATURES  # the feature set of the PSNR predictor (search.verdict.calibration.FEATURE_SETS)
    calibrate_with: str | None = None  # a kit folder whose entries add calibration points
    floor: float | None = None  # the PSNR floor [dB] on the published scale; None: the edition's validation floor
    extra_references: tuple[str, ...] = ()  # models measured beside the edition's references (not calibrating)
    kit: str | None = None  # a kit folder for EDITION:ID extra references
    early_stop: bool = True
    early_stop_margin: float = 1.0
    reduction_factor: int = DEFAULT_REDUCTION_FACTOR  # rung k trains reduction_factor ** k times the budget's steps
    max_rung: int = DEFAULT_MAX_RUNG
    confirm_minutes: float = DEFAULT_CONFIRM_MINUTES  # promotion time a study may spend, summed over its runs
    study_name: str | None = None
    storage: str | None = None  # an Optuna storage URL; None: SQLite under results/<study>/
    results: str = "results"
    workers: int = 1
    export_winner: bool = True
    timeout: float | None = None  # seconds; stop starting new trials after it

    def __post_init__(self) -> None:
        edition = get_edition(self.edition)
        object.__setattr__(self, "edition", edition.year)
        object.__setattr__(self, "extra_references", tuple(self.extra_references))
        if self.floor is None:
            object.__setattr__(self, "floor", edition.floor.valid)
        get_track(self.track, edition)
        get_space(self.space)
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
        if self.predictor not in FEATURE_SETS:
            raise ValueError(f"unknown --predictor {self.predictor!r}; choose one of: {', '.join(FEATURE_SETS)}")
        if self.calibrate_with is not None and not (Path(self.calibrate_with) / "manifest.csv").is_file():
            raise ValueError(f"--calibrate-with {self.calibrate_with}: not a kit folder (no manifest.csv in it)")
        for name in ("trials", "workers"):
            _positive(name, getattr(self, name))
        for name in ("iterations", "batch_size", "patch", "lr", "timeout", "valid_limit"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if isinstance(self.confirm_minutes, bool) or not isinstance(self.confirm_minutes, (int, float)) \
                or not 0 <= self.confirm_minutes < math.inf:
            raise ValueError(f"--confirm-minutes must be 0 (no promotion) or more, got {self.confirm_minutes!r}")
        Ladder(get_budget(self.budget), reduction_factor=self.reduction_factor, max_rung=self.max_rung)
        if self.early_stop_margin <= 0:
            raise ValueError(f"--early-stop-margin must be positive, got {self.early_stop_margin}")
        if self.valid_limit is not None and self.data is None:
            raise ValueError("--valid-limit needs --data (the embedded validation set is fixed)")
        if self.study_name is not None:
            _check_study_name(self.study_name)
        if self.latency_input is not None and (len(self.latency_input) != 3 or min(self.latency_input) <= 0):
            raise ValueError(f"--latency-input must be CxHxW with positive sizes, got {self.latency_input}")

    @property
    def rules(self) -> Edition:
        """The edition whose rules this run follows."""
        return get_edition(self.edition)

    @property
    def name(self) -> str:
        edition = "" if self.edition == DEFAULT_EDITION else f"-{self.edition}"
        return self.study_name or f"{self.track}-{self.space}-{self.budget}{edition}"

    @property
    def run_dir(self) -> Path:
        return Path(self.results) / self.name

    @property
    def storage_url(self) -> str:
        """--storage, else the study file of the run folder: the one already there, else a journal file
        for several workers (SQLite locks the whole file on each write), else SQLite."""
        if self.storage:
            return self.storage
        db, journal = self.run_dir / "study.db", self.run_dir / "study.journal"
        if not db.is_file() and (journal.is_file() or self.workers > 1):
            return f"journal:{journal.as_posix()}"
        return f"sqlite:///{db.as_posix()}"

    def defining(self) -> dict[str, Any]:
        """The study-defining settings, as stored in the study's user attributes."""
        values = dataclasses.asdict(self)
        return {key: list(values[key]) if isinstance(values[key], tuple) else values[key] for key in STUDY_DEFINING}

    def replace(self, **changes: Any) -> SearchSettings:
        return dataclasses.replace(self, **changes)


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value!r}")


def _check_study_name(name: str) -> None:
    """A study name is one folder under --results: no path separator, not `.` or `..`, not empty."""
    separators = {"/", "\\", os.sep, os.altsep} - {None}
    if not name.strip() or name in (".", "..") or any(sep in name for sep in separators):
        raise ValueError(f"study name {name!r} must be one plain folder name under --results (no path separator, "
                         f"no '..'); give e.g. --study-name runtime-1")
