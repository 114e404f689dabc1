"""Read a study back from storage: the trials table, the feasible Pareto front, the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from editions import Constraint, Edition
from search.records import reference_records, rung_records
from search.tracks import Track, rank
from search.verdict.calibration import Verdict
from spaces import ArchConfig

CONFIG_COLUMNS = ("block", "num_blocks", "channels", "mid_channels", "distill_rate", "distill_steps", "kernel_size",
                  "attention", "esa_channels", "activation", "fusion", "rep_conv", "subtract_mean", "input_scale")
METRIC_COLUMNS = ("params", "flops_g", "activations_m", "convs", "latency_ms", "latency_ratio", "memory_mb", "psnr",
                  "psnr_predicted", "psnr_low", "psnr_high")
CONSTRAINTS = tuple(c.value for c in Constraint)


def trials_frame(study: optuna.Study, track: Track) -> pd.DataFrame:
    """One row per trial: config columns, every metric, constraint values, feasible, Pareto, state, duration.

    A promoted trial's verdict and interval are those of the highest rung it reached (`rung`; `rung_psnr` its proxy
    PSNR there), the lower rungs' kept in `verdicts` ("r0 uncertain > r1 feasible"); a trial infeasible at its
    highest rung is not feasible, whatever its rung-0 constraints said. `psnr` stays the search's objective (rung 0).
    """
    rows = [_trial_row(trial) for trial in study.get_trials(deepcopy=False)]
    frame = with_rungs(pd.DataFrame(rows, columns=_columns()), rung_records(study))
    frame["feasible"] = (frame["state"] == "COMPLETE") & frame.apply(
        lambda row: all(not (row[f"c_{c}"] > 0) for c in CONSTRAINTS) and row["trained"] is True
        and row["verdict"] != Verdict.INFEASIBLE.value, axis=1)
    frame["pareto"] = pareto_mask(frame, track) & frame["feasible"]
    return frame


def read_study(study: optuna.Study, *, track: Track, edition: Edition) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                              pd.DataFrame]:
    """(trials, references, leaderboard) as the storage holds them now."""
    frame = trials_frame(study, track)
    references = references_frame(study)
    return frame, references, leaderboard(frame, references, track, edition=edition)


def with_rungs(frame: pd.DataFrame, promoted: dict[int, dict[int, dict[str, Any]]]) -> pd.DataFrame:
    """`frame` with each promoted trial's verdict and interval taken from its highest rung."""
    frame = frame.assign(rung=0, rung_psnr=frame["psnr"], verdicts=[f"r0 {v}" if v else "" for v in frame["verdict"]])
    for number, rungs in promoted.items():
        index = frame.index[frame["number"] == number]
        top = rungs[max(rungs)]
        frame.loc[index, "rung"] = max(rungs)
        frame.loc[index, "rung_psnr"] = top.get("psnr", np.nan)
        for column in ("psnr_predicted", "psnr_low", "psnr_high", "verdict"):
            if column in top:
                frame.loc[index, column] = top[column]
        history = [frame.loc[index, "verdicts"].iloc[0]] + [f"r{k} {rungs[k].get('verdict', '')}" for k in sorted(rungs)]
        frame.loc[index, "verdicts"] = " > ".join(part for part in history if part)
    return frame


def references_frame(study: optuna.Study) -> pd.DataFrame:
    """The references measured in this study (same metric columns, plus `name`)."""
    rows = []
    for name, record in reference_records(study).items():
        row = {"name": name, "label": record.get("label", name), "config": json.dumps(record.get("config"))}
        row.update({c: record.get(c, np.nan) for c in METRIC_COLUMNS})
        row["verdict"] = record.get("verdict", "")
        rows.append(row)
    return pd.DataFrame(rows, columns=["name", "label", "config", *METRIC_COLUMNS, "verdict"])


def pareto_mask(frame: pd.DataFrame, track: Track) -> pd.Series:
    """Non-dominated rows among the feasible ones, in the track's objectives."""
    candidates = frame[frame["feasible"]] if "feasible" in frame else frame
    signs = np.array([1.0 if o.direction == "minimize" else -1.0 for o in track.objectives])
    values = candidates[track.metrics].to_numpy(dtype=float) * signs
    keep = np.ones(len(values), dtype=bool)
    for i, point in enumerate(values):
        dominated = np.all(values <= point, axis=1) & np.any(values < point, axis=1)
        keep[i] = not dominated.any()
    mask = pd.Series(False, index=frame.index)
    mask[candidates.index[keep]] = True
    return mask


