"""Proxy fidelity: does the quick budget rank architectures as a training 8 times longer does?

Trains the challenge references and architectures sampled from the search space (spanning small to large,
all within IMDN's parameter budget) at the proxy budget and at `--factor` times its iterations, on the same
data and seed, and reports Kendall tau and Spearman rho between the two PSNR rankings. Every finished
training is written to bench/results/<name>.json at once, so a killed run resumes where it stopped.

    python3 -m bench.proxy_fidelity                      # quick against 8x quick, 12 architectures
    python3 -m bench.proxy_fidelity --lr 3e-3 --name proxy_fidelity_lr3e-3   # another proxy, same long runs
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import optuna

import train_proxy
from bench.common import load_result, rank_agreement, write_result
from data import load_dataset
from evaluators.complexity import count_params
from spaces import ArchConfig, build_model, get_reference, get_space, inference_form

REFERENCES = ("imdn", "rfdn", "rlfn", "span")


def sample_architectures(*, count: int, space: str, seed: int, pool: int = 300,
                         rep_conv: bool | None = None) -> list[tuple[str, ArchConfig]]:
    """`count` configs of `space` within IMDN's (the 2022 baseline's) parameter budget, evenly spaced in their parameter ranking;
    `rep_conv` True or False keeps only configs with or without re-parameterisable convs."""
    sampler_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    search_space = get_space(space)
    by_key: dict[str, tuple[int, ArchConfig]] = {}
    budget = count_params(inference_form(build_model(get_reference("imdn"))))
    for _ in range(pool):
        try:
            config = search_space.suggest(sampler_study.ask())
        except ValueError:
            continue
        if rep_conv is not None and config.rep_conv != rep_conv:
            continue
        params = count_params(inference_form(build_model(config)))
        if params <= budget:
            by_key.setdefault(config.key(), (params, config))
    ranked = sorted(by_key.values(), key=lambda item: item[0])
    picks = np.unique(np.round(np.linspace(0, len(ranked) - 1, count)).astype(int))
    return [(f"sampled-{i}", ranked[index][1]) for i, index in enumerate(picks)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sampled", type=int, default=8, help="sampled architectures besides the 4 references")
    parser.add_argument("--factor", type=int, default=8, help="the long training's iterations / quick's")
    parser.add_argument("--space", default="mixed")
    parser.add_argument("--seed", type=int, default=0, help="training seed (the same for every run)")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--include-rep", action="store_true",
                        help="sample re-parameterisable-conv networks too (their multi-branch training costs 3-8x)")
    parser.add_argument("--iterations", type=int, help="proxy override (default: the quick budget's)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--patch", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--name", default="proxy_fidelity", help="results file bench/results/<name>.json")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    proxy = train_proxy.get_budget("quick", iterations=args.iterations, batch_size=args.batch_size,
                                   lr_patch=args.patch, lr=args.lr)
    quick = train_proxy.BUDGETS["quick"]
    long = quick.replace(name=f"quick-x{args.factor}", iterations=quick.iterations * args.factor)
    archs = [(name, get_reference(name)) for name in REFERENCES]
    archs += sample_architectures(count=args.sampled, space=args.space, seed=args.sample_seed,
                                  rep_conv=None if args.include_rep else False)
    data = load_dataset(None)

    # Long runs are shared between proxies: reuse them from any earlier result file of this benchmark.
    previous = load_result(args.name) or {}
    runs: dict[str, dict[str, Any]] = previous.get("runs", {})
    shared = load_result("proxy_fidelity") or {}
    for key, entry in shared.get("runs", {}).items():
        if long.name in entry:
            runs.setdefault(key, {})[long.name] = entry[long.name]

    def save() -> None:
        mine = {config.key(): runs[config.key()] for _, config in archs if config.key() in runs}
        write_result(args.name, {"proxy": proxy.to_dict(), "long": long.to_dict(), "seed": args.seed,
                                 "space": args.space, "data": data.to_dict(), "runs": mine,
                                 "summary": summarise(archs, runs, proxy=proxy.name, long=long.name)})

    for budget in (proxy, long):
        for label, config in archs:
            entry = runs.setdefault(config.key(), {"label": label, "config": config.to_dict()})
            if budget.name in entry and entry[budget.name]["budget"] == budget.to_dict():
                continue
            result = train_proxy.train(config, data=data, budget=budget, seed=args.seed, device="cpu")
            entry["params"] = count_params(inference_form(build_model(config)))
            entry[budget.name] = {"psnr": result.psnr, "status": result.status, "curve": result.checkpoints,
                                  "wall_seconds": result.wall_seconds, "budget": budget.to_dict()}
            print(f"{budget.name:>12} {label:<11} {config.describe():<48} {entry['params']:>8,} params "
                  f"{result.psnr:6.2f} dB {result.wall_seconds:6.0f} s", flush=True)
            save()
    save()
    print(format_summary(summarise(archs, runs, proxy=proxy.name, long=long.name)))
    return 0


def summarise(archs: list[tuple[str, ArchConfig]], runs: dict[str, dict[str, Any]], *, proxy: str,
              long: str) -> dict[str, Any]:
    """Rank agreement between the two budgets over the architectures trained at both so far."""
    rows = []
    for label, config in archs:
        entry = runs.get(config.key(), {})
        if proxy in entry and long in entry:
            rows.append({"label": label, "arch": config.describe(), "params": entry["params"],
                         "proxy_psnr": entry[proxy]["psnr"], "long_psnr": entry[long]["psnr"]})
    if len(rows) < 3:
        return {"architectures": len(rows), "rows": rows}
    for key in ("proxy_psnr", "long_psnr"):
        order = sorted(rows, key=lambda row: -row[key])
        for rank, row in enumerate(order, start=1):
            row[key.replace("psnr", "rank")] = rank
    agreement = rank_agreement([r["proxy_psnr"] for r in rows], [r["long_psnr"] for r in rows])
    gaps = {"proxy": _reference_gaps(rows, "proxy_psnr"), "long": _reference_gaps(rows, "long_psnr")}
    return {"architectures": len(rows), "proxy_budget": proxy, "long_budget": long, **agreement,
            "reference_gaps_db": gaps, "rows": rows}


def _reference_gaps(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """PSNR of each reference minus IMDN's at one budget."""
    by_label = {row["label"]: row[key] for row in rows}
    if "imdn" not in by_label:
        return {}
    return {name: round(by_label[name] - by_label["imdn"], 3) for name in REFERENCES if name in by_label}


def format_summary(summary: dict[str, Any]) -> str:
    rows = sorted(summary["rows"], key=lambda row: row.get("long_rank", 0))
    lines = [f"{'arch':<11} {'':<48} {'params':>9} {'proxy dB':>9} {'rank':>4} {'long dB':>8} {'rank':>4}"]
    for row in rows:
        lines.append(f"{row['label']:<11} {row['arch']:<48} {row['params']:>9,} {row['proxy_psnr']:9.2f} "
                     f"{row.get('proxy_rank', '-'):>4} {row['long_psnr']:8.2f} {row.get('long_rank', '-'):>4}")
    if "kendall_tau" in summary:
        lines.append(f"{summary['architectures']} architectures: Kendall tau {summary['kendall_tau']:.3f} "
                     f"(p {summary['kendall_p']:.3g}), Spearman rho {summary['spearman_rho']:.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"done in {time.perf_counter() - started:.0f} s")
    raise SystemExit(code)
