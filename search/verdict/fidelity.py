"""How right the PSNR verdict is: leave-one-out over networks whose full-training quality is known.

Each network is predicted by a predictor fitted on all the others, then compared with what its trained
weights reach on the validation images and with its published figure. Networks whose trained weights score
under bicubic on the validation images are broken submissions, reported apart and never scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from search.verdict.calibration import (DEFAULT_FEATURES, FEATURE_SETS, CalibrationPoint, ProxyRun, Verdict,
                                        fit_predictor)

UNDER_FLOOR_MARGIN = 0.10  # dB: "published under the floor" means under floor - this, as the 28.90
DECIDABLE_MARGIN = 0.10  # dB: a network published this far from the floor, either side, ought to be decided


def calibration_points(rows: Sequence[dict[str, Any]], *, bicubic_psnr: float) -> list[CalibrationPoint]:
    """The measured rows usable as calibration points: trained, with official weights that beat bicubic."""
    return [CalibrationPoint(name=row["entry"], run=ProxyRun.from_record(row), target=row["official_psnr"],
                             published=row.get("published"), source="kit", edition=row.get("edition"))
            for row in rows if usable(row, bicubic_psnr=bicubic_psnr)]


def usable(row: dict[str, Any], *, bicubic_psnr: float) -> bool:
    return "skipped" not in row and row.get("official_psnr") is not None and row["official_psnr"] > bicubic_psnr


def leave_one_out(points: Sequence[CalibrationPoint], *, floor: float, features: str = DEFAULT_FEATURES,
                  map_points: Sequence[CalibrationPoint] = ()) -> list[dict[str, Any]]:
    """One row per point: its prediction by a predictor fitted on the others. `map_points`: more networks whose
    (trained weights' PSNR, published figure) pairs the published map is fitted on, as a search fits it on every
    known network (at a promotion rung: the rung-0 points too); the held-out network's own pair never is."""
    results = []
    for i, point in enumerate(points):
        others = [p for j, p in enumerate(points) if j != i]
        pairs = {p.name: (p.target, p.published) for p in [*map_points, *others]
                 if p.published is not None and p.name != point.name}
        prediction = fit_predictor(others, floor=floor, features=features,
                                   published_points=list(pairs.values())).predict(point.run)
        results.append({"name": point.name, "target": point.target, "published": point.published,
                        **{k: getattr(prediction, k) for k in ("on_valid", "on_valid_low", "on_valid_high",
                                                                "psnr", "low", "high")},
                        "verdict": prediction.verdict.value})
    return results


def score(results: Sequence[dict[str, Any]], *, floor: float) -> dict[str, Any]:
    """Rank agreement, error, interval coverage and width, and floor verdicts, against both targets."""
    on_valid = np.array([r["on_valid"] for r in results])
    target = np.array([r["target"] for r in results])
    figures: dict[str, Any] = {"n": len(results), "official_on_valid": _agreement(
        on_valid, target, [r["on_valid_low"] for r in results], [r["on_valid_high"] for r in results])}
    published = [r for r in results if r["published"] is not None]
    if published:
        figures["published"] = _agreement(np.array([r["psnr"] for r in published]),
                                          np.array([r["published"] for r in published]),
                                          [r["low"] for r in published], [r["high"] for r in published])
        figures["verdicts"] = verdict_table(published, floor=floor)
    return figures


def verdict_table(results: Sequence[dict[str, Any]], *, floor: float) -> dict[str, Any]:
    """Verdicts against the published side of the floor, and the two errors the issue forbids."""
    above = [r for r in results if r["published"] >= floor]
    under = [r for r in results if r["published"] < floor - UNDER_FLOOR_MARGIN]
    counts = {side: {v.value: sum(r["verdict"] == v.value for r in rows) for v in Verdict}
              for side, rows in (("published_at_or_above_floor", above), ("published_under_floor_minus_0.1", under))}
    return {**counts,
            "above_called_infeasible": [r["name"] for r in above if r["verdict"] == Verdict.INFEASIBLE.value],
            "under_called_feasible": [r["name"] for r in under if r["verdict"] == Verdict.FEASIBLE.value],
            "uncertain_share": float(np.mean([r["verdict"] == Verdict.UNCERTAIN.value for r in results])),
            **decided_share(results, floor=floor)}


def decided_share(results: Sequence[dict[str, Any]], *, floor: float) -> dict[str, Any]:
    """Of the networks published DECIDABLE_MARGIN or more from the floor, how many got a decided verdict (feasible
    or infeasible): what promotion through longer rungs is for."""
    away = [r for r in results if abs(r["published"] - floor) >= DECIDABLE_MARGIN]
    decided = [r["name"] for r in away if Verdict(r["verdict"]).decided]
    return {"away_from_floor": len(away), "decided_away_from_floor": decided,
            "decided_share_away_from_floor": len(decided) / len(away) if away else math.nan}


def by_family(results: Sequence[dict[str, Any]], families: dict[str, Sequence[str]]) -> dict[str, Any]:
    """Mean residual (official - predicted, on the validation images) and count per family of networks."""
    residual = {r["name"]: r["target"] - r["on_valid"] for r in results}
    return {family: {"n": len(names), "mean_residual": float(np.mean([residual[n] for n in names]))
                     if names else None, "members": list(names)}
            for family, names in families.items()}


def compare_feature_sets(points: Sequence[CalibrationPoint], *, floor: float) -> dict[str, Any]:
    """The leave-one-out figures of every feature set, so the bench says what helped and what did not."""
    return {name: score(leave_one_out(points, floor=floor, features=name), floor=floor) for name in FEATURE_SETS}


def nested_feature_choice(points: Sequence[CalibrationPoint], *, floor: float) -> dict[str, Any]:
    """The feature set chosen by the data, checked honestly: each point is predicted with the set whose
    leave-one-out MAE is lowest on the other points alone. The gap between this and the best set of
    `compare_feature_sets` is how much of that best figure comes from choosing it on the same points."""
    results, chosen = [], []
    for i, point in enumerate(points):
        others = [p for j, p in enumerate(points) if j != i]
        name = min(FEATURE_SETS, key=lambda features: score(leave_one_out(others, floor=floor, features=features),
                                                            floor=floor)["official_on_valid"]["mae"])
        chosen.append(name)
        results.append(leave_one_out([*others, point], floor=floor, features=name)[-1])
    return {**score(results, floor=floor), "chosen": {name: chosen.count(name) for name in sorted(set(chosen))}}


def _agreement(predicted: np.ndarray, actual: np.ndarray, low: Sequence[float], high: Sequence[float]
               ) -> dict[str, float]:
    low_a, high_a = np.array(low), np.array(high)
    rank_ok = len(actual) > 2 and np.ptp(actual) > 0 and np.ptp(predicted) > 0
    return {
        "spearman": float(stats.spearmanr(predicted, actual).statistic) if rank_ok else math.nan,
        "kendall": float(stats.kendalltau(predicted, actual).statistic) if rank_ok else math.nan,
        "mae": float(np.mean(np.abs(predicted - actual))),
        "coverage_80": float(np.mean((actual >= low_a) & (actual <= high_a))),
        "median_width": float(np.median(high_a - low_a)),
    }


def extrapolation(points: Sequence[CalibrationPoint], results: Sequence[dict[str, Any]], *,
                  features: str = DEFAULT_FEATURES, margins: Sequence[float] = (0.0, 0.25, 0.5, 1.0)) -> dict[str, Any]:
    """How the leave-one-out error grows beyond the span of the other points: for each margin (in standard deviations
    of a feature over the others), the points lying further out than it on some feature, and the mean absolute error
    (on the validation images) beyond and within it. What RANGE_MARGIN_SD, the predictor's guard, rests on."""
    names = FEATURE_SETS[features]
    distance = []
    for i, point in enumerate(points):
        others = [p for j, p in enumerate(points) if j != i]
        far = 0.0
        for name in names:
            values = np.array([p.run.feature(name) for p in others])
            value, spread = point.run.feature(name), float(values.std()) or 1.0
            far = max(far, (values.min() - value) / spread, (value - values.max()) / spread)
        distance.append(far)
    error = np.array([abs(r["on_valid"] - r["target"]) for r in results])
    distance_a = np.array(distance)
    table = {}
    for margin in margins:
        beyond = distance_a > margin
        table[f"{margin:g}"] = {"beyond": int(beyond.sum()),
                                "mae_beyond": float(error[beyond].mean()) if beyond.any() else math.nan,
                                "mae_within": float(error[~beyond].mean()) if (~beyond).any() else math.nan}
    return {"features": features, "by_margin_sd": table,
            "beyond_span": {p.name: round(d, 2) for p, d in zip(points, distance) if d > 0}}


def rank_only(points: Sequence[CalibrationPoint]) -> dict[str, float]:
    """The proxy PSNR alone (no predictor): Spearman against both targets, the figure the predictor must beat."""
    proxy = [p.run.curve[-1][1] for p in points]
    published = [(p.run.curve[-1][1], p.published) for p in points if p.published is not None]
    return {"spearman_official_on_valid": float(stats.spearmanr(proxy, [p.target for p in points]).statistic),
            "spearman_published": float(stats.spearmanr(*zip(*published)).statistic) if len(published) > 2
            else math.nan}


def format_summary(summary: dict[str, Any]) -> str:
    """The bench's figures as a few lines of text."""
    loo = summary["leave_one_out"]
    lines = [f"{summary['trained']} entries scored leave-one-out (features {summary['features']}); "
             f"broken (weights under bicubic {summary['bicubic_psnr']:.2f} dB): {', '.join(summary['broken']) or 'none'}; "
             f"not trainable here: {', '.join(summary['not_trainable']) or 'none'}"]
    for target in ("official_on_valid", "published"):
        if target in loo:
            f = loo[target]
            lines.append(f"  vs {target:<18} Spearman {f['spearman']:+.2f}  Kendall {f['kendall']:+.2f}  MAE "
                         f"{f['mae']:.3f} dB  80% coverage {f['coverage_80']:.0%}  median width {f['median_width']:.2f} dB")
    alone = summary["proxy_alone"]
    lines.append(f"  proxy PSNR alone: Spearman {alone['spearman_official_on_valid']:+.2f} vs official on valid, "
                 f"{alone['spearman_published']:+.2f} vs published")
    if "verdicts" in loo:
        v = loo["verdicts"]
        lines.append(f"  verdicts, published >= floor: {v['published_at_or_above_floor']}; published < floor - 0.1: "
                     f"{v['published_under_floor_minus_0.1']}; uncertain share {v['uncertain_share']:.0%}; errors: "
                     f"{v['above_called_infeasible'] or 'none'} above called infeasible, "
                     f"{v['under_called_feasible'] or 'none'} under called feasible; decided "
                     f"{len(v['decided_away_from_floor'])} of the {v['away_from_floor']} published 0.10 dB or more "
                     f"from the floor")
    for family, f in summary["by_family"].items():
        residual = f"{f['mean_residual']:+.3f} dB" if f["mean_residual"] is not None else "-"
        lines.append(f"  family {family:<18} n={f['n']:<3} mean residual (official - predicted) {residual}")
    for name, figures in summary["feature_sets"].items():
        f = figures["official_on_valid"]
        lines.append(f"  features {name:<11} Spearman {f['spearman']:+.2f}  MAE {f['mae']:.3f}  coverage "
                     f"{f['coverage_80']:.0%}  width {f['median_width']:.2f}")
    nested = summary.get("nested_choice")
    if nested:
        f = nested["official_on_valid"]
        lines.append(f"  features chosen inside each fold (nested): Spearman {f['spearman']:+.2f}  MAE {f['mae']:.3f}  "
                     f"coverage {f['coverage_80']:.0%}  width {f['median_width']:.2f}; chosen "
                     + ", ".join(f"{name} x{count}" for name, count in nested["chosen"].items()))
    extra = summary.get("extrapolation")
    if extra:
        lines.append("  beyond the others' span (leave-one-out): " + "; ".join(
            f">{margin} sd: {f['beyond']} entries, MAE {f['mae_beyond']:.3f} dB (within {f['mae_within']:.3f})"
            for margin, f in extra["by_margin_sd"].items()))
    for row in summary["zoo"]:
        lines.append(f"  zoo {row['name']:<5} proxy {row['proxy_psnr']:.2f}  predicted {row['psnr_predicted']:.2f} "
                     f"[{row['psnr_low']:.2f}, {row['psnr_high']:.2f}] {row['verdict']:<10} full-training level "
                     f"{row['full_training_level']:.2f} ({row['level_from']}), error {row['error']:+.2f}")
    return "\n".join(lines)
