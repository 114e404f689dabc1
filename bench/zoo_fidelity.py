"""Zoo fidelity: how right is the toolkit's PSNR verdict on networks whose full-training quality is known?

For every entry of a kit folder (the layout of ../shared/ntire-kits) that trains on this machine, and for the
zoo's references, it records: the proxy training curve at the search's budget (the toolkit's own trainer,
from scratch, same data and seed as a search), the official weights' PSNR on the same validation images
(what full training of that architecture reached), and the published PSNR. Then it scores the predictor
leave-one-out: each entry is predicted by a predictor fitted on all the others, and the predictions are
compared with both targets.

    python3 -m bench.zoo_fidelity --kit ../shared/ntire-kits
    python3 -m bench.zoo_fidelity --kit ../shared/ntire-kits --rung 1     # 4x the steps: a promotion rung
    python3 -m bench.zoo_fidelity --kit /path/to/another/kit --out bench/results/zoo_fidelity_other.json

`--rung K` trains at rung K of the promotion ladder (search.verdict.rungs: reduction_factor ** K times the steps,
from scratch), as a search's promoted candidates and references are; `--only` limits the entries measured (with
`--no-train`, the entries the cache holds at that rung are scored and the others listed as not measured).

Measurements are cached per entry (keyed by budget, data, seed, device and torch version) in
`search.verdict.measurement_cache`, so a second run, or a search with `--calibrate-with`, retrains nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from torch import nn

import train_proxy
from bench.common import result_path, write_json
from data import SRDataset, load_dataset
from editions import get_edition
from search.verdict import fidelity, known_quality
from search.verdict.calibration import DEFAULT_FEATURES, FEATURE_SETS, CalibrationPoint, ProxyRun, Verdict, fit_predictor
from search.verdict.measurement_cache import MeasurementCache, measure_architecture
from search.verdict.rungs import DEFAULT_REDUCTION_FACTOR, Ladder
from spaces import ModelFileError, build_model, get_reference, read_kit
from spaces.official_weights import OFFICIAL, load_official

logger = logging.getLogger(__name__)


ZOO = tuple(OFFICIAL)  # every reference with official weights in a kit, as the toolkit's own configs
FAMILY_NAMES = ("image-level skip", "skip-less", "re-parameterised", "3 blocks or fewer", "range 255")
REP_NAMES = re.compile(r"rep|dbb|ecb", re.IGNORECASE)
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
SKIP_MARGIN_DB = 1.0  # an untrained network within this of bicubic adds an upscaled input to its output


def measure_kit(kit_dir: Path, *, data: SRDataset, budget: train_proxy.Budget, seed: int, cache: MeasurementCache,
                editions: tuple[int, ...], train: bool, only: set[str] | None = None) -> list[dict[str, Any]]:
    """Measure every trainable entry of the kit (cached); entries that cannot be built are listed with why.
    `only`: the entries to measure (None: all)."""
    rows = []
    for entry in read_kit(kit_dir):
        if entry.edition not in editions or (only is not None and entry.name not in only):
            continue
        row: dict[str, Any] = {"entry": entry.name, "edition": entry.edition, "team": entry.team,
                               "published": entry.published.get("val_psnr"), "data_range": entry.model.data_range}
        try:
            model = build_model(entry.model)
            row.update(measure_architecture(entry.model, data=data, budget=budget, seed=seed, cache=cache,
                                            official=entry.has_weights, train=train))
            row["structure"] = structure(model)
        except (ModelFileError, LookupError, RuntimeError) as error:
            row["skipped"] = str(error).strip().splitlines()[0]
        print(_line(row), flush=True)
        rows.append(row)
    return rows


def measure_zoo(kit_dir: Path, *, data: SRDataset, budget: train_proxy.Budget, seed: int, cache: MeasurementCache,
                train: bool, only: set[str] | None = None) -> list[dict[str, Any]]:
    """The search's references as the search trains them, with their official weights' PSNR (from the kit)."""
    rows = []
    for name in ZOO:
        if only is not None and name not in only:
            continue
        config = get_reference(name)
        row: dict[str, Any] = {"entry": name, "team": f"zoo {name}", "published": get_edition(2022).published_psnr(name),
                               "data_range": config.input_scale}
        try:
            row.update(measure_architecture(config, data=data, budget=budget, seed=seed, cache=cache, train=train))
            row["official_psnr"] = train_proxy.validation_psnr(load_official(name, kit_dir=kit_dir), data.valid,
                                                               device="cpu")
            row["twin"] = OFFICIAL[name].entry
            row["structure"] = structure(build_model(config))
        except (ModelFileError, LookupError, RuntimeError, ValueError) as error:
            row["skipped"] = str(error).strip().splitlines()[0]
        print(_line(row), flush=True)
        rows.append(row)
    return rows


def twins_not_measured(zoo: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The zoo's references standing for their kit twins (the same network, the kit's official weights as target)
    where the twin entry itself was not measured: at a promotion rung, the cheap way to the kit's big networks."""
    measured = {row["entry"] for row in rows}
    return [{**row, "entry": row["twin"], "edition": 2022, "team": f"{row['team']} (for {row['twin']})"}
            for row in zoo if "skipped" not in row and row.get("twin") and row["twin"] not in measured
            and row.get("official_psnr") is not None and row.get("published") is not None]


