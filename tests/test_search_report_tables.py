import math

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState, create_trial

from search.report.tables import leaderboard, pareto_mask, trials_frame
from editions import get_edition
from search.tracks import TRACKS, get_track, rank
from spaces import ArchConfig

RUNTIME = TRACKS["runtime"]


def add(study, number_label, *, latency, psnr, params=300_000, c_psnr=-0.1, trained=True, reference="",
        state=TrialState.COMPLETE, flops=20.0, verdict=None):
    config = ArchConfig(channels=16 + 2 * len(study.trials))
    attrs = {"config": config.to_dict(), "label": number_label, "latency_ratio": latency, "psnr": psnr,
             "params": params, "flops_g": flops, "activations_m": 50.0, "memory_mb": 10.0, "trained": trained,
             "psnr_predicted": 29.0 - c_psnr}
    if reference:
        attrs["reference"] = reference
    if verdict:
        attrs["verdict"] = verdict
    system = {"constraints:params": float(params - 893_936), "constraints:psnr": c_psnr}
    values = [latency, psnr] if state == TrialState.COMPLETE else None
    study.add_trial(create_trial(state=state, values=values, user_attrs=attrs, system_attrs=system))


@pytest.fixture
def study():
    study = optuna.create_study(directions=RUNTIME.directions)
    add(study, "imdn", latency=1.00, psnr=23.2, params=893_936, reference="imdn")
    add(study, "rlfn", latency=0.40, psnr=22.4, params=317_218, reference="rlfn")
    add(study, "fast-good", latency=0.30, psnr=22.6)              # front
    add(study, "slow-better", latency=0.80, psnr=23.0)            # front
    add(study, "dominated", latency=0.85, psnr=22.9)              # dominated by slow-better
    add(study, "too-big", latency=0.20, psnr=21.0, params=900_000, trained=False)   # infeasible: params
    add(study, "too-weak", latency=0.10, psnr=21.5, c_psnr=0.4)   # infeasible: PSNR floor
    add(study, "pruned", latency=0.5, psnr=18.0, state=TrialState.PRUNED)
    return study


def test_feasibility_follows_the_constraints_and_the_training(study):
    frame = trials_frame(study, RUNTIME).set_index("label")
    assert frame.loc["fast-good", "feasible"] and frame.loc["rlfn", "feasible"]
    assert not frame.loc["too-big", "feasible"] and frame.loc["too-big", "c_params"] == 6_064
    assert not frame.loc["too-weak", "feasible"]
    assert not frame.loc["pruned", "feasible"]
    assert math.isnan(frame.loc["fast-good", "c_latency"])  # not a constraint of the runtime track


def test_pareto_front_is_feasible_and_non_dominated(study):
    frame = trials_frame(study, RUNTIME)
    front = set(frame.loc[frame["pareto"], "label"])
    # too-big and too-weak would dominate on latency but are infeasible; dominated is dominated.
    assert front == {"fast-good", "slow-better", "imdn"}


def test_pareto_mask_on_a_plain_frame():
    frame = pd.DataFrame({"latency_ratio": [1.0, 0.5, 0.5, 0.2], "psnr": [23.0, 22.0, 21.0, 20.0]})
    assert list(pareto_mask(frame, RUNTIME)) == [True, True, False, True]


def test_leaderboard_ranks_by_latency_with_references_beside(study):
    frame = trials_frame(study, RUNTIME)
    refs = pd.DataFrame([{"name": "span", "label": "span", "config": "{}", "params": 150_688, "flops_g": 9.0,
                          "activations_m": 30.0, "convs": 22, "latency_ms": 1.0, "latency_ratio": 0.35,
                          "memory_mb": 5.0, "psnr": 22.5, "psnr_predicted": 29.1}])
    board = leaderboard(frame, refs, RUNTIME, edition=get_edition(2022))
    assert list(board["label"]) == ["fast-good", "span", "rlfn", "slow-better", "dominated", "imdn"]
    # span has no trial in this study (only its stored record): ranked, but its feasibility is not established
    assert list(board["feasible"]) == [True, False, True, True, True, True]
    assert list(board["rank"]) == [1, 2, 3, 4, 5, 6]
    assert list(board["name"])[:3] == ["trial", "span", "rlfn"]


