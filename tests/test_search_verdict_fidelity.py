"""The verdict's scoring (bench.zoo_fidelity's arithmetic), the known calibration points and the measurement cache."""

import dataclasses

import numpy as np
import pytest

import train_proxy
from data import load_dataset
from data.dataset import ImagePair
from editions import ValidationSet, get_edition
from search.verdict import fidelity, known_quality
from search.verdict.calibration import CalibrationPoint, ProxyRun
from search.verdict.measurement_cache import MeasurementCache, measure_architecture, measurement_key
from evaluators.counter import Counter, count_complexity
from spaces import ArchConfig, build_model


def row(name, target, published, final, params=300_000, skipped=False):
    record = {"entry": name, "edition": 2022, "published": published, "official_psnr": target, "params": params,
              "curve": [[0, 12.0], [75, final - 0.6], [113, final - 0.3], [150, final]]}
    return {"entry": name, "skipped": "cannot import"} if skipped else record


def test_broken_and_untrainable_entries_are_not_calibration_points():
    rows = [row("a", 29.5, 29.0, 27.0), row("broken", 26.6, 27.8, 27.0), row("gone", 0, 0, 0, skipped=True)]
    points = fidelity.calibration_points(rows, bicubic_psnr=27.92)
    assert [p.name for p in points] == ["a"] and points[0].edition == 2022


def test_verdict_table_counts_the_two_forbidden_errors():
    results = [{"name": "ok", "published": 29.05, "verdict": "feasible"},
               {"name": "hard", "published": 29.00, "verdict": "infeasible"},
               {"name": "near", "published": 28.95, "verdict": "feasible"},  # inside the 0.1 dB band: no error
               {"name": "bad", "published": 28.47, "verdict": "feasible"},
               {"name": "fine", "published": 28.72, "verdict": "uncertain"}]
    table = fidelity.verdict_table(results, floor=29.0)
    assert table["above_called_infeasible"] == ["hard"] and table["under_called_feasible"] == ["bad"]
    assert table["published_at_or_above_floor"] == {"feasible": 1, "uncertain": 0, "infeasible": 1,
                                                     "outside calibration": 0}
    assert table["uncertain_share"] == pytest.approx(0.2)
    # published 0.1 dB or more from the floor: ok (29.05 is not), bad and fine; bad alone is decided
    assert table["away_from_floor"] == 2 and table["decided_away_from_floor"] == ["bad"]
    assert table["decided_share_away_from_floor"] == pytest.approx(0.5)


def test_leave_one_out_never_sees_the_point_it_predicts():
    rng = np.random.default_rng(0)
    points = [CalibrationPoint(f"p{i}", ProxyRun(((0, 12.0), (150, f)), 300_000 + 1000 * i), 29.0 + 0.1 * (f - 26),
                               published=28.5 + 0.1 * (f - 26)) for i, f in enumerate(rng.uniform(25, 28, 12))]
    odd = dataclasses.replace(points[0], target=points[0].target + 5.0)  # an outlier cannot predict itself
    results = fidelity.leave_one_out([odd, *points[1:]], floor=29.0, features="proxy")
    assert abs(results[0]["on_valid"] - points[0].target) < 0.05  # predicted from the others' law
    scored = fidelity.score(fidelity.leave_one_out(points, floor=29.0, features="proxy"), floor=29.0)
    assert scored["official_on_valid"]["spearman"] == pytest.approx(1.0) and scored["n"] == 12


def test_shipped_points_apply_only_to_their_own_setting():
    shipped = known_quality.shipped()
    assert shipped, "search/verdict/calibration_points.json is missing: run python3 -m bench.zoo_fidelity --ship"
    data = load_dataset(None)
    key = known_quality.setting_key(data=data, budget=train_proxy.get_budget("quick"), seed=0, device="cpu")
    rung0 = next(entry for entry in shipped["settings"] if entry["rung"] == 0)
    assert len(known_quality.shipped_points(key=key)) == len(rung0["points"]) >= 20
    assert all(point.run.activations_m > 0 for point in known_quality.shipped_points(key=key))
    for other in ({**key, "seed": 1}, {**key, "device_type": "cuda"}):
        assert known_quality.shipped_points(key=other) == []
    targets, source = known_quality.reference_targets(data=data, published={"imdn": 29.13},
                                                      validation=ValidationSet.DIV2K)
    assert targets["imdn"] == pytest.approx(29.56, abs=0.01) and "shipped" in source


