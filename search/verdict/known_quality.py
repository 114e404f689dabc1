"""Networks whose full-training quality the toolkit knows, as calibration points of the PSNR predictor.

Three sources, in a study:
- the references measured in the study, with what their official weights reach on the study's validation
  images: measured by `bench.zoo_fidelity` for the embedded photographs (shipped in `calibration_points.json`),
  or the published figure when the validation set is the edition's own (the full DIV2K validation set);
- the kit entries shipped in `calibration_points.json`, proxy-trained on this toolkit's default setting
  (budget, data, seed, CPU): they apply only to a study of exactly that setting;
- a user's kit (`--calibrate-with DIR`): its entries proxy-trained in the study's own setting, cached per machine.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from pathlib import Path
from typing import Any

import train_proxy
from data import SRDataset
from editions import Edition, ValidationSet, get_edition
from search.verdict.calibration import CalibrationPoint, ProxyRun
from search.verdict.measurement_cache import MeasurementCache, measure_architecture
from spaces import ModelFileError, read_kit

logger = logging.getLogger(__name__)

SHIPPED = Path(__file__).with_name("calibration_points.json")


@functools.cache
def shipped() -> dict[str, Any]:
    """The shipped figures: {"valid": ..., "references": {name: target}, "settings": [{"rung", "setting", "points",
    "reference_runs"}]} (empty when absent). Read once per process: every trial's predictor fit asks for them.
    Callers copy what they keep."""
    return json.loads(SHIPPED.read_text()) if SHIPPED.is_file() else {}


def _shipped_setting(key: dict[str, Any]) -> dict[str, Any] | None:
    return next((entry for entry in shipped().get("settings", []) if entry["setting"] == key), None)


def setting_key(*, data: SRDataset, budget: train_proxy.Budget, seed: int, device: str) -> dict[str, Any]:
    """What shipped proxy figures depend on; a study of another setting cannot use them."""
    return {"data": data.to_dict(), "budget": budget.to_dict(), "seed": seed, "device_type": device.split(":")[0]}


def reference_targets(*, data: SRDataset, published: dict[str, float],
                      validation: ValidationSet) -> tuple[dict[str, float], str]:
    """(reference name -> its official weights' PSNR on `data.valid`, where that figure comes from): the shipped
    measurement for the same validation images; the published figure when the images are the edition's whole
    `validation` set; else the published figure as a stand-in (other images: the map is then a guess)."""
    figures = shipped()
    if figures and figures.get("valid") == data.to_dict()["valid_names"]:
        return dict(figures["references"]), "official weights on these validation images (shipped)"
    if {pair.name for pair in data.valid} == validation.image_names():
        return dict(published), "published (these are the challenge's validation images)"
    return dict(published), "published, as a stand-in: these validation images are not the challenge's"


def shipped_points(*, key: dict[str, Any]) -> list[CalibrationPoint]:
    """The shipped kit points, when they were measured in exactly this setting (budget, rung, data, seed, device)."""
    entry = _shipped_setting(key)
    if entry is None:
        return []
    return [CalibrationPoint(name=p["name"], run=ProxyRun(tuple(map(tuple, p["curve"])), p["params"], p.get("activations_m")),
                             target=p["target"], published=p.get("published"), source="shipped kit",
                             edition=p.get("edition"))
            for p in entry["points"]]


def shipped_reference_run(*, key: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A reference's shipped proxy run in exactly this setting ({"psnr", "psnr_curve", "params", "activations_m",
    "train_seconds"}), or None: measured by bench.zoo_fidelity with the search's trainer, so a study reads it
    instead of training the reference again at a promotion rung."""
    entry = _shipped_setting(key)
    run = entry.get("reference_runs", {}).get(name) if entry else None
    return dict(run) if run else None


def kit_points(kit_dir: str | Path, *, data: SRDataset, budget: train_proxy.Budget, seed: int, device: str,
               bicubic_psnr: float, cache: MeasurementCache, say: Any = logger.info) -> list[CalibrationPoint]:
    """Every entry of a user's kit that trains here and has weights beating bicubic, measured (or read from the
    cache) in the study's setting."""
    points = []
    for entry in read_kit(kit_dir):
        if not entry.has_weights:
            continue
        try:
            row = measure_architecture(entry.model, data=data, budget=budget, seed=seed, cache=cache,
                                       device=device, official=True)
        except (ModelFileError, RuntimeError) as error:
            say(f"  calibration: {entry.name} left out: {error}")
            continue
        if row["official_psnr"] <= bicubic_psnr:
            say(f"  calibration: {entry.name} left out: its weights score {row['official_psnr']:.2f} dB, under bicubic")
            continue
        points.append(CalibrationPoint(name=entry.name, run=ProxyRun.from_record(row), target=row["official_psnr"],
                                       published=entry.published.get("val_psnr"), source=f"kit {kit_dir}",
                                       edition=entry.edition))
    return points


def on_scale_of(points: list[CalibrationPoint], edition: Edition) -> list[CalibrationPoint]:
    """The points with their published figure kept only where it was published on `edition`'s validation set
    (a 2022 entry's DIV2K figure says nothing of the DIV2K_LSDIR scale); the proxy-to-target part always holds."""
    return [point if _validation_of(point.edition) == edition.validation else dataclasses.replace(point, published=None)
            for point in points]


def _validation_of(year: int | None) -> ValidationSet | None:
    try:
        return get_edition(year).validation if year is not None else None
    except ValueError:
        return None


def reference_points(records: dict[str, dict[str, Any]], targets: dict[str, float], published: dict[str, float],
                     *, source: str) -> list[CalibrationPoint]:
    """The study's measured references that have a known target."""
    return [CalibrationPoint(name=name, run=ProxyRun.from_record(record), target=targets[name],
                             published=published.get(name), source=f"reference: {source}")
            for name, record in records.items() if name in targets and record.get("psnr_curve")]