def leaderboard(frame: pd.DataFrame, references: pd.DataFrame, track: Track, *, edition: Edition) -> pd.DataFrame:
    """Feasible sampled trials ranked by the edition's rule for the track (`score`, lower is better), the
    references ranked beside them whether feasible or not (column `feasible` tells)."""
    sampled = frame[frame["feasible"] & (frame["reference"] == "")].assign(name="trial")
    measured = frame[(frame["reference"] != "") & frame["psnr"].notna()].drop_duplicates("reference", keep="last")
    refs = measured.assign(name=measured["reference"])
    without_trial = references[~references["name"].isin(refs["name"])]  # e.g. its trial failed after measuring
    refs = pd.concat([refs, without_trial.assign(number=-1, feasible=False)], ignore_index=True)
    board = pd.concat([sampled, refs], ignore_index=True)
    if board.empty:
        return board.assign(score=pd.Series(dtype=float), rank=pd.Series(dtype=int))
    board["score"] = rank(board, track=track, edition=edition, baseline=_baseline_figures(board, edition))
    # A row outside the predictor's calibration span is a guess: it ranks after every row inside it.
    board["outside"] = board["verdict"] == Verdict.OUTSIDE.value
    board = board.sort_values(["outside", "score"], kind="stable").reset_index(drop=True)
    board["rank"] = np.arange(1, len(board) + 1)
    board["rung"] = board["rung"].fillna(0).astype(int) if "rung" in board else 0
    return board[["rank", "name", "number", "label", *METRIC_COLUMNS, "verdict", "rung", "feasible", "score"]]


def _baseline_figures(board: pd.DataFrame, edition: Edition) -> dict[str, float]:
    """The baseline's measured params and FLOPs (the weighted score divides by them)."""
    rows = board[board["name"] == edition.baseline]
    if rows.empty:
        return {}
    return {"params": float(rows["params"].iloc[0]), "flops_g": float(rows["flops_g"].iloc[0])}


def format_leaderboard(board: pd.DataFrame, *, limit: int = 10) -> str:
    if board.empty:
        return "no feasible trial yet"
    shown = board.head(limit).copy()
    shown["number"] = shown["number"].map(lambda n: "" if n < 0 else f"#{n}")
    shown["params"] = shown["params"].map(lambda p: f"{int(p):,}")
    shown["interval"] = [f"[{low:.2f}, {high:.2f}]" if pd.notna(low) else "" for low, high in
                         zip(shown["psnr_low"], shown["psnr_high"])]
    columns = {"rank": "rank", "name": "name", "number": "trial", "label": "architecture", "params": "params",
               "flops_g": "FLOPs[G]", "latency_ratio": "lat/base", "memory_mb": "mem[MB]", "psnr": "proxy PSNR",
               "psnr_predicted": "pred.PSNR", "interval": "80% interval", "verdict": "verdict", "rung": "rung",
               "score": "score"}
    return shown[list(columns)].rename(columns=columns).to_string(index=False, float_format=lambda v: f"{v:.3f}")


def write_tables(frame: pd.DataFrame, board: pd.DataFrame, *, track: Track, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "trials.csv", out_dir / f"pareto_{track.name}.csv", out_dir / f"leaderboard_{track.name}.csv"]
    frame.to_csv(paths[0], index=False)
    frame[frame["pareto"]].sort_values(track.metrics[0]).to_csv(paths[1], index=False)
    board.to_csv(paths[2], index=False)
    return paths


def _columns() -> list[str]:
    return ["number", "state", "reference", "label", "config", *CONFIG_COLUMNS, *METRIC_COLUMNS, "verdict", "trained",
            "memory_method", *(f"c_{c}" for c in CONSTRAINTS), "duration_s", "fail_reason", "duplicate_of"]


def _trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    attrs = trial.user_attrs
    config = attrs.get("config")
    row: dict[str, Any] = {"number": trial.number, "state": trial.state.name, "reference": attrs.get("reference", ""),
                           "label": attrs.get("label", ""), "config": json.dumps(config) if config else ""}
    if config:
        row.update({c: getattr(ArchConfig.from_dict(config), c) for c in CONFIG_COLUMNS})
    row.update({c: attrs.get(c, np.nan) for c in METRIC_COLUMNS})
    row["verdict"] = attrs.get("verdict", "")
    row["trained"] = attrs.get("trained", False)
    row["memory_method"] = attrs.get("memory_method", "")
    row.update({f"c_{c}": trial.constraints.get(c, np.nan) for c in CONSTRAINTS})
    row["duration_s"] = trial.duration.total_seconds() if trial.duration else np.nan
    row["fail_reason"] = attrs.get("fail_reason", "")
    row["duplicate_of"] = attrs.get("duplicate_of", np.nan)
    return row
