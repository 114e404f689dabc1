"""Overhead and throughput of a search at the quick budget: where a trial's time goes besides training.

Runs a short search on the runtime track (default settings, `--trials` trials, a fresh folder under
bench/runs/overhead/) and reports, from the trials' own records:
- trials per hour (candidates alone, and the whole command with references, reports and promotion);
- the share of each trained trial's wall time spent outside training and validation (complexity, latency,
  memory, storage, weights): the goal is under 10%;
- the cost of each non-training step measured on its own (complexity, latency against IMDN);
- the patch loader's images/s against what a training step consumes.

    python3 -m bench.overhead
    python3 -m bench.overhead --trials 12 --device cuda --name overhead_cuda
"""

from __future__ import annotations

import argparse
import warnings
import datetime
import time
from typing import Any

import numpy as np
import optuna

import train_proxy
from bench.common import REPO, median_and_spread, write_result
from data import load_dataset
from data.patches import patch_batches
from editions import get_edition
from evaluators.device import resolve_device
from search.candidate import Measurement, measure_complexity, measure_speed
from search.report.tables import trials_frame
from search.runner import run_search
from search.settings import SearchSettings
from search.tracks import get_track
from spaces import get_reference

RUNS = REPO / "bench" / "runs" / "overhead"


def timed_search(settings: SearchSettings) -> tuple[float, float]:
    """Run the search; return its total wall time and the time its final phase (reports, promotion,
    plots, export) began, both in seconds from the start."""
    started = time.perf_counter()
    marks: dict[str, float] = {}

    def say(line: str) -> None:
        if "feasible of" in line and "finish" not in marks:
            marks["finish"] = time.perf_counter() - started
        if line.startswith("["):
            print(line, flush=True)

    run_search(settings, say=say)
    total = time.perf_counter() - started
    return total, marks.get("finish", total)


def step_costs(*, device: str, repeats: int) -> dict[str, Any]:
    """Seconds for the complexity and the speed measurement of one candidate (IMDN-sized, and RLFN)."""
    measurement = Measurement.of_edition(get_edition(2022), device=device, latency_input=None)
    baseline = measurement.baseline()
    costs = {}
    for name in ("imdn", "rlfn"):
        config = get_reference(name)
        for step, call in (("complexity", lambda: measure_complexity(config, measurement=measurement)),
                           ("speed", lambda: measure_speed(config, measurement=measurement, baseline=baseline))):
            seconds = []
            for _ in range(repeats):
                begin = time.perf_counter()
                call()
                seconds.append(time.perf_counter() - begin)
            costs[f"{name}_{step}_s"] = median_and_spread(seconds)
    return costs


def loader_throughput(*, batches: int, budget: train_proxy.Budget) -> float:
    """Images per second the patch sampler alone delivers at `budget`'s batch and patch size (CPU path)."""
    data = load_dataset(None)
    stream = patch_batches(data.train, batch_size=budget.batch_size, lr_patch=budget.lr_patch, seed=0,
                           device=resolve_device("cpu"))
    next(stream)
    begin = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * budget.batch_size / (time.perf_counter() - begin)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials of the search, the 4 references included")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="overhead")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    folder = RUNS / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    settings = SearchSettings(track="runtime", trials=args.trials, seed=args.seed, device=args.device,
                              results=str(folder), study_name="overhead")
    total, finish_at = timed_search(settings)
    study = optuna.load_study(study_name="overhead", storage=f"sqlite:///{folder / 'overhead' / 'study.db'}")
    frame = trials_frame(study, get_track("runtime"))
    finished = frame[frame["state"].isin(["COMPLETE", "PRUNED"])]
    trained = finished[finished["trained"] == True]  # noqa: E712 (an object column)
    cut = finished[finished["trained"] != True]  # noqa: E712
    trials = study.get_trials(deepcopy=False)  # once: `study.trials` copies every trial on each access
    train_s = np.array([trials[n].user_attrs["train_wall_seconds"] for n in trained["number"]])
    wall_s = trained["duration_s"].to_numpy(dtype=float)
    outside = wall_s - train_s
    candidates = finished[finished["reference"] == ""]
    figures = {
        "total_seconds": total, "search_seconds": finish_at, "finish_seconds": total - finish_at,
        "trials": len(frame), "trained_trials": len(trained), "cut_trials": len(cut),
        "candidates_per_hour": 3600 * len(candidates) / candidates["duration_s"].sum(),
        "trials_per_hour_whole_command": 3600 * len(frame) / total,
        "outside_training_share": float(outside.sum() / wall_s.sum()),
        "outside_training_share_per_trial": median_and_spread(list(outside / wall_s)),
        "outside_training_seconds_per_trial": median_and_spread(list(outside)),
        "cut_trial_seconds": median_and_spread(list(cut["duration_s"])) if len(cut) else None,
        # The search phase: data loading, study creation, the trials; the final phase (promotion, which
        # trains again, reports, plots, export) is timed apart as finish_seconds.
        "outside_training_share_search_phase": float(1 - train_s.sum() / finish_at),
    }
    budget = train_proxy.BUDGETS["quick"]
    consumed = [trials[n].user_attrs["images_per_s"] for n in trained["number"]]
    figures["loader_images_per_s"] = loader_throughput(batches=300, budget=budget)
    figures["training_images_per_s"] = median_and_spread(consumed)
    figures["loader_over_fastest_training"] = figures["loader_images_per_s"] / max(consumed)
    figures["step_costs"] = step_costs(device=args.device, repeats=5)
    write_result(args.name, {"settings": vars(args), "run_folder": str(folder.relative_to(REPO)), **figures})
    print(f"{len(frame)} trials ({len(trained)} trained, {len(cut)} cut before training) in {total:.0f} s "
          f"(search {finish_at:.0f} s, reports/promotion/export {total - finish_at:.0f} s)")
    print(f"candidates per hour: {figures['candidates_per_hour']:.0f}; whole command "
          f"{figures['trials_per_hour_whole_command']:.0f} trials/hour")
    print(f"outside training: {figures['outside_training_share']:.1%} of trained trials' wall time "
          f"(median {np.median(outside):.2f} s a trial); search phase "
          f"{figures['outside_training_share_search_phase']:.1%}")
    print(f"loader {figures['loader_images_per_s']:.0f} images/s; training consumes "
          f"{figures['training_images_per_s']['median']:.0f} (max {max(consumed):.0f})")
    for key, value in figures["step_costs"].items():
        print(f"{key}: median {value['median']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