def structure(model: nn.Module) -> dict[str, Any]:
    """What the family labels read of a network: re-parameterisable modules, blocks, a global skip."""
    names = Counter(type(m).__name__ for m in model.modules())
    blocks = Counter(type(m).__name__ for m in model.modules() if m is not model and not isinstance(m, CONTAINERS)
                     and sum(isinstance(c, nn.Conv2d) for c in m.modules()) >= 3)
    block, count = blocks.most_common(1)[0] if blocks else ("", 0)
    return {"re_parameterised": any(REP_NAMES.search(n) for n in names), "block": block, "blocks": count,
            "skip_less": getattr(model, "fusion", None) == "span_taps"}


def families(rows: list[dict[str, Any]], *, bicubic_psnr: float) -> dict[str, list[str]]:
    """Family -> member names, read off each network's structure, curve and data range."""
    found: dict[str, list[str]] = {name: [] for name in FAMILY_NAMES}
    for row in rows:
        s = row["structure"]
        tags = {"image-level skip": row["curve"][0][1] >= bicubic_psnr - SKIP_MARGIN_DB,
                "skip-less": s["skip_less"], "re-parameterised": s["re_parameterised"],
                "3 blocks or fewer": 0 < s["blocks"] <= 3, "range 255": row["data_range"] == 255.0}
        for family, member in tags.items():
            if member:
                found[family].append(row["entry"])
    return found


def judge_zoo(zoo: list[dict[str, Any]], kit_points: list[CalibrationPoint], *, floor: float,
              features: str, map_points: list[CalibrationPoint] = ()) -> list[dict[str, Any]]:
    """Each zoo reference predicted by a predictor fitted on the kit without its twin entry (the same network),
    against its published figure, or, without one on this scale (SPAN), its official weights' PSNR carried to the
    published scale by the kit's map."""
    results = []
    for row in zoo:
        if "skipped" in row:
            continue
        points = [p for p in kit_points if p.name != row.get("twin")]
        pairs = {p.name: (p.target, p.published) for p in [*map_points, *points]
                 if p.published is not None and p.name != row.get("twin")}
        predictor = fit_predictor(points, floor=floor, features=features, published_points=list(pairs.values()))
        prediction = predictor.predict(ProxyRun.from_record(row))
        level = row["published"] if row["published"] is not None else (
            predictor.map_intercept + predictor.map_slope * row["official_psnr"])
        results.append({"name": row["entry"], "proxy_psnr": row["proxy_psnr"], "official_psnr": row["official_psnr"],
                        "full_training_level": level, "level_from": "published" if row["published"] else
                        "official weights on the validation images, carried by the kit's map",
                        **prediction.to_record(), "error": prediction.psnr - level,
                        "right_side_of_floor": _right_side(prediction.verdict, level=level, floor=floor)})
    return results


def _right_side(verdict: Verdict, *, level: float, floor: float) -> bool:
    """Uncertain is never on the wrong side; feasible and infeasible must match the full-training level."""
    return verdict is Verdict.UNCERTAIN or (verdict is Verdict.FEASIBLE) == (level >= floor)


