"""Search efficiency: the default sampler (TPE) against random search at equal trial budgets, runtime track.

For each seed, the references are proxy-trained once (a study of the four reference trials), then that study is
copied once per sampler and each copy searched to `--trials` trials; so every sampler of a seed starts from the
same calibration, floor and baseline, and differs only in which candidates it proposes. Reported per sampler,
over the seeds: the feasible hypervolume of the candidates (latency ratio to IMDN, minimised; calibrated
predicted PSNR, maximised; reference point: ratio 1.0 and the PSNR floor) after every trial, and the best
feasible latency ratio. Studies are kept under bench/runs/ (a rerun resumes them).

    python3 -m bench.search_efficiency                                 # tpe and random, seeds 0 1 2
    python3 -m bench.search_efficiency --samplers tpe random nsga2 gp --trials 24
"""

from __future__ import annotations

import argparse
import warnings
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from bench.common import REPO, median_and_spread, write_result
from search.report.tables import trials_frame
from search.runner import run_search
from search.settings import SAMPLERS, SearchSettings
from search.tracks import get_track
from editions import get_edition

REFERENCES = get_edition(2022).references  # the default edition's

RUNS = REPO / "bench" / "runs" / "search_efficiency"


def feasible_hypervolume(points: list[tuple[float, float]], *, max_ratio: float, floor: float) -> float:
    """Area dominated by (latency ratio, PSNR) points, ratio minimised and PSNR maximised, bounded by the
    reference point (max_ratio, floor); points outside that box add nothing."""
    inside = sorted((x, y) for x, y in points if x < max_ratio and y > floor)
    area, height = 0.0, floor
    for (x, y), next_x in zip(inside, [x for x, _ in inside[1:]] + [max_ratio]):
        height = max(height, y)
        area += (next_x - x) * (height - floor)
    return area


def candidate_trajectory(frame: pd.DataFrame, *, floor: float) -> list[dict[str, Any]]:
    """After each finished candidate (in trial order): the hypervolume and best latency ratio of the feasible ones."""
    candidates = frame[(frame["reference"] == "") & frame["state"].isin(["COMPLETE", "PRUNED"])].sort_values("number")
    points: list[tuple[float, float]] = []
    trajectory = []
    for _, row in candidates.iterrows():
        if row["feasible"]:
            points.append((float(row["latency_ratio"]), float(row["psnr_predicted"])))
        trajectory.append({"trial": int(row["number"]), "feasible": len(points),
                           "hypervolume": feasible_hypervolume(points, max_ratio=1.0, floor=floor),
                           "best_latency_ratio": min((x for x, _ in points), default=None)})
    return trajectory


def search(*, sampler: str, seed: int, trials: int, budget: str, space: str, runs: Path = RUNS) -> dict[str, Any]:
    """Run (or resume) one sampler's search of one seed; return its trajectory and figures."""
    folder = runs / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(folder / 'studies.db').as_posix()}"
    common = dict(track="runtime", space=space, seed=seed, budget=budget, storage=storage, results=str(folder),
                  confirm_minutes=0, export_winner=False)
    names = optuna.study.get_all_study_names(storage) if (folder / "studies.db").exists() else []
    if "references" not in names or len(optuna.load_study(study_name="references", storage=storage).get_trials(
            states=(optuna.trial.TrialState.COMPLETE,))) < len(REFERENCES):
        run_search(SearchSettings(**common, sampler="tpe", trials=len(REFERENCES), study_name="references"),
                   say=_quiet(f"seed {seed} references"))
        names = optuna.study.get_all_study_names(storage)
    if sampler not in names:
        optuna.copy_study(from_study_name="references", from_storage=storage, to_storage=storage,
                          to_study_name=sampler)
    started = time.perf_counter()
    run_search(SearchSettings(**common, sampler=sampler, trials=trials, study_name=sampler),
               say=_quiet(f"seed {seed} {sampler}"))
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=sampler, storage=storage)
    frame = trials_frame(study, get_track("runtime"))
    frame = frame[frame["number"] < trials]  # a study extended since (more --trials) is judged at this budget
    floor = study.user_attrs["calibration"]["floor"]
    trajectory = candidate_trajectory(frame, floor=floor)
    candidates = frame[frame["reference"] == ""]
    return {"sampler": sampler, "seed": seed, "trials": trials, "floor": floor, "wall_seconds_this_run": wall,
            "candidate_seconds": float(candidates["duration_s"].sum()),
            "states": candidates["state"].value_counts().to_dict(),
            "cut_before_training": int((candidates["trained"] == False).sum()),  # noqa: E712 (object column)
            "final_hypervolume": trajectory[-1]["hypervolume"] if trajectory else 0.0,
            "best_latency_ratio": trajectory[-1]["best_latency_ratio"] if trajectory else None,
            "trajectory": trajectory}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary = {}
    for sampler in dict.fromkeys(run["sampler"] for run in runs):
        mine = [run for run in runs if run["sampler"] == sampler]
        best = [run["best_latency_ratio"] for run in mine if run["best_latency_ratio"] is not None]
        summary[sampler] = {
            "seeds": [run["seed"] for run in mine],
            "hypervolume": median_and_spread([run["final_hypervolume"] for run in mine]),
            "best_latency_ratio": median_and_spread(best) if best else None,
            "seeds_without_feasible": len(mine) - len(best),
            "feasible_candidates": median_and_spread([run["trajectory"][-1]["feasible"] if run["trajectory"] else 0
                                                      for run in mine]),
            "hypervolume_by_candidate": _median_curve([[p["hypervolume"] for p in run["trajectory"]] for run in mine]),
        }
    return summary


def _median_curve(curves: list[list[float]]) -> list[float]:
    length = min(len(curve) for curve in curves)
    return [float(np.median([curve[i] for curve in curves])) for i in range(length)]


def _quiet(prefix: str):
    def say(line: str) -> None:
        if line.startswith("["):  # the per-trial progress lines only
            print(f"{prefix}: {line}", flush=True)
    return say


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random"], choices=SAMPLERS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=16, help="trials per search, the 4 references included")
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--space", default="mixed")
    parser.add_argument("--runs", type=Path, default=RUNS, help="where the studies are kept (default: %(default)s)")
    parser.add_argument("--name", default="search_efficiency")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    runs = []
    for seed in args.seeds:
        for sampler in args.samplers:
            runs.append(search(sampler=sampler, seed=seed, trials=args.trials, budget=args.budget, space=args.space,
                               runs=args.runs))
            write_result(args.name, {"settings": {**vars(args), "runs": str(args.runs)}, "summary": summarise(runs),
                                     "runs": runs})
    summary = summarise(runs)
    for sampler, figures in summary.items():
        hv, best = figures["hypervolume"], figures["best_latency_ratio"]
        print(f"{sampler:>7}: hypervolume median {hv['median']:.4f} [{hv['min']:.4f}, {hv['max']:.4f}]; best feasible "
              f"latency ratio " + (f"median {best['median']:.3f} [{best['min']:.3f}, {best['max']:.3f}]" if best
                                   else "none") + f" over seeds {figures['seeds']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
