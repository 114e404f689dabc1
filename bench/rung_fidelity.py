"""Rung by rung: how right is the PSNR verdict on the same kit entries at each promotion rung, and what does a rung
add beyond the network's size?

Reads the points shipped in search/verdict/calibration_points.json (measured by `bench.zoo_fidelity --rung K
--ship`: proxy curves of the NTIRE 2022 kit entries at each rung, and what their official weights reach on the
embedded photographs), keeps the entries measured at every rung, and scores leave-one-out at each rung with the
search's default features and with the parameter count alone (`size`, the same at every rung: a rung that does no
better than it adds nothing). No training: seconds.

    python3 -m bench.rung_fidelity
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.common import write_result
from search.verdict import fidelity, known_quality
from search.verdict.calibration import DEFAULT_FEATURES, CalibrationPoint, ProxyRun

FLOOR = 29.00  # the 2022 floor, the published scale of the shipped points


def shipped_rungs() -> dict[int, dict[str, CalibrationPoint]]:
    """rung -> entry name -> its calibration point, as shipped."""
    found: dict[int, dict[str, CalibrationPoint]] = {}
    for entry in known_quality.shipped().get("settings", []):
        found[entry["rung"]] = {
            p["name"]: CalibrationPoint(p["name"], ProxyRun(tuple(map(tuple, p["curve"])), p["params"],
                                                            p.get("activations_m")),
                                        p["target"], published=p.get("published"), source="shipped kit",
                                        edition=p.get("edition"))
            for p in entry["points"]}
    return dict(sorted(found.items()))


def compare(rungs: dict[int, dict[str, CalibrationPoint]], *, features: str) -> dict[str, Any]:
    """Leave-one-out at each rung on the entries every rung holds, with `features` and with size alone."""
    common = sorted(set.intersection(*(set(points) for points in rungs.values())))
    map_points = list(rungs[0].values())  # the published map, as a search fits it: on every known network
    figures: dict[str, Any] = {"entries": common, "features": features, "rungs": {}}
    for rung, points in rungs.items():
        chosen = [points[name] for name in common]
        results = fidelity.leave_one_out(chosen, floor=FLOOR, features=features, map_points=map_points)
        figures["rungs"][rung] = {
            "steps": chosen[0].run.curve[-1][0] if chosen else None,
            "predictor": fidelity.score(results, floor=FLOOR),
            "size_alone": fidelity.score(fidelity.leave_one_out(chosen, floor=FLOOR, features="size",
                                                                map_points=map_points), floor=FLOOR),
            "proxy_alone": fidelity.rank_only(chosen),
            "extrapolation": fidelity.extrapolation(chosen, results, features=features),
            "predictions": results}
    return figures


def format_table(figures: dict[str, Any]) -> str:
    lines = [f"{len(figures['entries'])} entries measured at every rung; features {figures['features']}; leave-one-out,"
             f" against the official weights on the embedded photographs (coverage and width: 80% interval, dB)",
             f"{'rung':>4} {'steps':>6} {'Spearman':>8} {'size alone':>10} {'proxy alone':>11} {'MAE':>6} "
             f"{'coverage':>8} {'width':>6} {'decided':>8} {'wrong side':>10}"]
    for rung, f in figures["rungs"].items():
        own, size = f["predictor"]["official_on_valid"], f["size_alone"]["official_on_valid"]
        verdicts = f["predictor"].get("verdicts", {})
        wrong = verdicts.get("above_called_infeasible", []) + verdicts.get("under_called_feasible", [])
        decided = f"{len(verdicts.get('decided_away_from_floor', []))}/{verdicts.get('away_from_floor', 0)}"
        lines.append(f"{rung:>4} {f['steps']:>6} {own['spearman']:>+8.2f} {size['spearman']:>+10.2f} "
                     f"{f['proxy_alone']['spearman_official_on_valid']:>+11.2f} {own['mae']:>6.3f} "
                     f"{own['coverage_80']:>8.0%} {own['median_width']:>6.2f} {decided:>8} "
                     f"{', '.join(wrong) or 'none':>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", default=DEFAULT_FEATURES)
    options = parser.parse_args(argv)
    rungs = shipped_rungs()
    if len(rungs) < 2:
        print("error: fewer than two rungs shipped; run python3 -m bench.zoo_fidelity --kit DIR --rung 1 --ship",
              file=sys.stderr)
        return 2
    figures = compare(rungs, features=options.features)
    print(format_table(figures))
    write_result("rung_fidelity", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