def _line(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return f"{row['entry']:>8} {row['team'][:24]:<24} skipped: {row['skipped']}"
    official = f"{row['official_psnr']:.2f}" if row.get("official_psnr") is not None else "  -  "
    published = f"{row['published']:.2f}" if row.get("published") is not None else "  -  "
    return (f"{row['entry']:>8} {row['team'][:24]:<24} proxy {row['proxy_psnr']:6.2f}  official {official}  "
            f"published {published}  ({row['train_seconds']:.0f} s)")


def ship(rows: list[dict[str, Any]], zoo: list[dict[str, Any]], points: list[CalibrationPoint], *,
         data: SRDataset, budget: train_proxy.Budget, seed: int, rung: int, path: Path) -> None:
    """Write the figures a search of this setting calibrates with (search/verdict/calibration_points.json): this
    setting's entry replaces the one of the same setting, the other rungs' entries stay."""
    shipped = json.loads(path.read_text()) if path.is_file() else {}
    setting = known_quality.setting_key(data=data, budget=budget, seed=seed, device="cpu")
    measured = [r for r in zoo if "skipped" not in r]
    entry = {"rung": rung, "setting": setting,
             "points": [{"name": p.name, "edition": p.edition, "curve": [list(c) for c in p.run.curve],
                         "params": p.run.params, "activations_m": p.run.activations_m, "target": p.target,
                         "published": p.published} for p in points],
             "reference_runs": {r["entry"]: {"psnr": r["proxy_psnr"], "psnr_curve": r["curve"], "params": r["params"],
                                             "activations_m": r.get("activations_m"),
                                             "train_wall_seconds": r["train_seconds"]} for r in measured}}
    payload = {"about": "Measured by python3 -m bench.zoo_fidelity --ship: proxy curves of kit entries (this "
                        "toolkit's trainer, from scratch) and official weights' PSNR on the validation images; one "
                        "entry of 'settings' per rung of the promotion ladder measured; reference_runs: the "
                        "references' proxy runs there (a search reads them instead of training them again).",
               "valid": data.to_dict()["valid_names"],
               "references": {**shipped.get("references", {}), **{r["entry"]: r["official_psnr"] for r in measured}},
               "settings": sorted([e for e in shipped.get("settings", []) if e["setting"] != setting] + [entry],
                                  key=lambda e: e["rung"])}
    path.write_text(json.dumps(payload, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kit", type=Path, required=True, help="a kit folder in the layout of ../shared/ntire-kits")
    parser.add_argument("--out", type=Path, help="the results file, written where given (default "
                                                 "bench/results/zoo_fidelity.json)")
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--floor", type=float, default=29.00, help="the floor on the published scale (2022: 29.00)")
    parser.add_argument("--editions", default="2022", help="comma-separated kit editions to measure")
    parser.add_argument("--features", default=DEFAULT_FEATURES, choices=list(FEATURE_SETS))
    parser.add_argument("--no-train", dest="train", action="store_false",
                        help="score only what the cache holds (no training)")
    parser.add_argument("--ship", action="store_true", help="write search/verdict/calibration_points.json from these figures")
    parser.add_argument("--rung", type=int, default=0, help="train at this rung of the promotion ladder")
    parser.add_argument("--reduction-factor", type=int, default=DEFAULT_REDUCTION_FACTOR)
    parser.add_argument("--only", help="comma-separated entries (edition:id or a zoo name) to measure, the rest left out")
    options = parser.parse_args(argv)
    if options.out is not None and options.out.is_dir():
        print(f"error: --out {options.out} is a folder; give the results file, e.g. {options.out / 'zoo_fidelity.json'}",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    ladder = Ladder(train_proxy.get_budget(options.budget), reduction_factor=options.reduction_factor,
                    max_rung=max(options.rung, 0))
    budget = ladder.budget(options.rung)
    only = set(options.only.split(",")) if options.only else None
    cache = MeasurementCache.default()
    data = load_dataset(None)
    bicubic = train_proxy.bicubic_baseline_psnr(data)
    editions = tuple(int(e) for e in options.editions.split(","))
    rows = measure_kit(options.kit, data=data, budget=budget, seed=options.seed, cache=cache, editions=editions,
                       train=options.train, only=only)
    zoo = measure_zoo(options.kit, data=data, budget=budget, seed=options.seed, cache=cache, train=options.train,
                      only=only)
    scored = [r for r in rows if fidelity.usable(r, bicubic_psnr=bicubic)]
    scored += twins_not_measured(zoo, scored)
    points = fidelity.calibration_points(scored, bicubic_psnr=bicubic)
    # At a promotion rung the published map is fitted as a search fits it: on the rung-0 points too.
    map_points = known_quality.shipped_points(key=known_quality.setting_key(
        data=data, budget=ladder.budget(0), seed=options.seed, device="cpu")) if options.rung else []
    results = fidelity.leave_one_out(points, floor=options.floor, features=options.features, map_points=map_points)
    summary = {
        "bicubic_psnr": bicubic, "features": options.features, "floor": options.floor,
        "trained": len(scored),
        "broken": [r["entry"] for r in rows if "skipped" not in r and r.get("official_psnr") is not None
                   and r["official_psnr"] <= bicubic],
        "not_trainable": {r["entry"]: r["skipped"] for r in rows if "skipped" in r},
        "without_weights": [r["entry"] for r in rows if "skipped" not in r and r.get("official_psnr") is None],
        "leave_one_out": fidelity.score(results, floor=options.floor),
        "by_family": fidelity.by_family(results, families(scored, bicubic_psnr=bicubic)),
        "feature_sets": fidelity.compare_feature_sets(points, floor=options.floor),
        "nested_choice": fidelity.nested_feature_choice(points, floor=options.floor),
        "zoo": judge_zoo(zoo, points, floor=options.floor, features=options.features, map_points=map_points),
        "proxy_alone": fidelity.rank_only(points),
        "extrapolation": fidelity.extrapolation(points, results, features=options.features),
    }
    print(fidelity.format_summary(summary))
    default = "zoo_fidelity" if options.rung == 0 else f"zoo_fidelity_rung{options.rung}"
    out = write_json(options.out or result_path(default),
                     {"kit": str(options.kit), "rung": options.rung, "budget": budget.to_dict(), "seed": options.seed,
                      "rows": rows, "zoo_rows": zoo, "predictions": results, "summary": summary})
    print(f"wrote {out}")
    if options.ship:
        ship(rows, zoo, points, data=data, budget=budget, seed=options.seed, rung=options.rung,
             path=known_quality.SHIPPED)
        print(f"wrote {known_quality.SHIPPED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