def test_complexity_ranking_sums_params_and_flops_ranks():
    track = TRACKS["complexity"]
    frame = pd.DataFrame({"params": [100, 200, 300], "flops_g": [30.0, 10.0, 20.0], "latency_ratio": [0.9, 0.5, 0.1]})
    # rank sums 1+3=4, 2+1=3, 3+2=5: the second row wins.
    score = rank(frame, track=track, edition=get_edition(2022), baseline={})
    assert list(score.sort_values().index) == [1, 0, 2]


def test_leaderboard_of_a_weighted_edition_scores_against_the_baseline_row(study):
    """2026: 0.8 exp(2 runtime ratio) + 0.1 exp(2 FLOPs/SPAN's) + 0.1 exp(2 params/SPAN's); the baseline scores e^2."""
    edition = get_edition(2026)
    track = get_track("runtime", edition)
    frame = trials_frame(study, track)
    refs = pd.DataFrame([{"name": "span", "label": "span", "config": "{}", "params": 150_688, "flops_g": 9.83,
                          "activations_m": 30.0, "convs": 22, "latency_ms": 1.0, "latency_ratio": 1.0,
                          "memory_mb": 5.0, "psnr": 22.5, "psnr_predicted": 26.94}])
    board = leaderboard(frame, refs, track, edition=edition).set_index("label")
    assert board.loc["span", "score"] == pytest.approx(math.exp(2))
    fast = board.loc["fast-good"]
    expected = (0.8 * math.exp(2 * fast["latency_ratio"]) + 0.1 * math.exp(2 * fast["flops_g"] / 9.83)
                + 0.1 * math.exp(2 * fast["params"] / 150_688))
    assert fast["score"] == pytest.approx(expected)
    assert list(board["rank"]) == sorted(board["rank"]) and board["score"].is_monotonic_increasing


def test_weighted_leaderboard_without_its_baseline_is_an_error(study):
    edition = get_edition(2024)
    with pytest.raises(ValueError, match="baseline's measured"):
        leaderboard(trials_frame(study, RUNTIME), pd.DataFrame(columns=["name"]), RUNTIME, edition=edition)


def test_a_row_outside_the_calibration_span_never_ranks_ahead_of_one_inside():
    """The smoke-budget study of the issue: SPAN's proxy (10.05 dB after 12 steps) lies far under the references'
    (17.6-19.0 dB), so its prediction is a guess; fastest and smallest, it used to rank first."""
    study = optuna.create_study(directions=RUNTIME.directions)
    add(study, "imdn", latency=1.00, psnr=18.99, params=893_936, reference="imdn")
    add(study, "rlfn", latency=0.50, psnr=18.49, params=317_218, reference="rlfn")
    add(study, "span", latency=0.32, psnr=10.05, params=150_688, reference="span", verdict="outside calibration")
    add(study, "tiny", latency=0.05, psnr=8.60, params=1_344, verdict="outside calibration")
    add(study, "kept", latency=0.45, psnr=18.30, params=300_000, verdict="uncertain")
    board = leaderboard(trials_frame(study, RUNTIME), pd.DataFrame(columns=["name"]), RUNTIME,
                        edition=get_edition(2022))
    assert list(board["label"]) == ["kept", "rlfn", "imdn", "tiny", "span"]
    assert list(board["rank"]) == [1, 2, 3, 4, 5]


def test_a_promoted_trial_is_judged_by_its_highest_rung(study):
    number = int(trials_frame(study, RUNTIME).set_index("label").loc["fast-good", "number"])
    study.set_user_attr(f"rung1:trial{number}", {"psnr": 24.1, "psnr_predicted": 29.02, "psnr_low": 28.95,
                                                 "psnr_high": 29.09, "verdict": "uncertain"})
    study.set_user_attr(f"rung2:trial{number}", {"psnr": 26.0, "psnr_predicted": 28.80, "psnr_low": 28.70,
                                                 "psnr_high": 28.90, "verdict": "infeasible"})
    row = trials_frame(study, RUNTIME).set_index("label").loc["fast-good"]
    assert (row["rung"], row["rung_psnr"], row["psnr_predicted"], row["verdict"]) == (2, 26.0, 28.80, "infeasible")
    assert row["verdicts"] == "r1 uncertain > r2 infeasible"  # rung 0 gave no verdict in this made-up study
    assert row["psnr"] == 22.6 and not row["feasible"]  # the objective stays rung 0's; the verdict cuts it
    board = leaderboard(trials_frame(study, RUNTIME), pd.DataFrame(columns=["name"]), RUNTIME,
                        edition=get_edition(2022))
    assert "fast-good" not in set(board["label"])
