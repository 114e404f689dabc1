"""The progress line of a search (one per trial) and the time its last steps take."""

from __future__ import annotations

from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.records import PROMOTION_SECONDS
from search.settings import SearchSettings
from search.tracks import get_track
from search.verdict.calibration import Verdict

Printer = Callable[[str], None]
# Seconds that the reports, plots and export (ONNX included) take after the trials and the promotion:
# about 15 s on the default run on 2 CPU cores.
REPORT_AND_EXPORT_S = 15.0


def progress_line(trial: FrozenTrial, *, done: int, target: int, settings: SearchSettings, study: optuna.Study,
                  eta_s: float) -> str:
    """One line per trial, in fixed-width columns (a missing figure leaves its column blank); what explains the
    state (cut before training, duplicate, failure reason) comes last, so it never shifts the columns."""
    attrs = trial.user_attrs
    name = attrs.get("reference") or attrs.get("label", "")
    psnr = attrs.get("psnr")
    state = trial.state.name.lower()
    if trial.state == TrialState.COMPLETE and trial.constraints:
        kept = all(v <= 0 for v in trial.constraints.values())  # the PSNR verdict says feasible or uncertain
        state = attrs.get("verdict", "feasible") if kept else "infeasible"
        state = "outside" if state == Verdict.OUTSIDE.value else state  # "outside calibration" in the tables
    notes = []
    if attrs.get("duplicate_of") is not None:
        notes.append(f"same as #{attrs['duplicate_of']}")
    if attrs.get("cut_before_training"):
        notes.append(f"cut: {', '.join(attrs['cut_before_training'])}")
    if trial.state == TrialState.FAIL:
        notes.append(attrs.get("fail_reason", "")[:80])
    width = len(str(target))
    latency = f"lat {attrs['latency_ratio']:.2f}x" if "latency_ratio" in attrs else ""
    params = f"{attrs['params'] / 1e3:.0f}K" if "params" in attrs else ""
    measured = psnr is not None and attrs.get("trained", True)
    duration = trial.duration.total_seconds() if trial.duration else 0.0
    columns = [f"[{done:>{width}}/{target}]", f"#{trial.number:<{width + 1}}", f"{state:<10}", f"{name[:48]:<48}",
               f"{latency:<10}", f"{params:>6}", f"PSNR {psnr:5.2f}" if measured else f"{'PSNR -':<10}",
               f"best {best_feasible(study, settings):<28}", f"| {duration:4.0f} s, ETA {eta_s / 60:5.1f} min"]
    return "  ".join(columns + [f"({'; '.join(notes)})"] * bool(notes))


def tail_seconds(settings: SearchSettings, study: optuna.Study) -> float:
    """Seconds that follow the trials, at most: the promotion budget this study has left, the reports and the
    export."""
    left = max(0.0, settings.confirm_minutes * 60.0 - float(study.user_attrs.get(PROMOTION_SECONDS, 0.0)))
    return left + REPORT_AND_EXPORT_S


def best_feasible(study: optuna.Study, settings: SearchSettings) -> str:
    track = get_track(settings.track, settings.rules)
    metric = track.ranked_by[0]
    values = [(t.user_attrs.get(metric), t.number) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.constraints and all(v <= 0 for v in t.constraints.values()) and t.user_attrs.get("trained")
              and not t.user_attrs.get("reference")]
    if not values:
        return "-"
    value, number = min(values)
    return f"#{number} {metric} {value:.3g}"
