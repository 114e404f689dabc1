"""The benchmarks' own arithmetic: hypervolume, domination, rank agreement, summaries and result files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_one_clear_line

from bench import common, zoo_fidelity
from bench.best_found import _dominates
from bench.proxy_fidelity import sample_architectures, summarise
from bench.search_efficiency import candidate_trajectory, feasible_hypervolume
from evaluators.complexity import count_params
from spaces import build_model, get_reference, inference_form


def test_hypervolume_of_two_points_is_the_union_of_their_boxes():
    # [0.5, 1] x [29, 29.5] (0.25) and [0.8, 1] x [29, 30] (0.2) overlap on [0.8, 1] x [29, 29.5] (0.1).
    assert feasible_hypervolume([(0.5, 29.5), (0.8, 30.0)], max_ratio=1.0, floor=29.0) == pytest.approx(0.35)


def test_hypervolume_ignores_dominated_points_and_points_outside_the_box():
    base = feasible_hypervolume([(0.5, 29.5)], max_ratio=1.0, floor=29.0)
    assert base == pytest.approx(0.25)
    more = [(0.5, 29.5), (0.6, 29.4), (1.2, 31.0), (0.1, 28.0), (1.0, 30.0)]
    assert feasible_hypervolume(more, max_ratio=1.0, floor=29.0) == pytest.approx(base)
    assert feasible_hypervolume([], max_ratio=1.0, floor=29.0) == 0.0


def test_trajectory_counts_feasible_candidates_only_in_trial_order():
    frame = pd.DataFrame([
        {"number": 0, "reference": "imdn", "state": "COMPLETE", "feasible": True, "latency_ratio": 1.0,
         "psnr_predicted": 29.1},
        {"number": 5, "reference": "", "state": "COMPLETE", "feasible": True, "latency_ratio": 0.5,
         "psnr_predicted": 29.5},
        {"number": 4, "reference": "", "state": "COMPLETE", "feasible": False, "latency_ratio": 0.2,
         "psnr_predicted": 28.0},
        {"number": 6, "reference": "", "state": "FAIL", "feasible": False, "latency_ratio": None,
         "psnr_predicted": None},
        {"number": 7, "reference": "", "state": "PRUNED", "feasible": False, "latency_ratio": 0.3,
         "psnr_predicted": 27.0},
    ])
    trajectory = candidate_trajectory(frame, floor=29.0)
    assert [point["trial"] for point in trajectory] == [4, 5, 7]
    assert [point["feasible"] for point in trajectory] == [0, 1, 1]
    assert [point["best_latency_ratio"] for point in trajectory] == [None, 0.5, 0.5]
    assert trajectory[-1]["hypervolume"] == pytest.approx(0.25)


@pytest.mark.parametrize("point, other, expected", [
    ((0.3, 27.0), (0.3, 26.0), True),   # as fast, better
    ((0.2, 26.0), (0.3, 26.0), True),   # faster, as good
    ((0.3, 26.0), (0.3, 26.0), False),  # equal is not domination
    ((0.2, 25.0), (0.3, 26.0), False),  # a trade-off
])
def test_domination(point, other, expected):
    assert _dominates(point, other) is expected


def test_rank_agreement_is_one_for_the_same_order_and_minus_one_reversed():
    assert common.rank_agreement([1, 2, 3, 4], [10, 20, 30, 40])["kendall_tau"] == pytest.approx(1.0)
    reversed_ = common.rank_agreement([1, 2, 3, 4], [4, 3, 2, 1])
    assert reversed_["kendall_tau"] == pytest.approx(-1.0) and reversed_["spearman_rho"] == pytest.approx(-1.0)


def test_sampled_architectures_fit_imdn_budget_and_span_small_to_large():
    picks = sample_architectures(count=5, space="mixed", seed=0, pool=60)
    params = [count_params(inference_form(build_model(config))) for _, config in picks]
    assert len({config.key() for _, config in picks}) == len(picks) == 5
    assert params == sorted(params) and params[-1] <= 893_936 and params[0] < params[-1] / 4


def test_fidelity_summary_ranks_and_gaps():
    archs = [(name, get_reference(name)) for name in ("imdn", "rfdn", "rlfn")]
    psnrs = {"imdn": (27.4, 28.0), "rfdn": (27.3, 27.9), "rlfn": (27.35, 27.7)}
    runs = {config.key(): {"label": name, "params": 1, "quick": {"psnr": psnrs[name][0]},
                           "long": {"psnr": psnrs[name][1]}} for name, config in archs}
    summary = summarise(archs, runs, proxy="quick", long="long")
    ranks = {row["label"]: (row["proxy_rank"], row["long_rank"]) for row in summary["rows"]}
    assert ranks == {"imdn": (1, 1), "rfdn": (3, 2), "rlfn": (2, 3)}
    assert summary["kendall_tau"] == pytest.approx(1 / 3)
    assert summary["reference_gaps_db"]["long"] == {"imdn": 0.0, "rfdn": -0.1, "rlfn": -0.3}


def test_results_are_written_whole_with_the_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    path = common.write_result("example", {"value": 1.5})
    written = json.loads(path.read_text())
    assert written["value"] == 1.5 and written["machine"]["torch"] and written["machine"]["cpu_cores_usable"] >= 1
    assert [p.name for p in tmp_path.iterdir()] == ["example.json"]
    assert common.load_result("example") == written and common.load_result("missing") is None


def empty_kit(folder: Path) -> Path:
    """A kit folder whose manifest holds no entry: zoo_fidelity's whole path in a second, nothing to train."""
    folder.mkdir()
    (folder / "manifest.csv").write_text("edition,id,team,module,factory,args,weights,state_key,strip_prefix,"
                                         "data_range\n")
    return folder


def test_zoo_fidelity_writes_its_results_where_out_says(tmp_path, capsys):
    out = tmp_path / "elsewhere" / "fidelity.json"
    assert zoo_fidelity.main(["--kit", str(empty_kit(tmp_path / "kit")), "--no-train", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["kit"] == str(tmp_path / "kit")
    assert not common.result_path(out.stem).exists()  # not bench/results/fidelity.json
    assert f"wrote {out}" in capsys.readouterr().out


def test_zoo_fidelity_refuses_an_out_that_is_a_folder(tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    code = zoo_fidelity.main(["--kit", str(empty_kit(tmp_path / "kit")), "--no-train", "--out", str(folder)])
    assert_one_clear_line(code, capsys.readouterr().err, f"--out {folder} is a folder",
                          f"e.g. {folder / 'zoo_fidelity.json'}")
    assert not any(folder.iterdir())
