"""Best found against the challenges' winners: each search's runtime winner beside RLFN (NTIRE 2022) and SPAN
(NTIRE 2024), their latency ratios to IMDN measured again, together, in this one run.

Reads the studies that `python3 -m bench.search_efficiency` left under bench/runs/search_efficiency/ (run that
first). Per study: the winner by the challenge's runtime rule (lowest latency ratio among feasible candidates),
its params and quick-budget PSNR, and the references' of the same study (same seed, data and budget). A winner
dominates SPAN when its latency is no higher and its proxy PSNR no lower, one of them strictly.

    python3 -m bench.best_found                    # the tpe studies
    python3 -m bench.best_found --samplers tpe random
    python3 -m bench.best_found --runs bench/runs/search_efficiency bench/runs/default_budget
"""

from __future__ import annotations

import argparse
import warnings
import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from bench.common import median_and_spread, write_result
from bench.search_efficiency import RUNS
from editions import get_edition
from search.candidate import Measurement, measure_speed
from search.report.tables import leaderboard, references_frame, trials_frame
from search.tracks import get_track
from spaces import ArchConfig, get_reference

WINNERS = ("rlfn", "span")


def winners(*, runs: list[Path], samplers: list[str]) -> list[dict[str, Any]]:
    """The runtime winner of every study found, with the quick-budget PSNRs of its study's references."""
    track = get_track("runtime")
    found = []
    for db in sorted(db for folder in runs for db in folder.glob("seed*/studies.db")):
        storage = f"sqlite:///{db.as_posix()}"
        for sampler in samplers:
            if sampler not in optuna.study.get_all_study_names(storage):
                continue
            study = optuna.load_study(study_name=sampler, storage=storage)
            frame = trials_frame(study, track)
            references = references_frame(study)
            board = leaderboard(frame, references, track, edition=get_edition(2022))
            sampled = board[board["name"] == "trial"]
            if sampled.empty:
                continue
            top = sampled.iloc[0]
            row = frame[frame["number"] == top["number"]].iloc[0]
            found.append({"study": f"{db.parent.parent.name}/{db.parent.name}/{sampler}", "trial": int(top["number"]),
                          "config": json.loads(row["config"]), "label": top["label"], "params": int(top["params"]),
                          "proxy_psnr": float(top["psnr"]), "search_latency_ratio": float(top["latency_ratio"]),
                          "trials": len(frame),
                          "references": {r["name"]: {"proxy_psnr": float(r["psnr"]), "params": int(r["params"])}
                                         for _, r in references.iterrows()}})
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", nargs="+", default=["tpe"])
    parser.add_argument("--passes", type=int, default=3, help="latency passes over all models (median ratio)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--runs", type=Path, nargs="+", default=[RUNS],
                        help="folders of bench.search_efficiency studies (its --runs)")
    parser.add_argument("--name", default="best_found")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    found = winners(runs=args.runs, samplers=args.samplers)
    if not found:
        raise SystemExit(f"no study with a feasible winner under {', '.join(map(str, args.runs))}: "
                         f"run `python3 -m bench.search_efficiency` first")

    measurement = Measurement.of_edition(get_edition(2022), device=args.device, latency_input=None, dtype=args.dtype)
    baseline = measurement.baseline()
    models = {name: get_reference(name) for name in WINNERS}
    models.update({entry["study"]: ArchConfig.from_dict(entry["config"]) for entry in found})
    samples: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.passes):
        for name, config in models.items():
            samples[name].append(measure_speed(config, measurement=measurement, baseline=baseline)["latency_ratio"])
    ratio = {name: float(np.median(values)) for name, values in samples.items()}

    print(f"{'study':<36} {'winner':<46} {'params':>8} {'lat/IMDN':>8} {'PSNR':>6} | "
          f"{'RLFN lat':>8} {'PSNR':>6} | {'SPAN lat':>8} {'PSNR':>6} | dominates")
    for entry in found:
        name, refs = entry["study"], entry["references"]
        entry["latency_ratio"] = ratio[name]
        entry["latency_ratio_samples"] = samples[name]
        entry["dominates"] = {ref: _dominates((ratio[name], entry["proxy_psnr"]),
                                              (ratio[ref], refs[ref]["proxy_psnr"])) for ref in WINNERS}
        print(f"{name:<36} {entry['label']:<46} {entry['params']:>8,} {ratio[name]:8.3f} {entry['proxy_psnr']:6.2f} | "
              f"{ratio['rlfn']:8.3f} {refs['rlfn']['proxy_psnr']:6.2f} | {ratio['span']:8.3f} "
              f"{refs['span']['proxy_psnr']:6.2f} | " + ", ".join(r for r, yes in entry["dominates"].items() if yes))
    write_result(args.name, {"settings": {**vars(args), "runs": [str(r) for r in args.runs]}, "winners": found,
                             "reference_latency_ratio": {ref: {"median": ratio[ref], "samples": samples[ref]}
                                                         for ref in WINNERS},
                             "dominates_span": sum(e["dominates"]["span"] for e in found),
                             "dominates_rlfn": sum(e["dominates"]["rlfn"] for e in found),
                             "winner_latency_ratio": median_and_spread([e["latency_ratio"] for e in found])})
    return 0


def _dominates(point: tuple[float, float], other: tuple[float, float]) -> bool:
    """(latency ratio, PSNR): latency no higher and PSNR no lower, one strictly better."""
    (latency, psnr), (other_latency, other_psnr) = point, other
    return latency <= other_latency and psnr >= other_psnr and (latency < other_latency or psnr > other_psnr)


if __name__ == "__main__":
    raise SystemExit(main())