@pytest.mark.parametrize("names, validation, own", [
    ([f"{i:04d}" for i in range(801, 901)], ValidationSet.DIV2K, True),
    ([f"{i:06d}" for i in range(1, 101)] + [f"{i:04d}" for i in range(801, 901)], ValidationSet.DIV2K_LSDIR, True),
    ([f"{i:04d}" for i in range(801, 901)], ValidationSet.DIV2K_LSDIR, False),  # DIV2K's half of the 2024+ set
])
def test_published_targets_are_the_challenges_own_only_on_its_whole_validation_set(names, validation, own):
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    pair = ImagePair(name="x", hr=np.zeros((16, 16, 3), dtype=np.uint8), lr=image)
    data = dataclasses.replace(load_dataset(None), valid=tuple(dataclasses.replace(pair, name=n) for n in names))
    targets, source = known_quality.reference_targets(data=data, published={"span": 26.94}, validation=validation)
    assert targets == {"span": 26.94}
    assert ("stand-in" not in source) == own


def test_published_figures_of_another_validation_set_are_dropped():
    point = CalibrationPoint("2022:4", ProxyRun(((0, 12.0), (150, 27.3)), 317_218), 29.48, published=29.00,
                             edition=2022)
    assert known_quality.on_scale_of([point], get_edition(2022))[0].published == 29.00
    assert known_quality.on_scale_of([point], get_edition(2024))[0].published is None


def test_the_measurement_cache_trains_once(tmp_path, monkeypatch):
    data = load_dataset(None)
    cache = MeasurementCache(tmp_path)
    config = ArchConfig(block="rlfb", num_blocks=1, channels=8, mid_channels=8)
    budget = train_proxy.get_budget("smoke", iterations=4)
    first = measure_architecture(config, data=data, budget=budget, seed=0, cache=cache)
    calls = []
    monkeypatch.setattr(train_proxy, "train", lambda *a, **k: calls.append(1))
    again = measure_architecture(config, data=data, budget=budget, seed=0, cache=cache)
    assert again == first and calls == [] and len(first["curve"]) == budget.checkpoints + 1
    assert first["activations_m"] == pytest.approx(
        count_complexity(build_model(config), counter=Counter.NTIRE2022).activations_m)
    stale = {key: value for key, value in first.items() if key != "activations_m"}  # cached before the count was kept
    cache.put(measurement_key(config, data=data, budget=budget, seed=0, device="cpu", what="proxy"), stale)
    assert measure_architecture(config, data=data, budget=budget, seed=0, cache=cache) == first and calls == []
    with pytest.raises(LookupError, match="not measured"):
        measure_architecture(config, data=data, budget=budget, seed=1, cache=cache, train=False)



def test_the_nested_choice_picks_the_feature_set_the_law_needs():
    rng = np.random.default_rng(5)
    points = []
    for i in range(16):
        final, params, acts = rng.uniform(26.5, 27.5), int(rng.uniform(1.5e5, 9e5)), rng.uniform(40, 200)
        target = 29.3 + 0.3 * np.log10(acts / 100) + rng.normal(0, 0.01)
        points.append(CalibrationPoint(f"p{i}", ProxyRun(((0, 12.0), (150, final)), params, acts), target))
    nested = fidelity.nested_feature_choice(points, floor=29.0)
    assert nested["chosen"] == {"proxy+size+acts": 16}
    assert nested["official_on_valid"]["mae"] < 0.03 and nested["n"] == 16
