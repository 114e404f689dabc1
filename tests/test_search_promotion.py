"""Promotion through the rungs: who climbs, when it stops, what a rerun continues, the command it prints."""

from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState, create_trial

import run_search
from evaluators.device import resolve_device
import search.promotion as promotion
from search.runner import rerun_command
from search.settings import SearchSettings
from search.trial_gate import StudyLock
from train_proxy import get_budget


def study_of(verdicts):
    """An in-memory study whose trials carry these rung-0 verdicts, ranked in this order on the board."""
    study = optuna.create_study(directions=["minimize", "maximize"])
    for verdict in verdicts:
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.5, 20.0],
                                     user_attrs={"verdict": verdict, "train_wall_seconds": 10.0}))
    board = pd.DataFrame({"name": "trial", "number": range(len(verdicts))})
    return study, board


def objective(**settings):
    """What promotion reads of a TrialObjective; an in-memory storage takes no promotion lock unless one is given."""
    settings = {"storage": "sqlite:///:memory:", **settings}
    return SimpleNamespace(settings=SearchSettings(budget="smoke", **settings), budget=get_budget("smoke"),
                           edition=None)


@pytest.fixture
def outcomes(monkeypatch):
    """climb() replaced: each (trial, rung) gets the verdict given here, and is recorded as trained."""
    planned, trained = {}, []

    def climb(study, *, objective, ladder, number, rung, say):
        trained.append((number, rung))
        study.set_user_attr(f"rung{rung}:trial{number}", {"verdict": planned[(number, rung)],
                                                          "train_wall_seconds": 10.0 * 4 ** rung})

    monkeypatch.setattr(promotion, "climb", climb)
    monkeypatch.setattr(promotion, "training_estimate",
                        lambda study, *, number, rung, **kw: planned.get(("seconds", number, rung), 10.0 * 4 ** rung))
    return planned, trained


def test_the_leader_climbs_until_its_verdict_is_decided(outcomes):
    planned, trained = outcomes
    study, board = study_of(["uncertain", "uncertain", "feasible"])
    planned.update({(0, 1): "uncertain", (0, 2): "feasible"})
    outcome = promotion.promote(study, objective=objective(confirm_minutes=10), board=board, say=print)
    assert trained == [(0, 1), (0, 2)] and "decided: feasible at rung 2" in outcome.stopped
    assert study.user_attrs["promotion_seconds"] >= 0.0 and outcome.trained == trained


def test_a_leader_that_falls_hands_over_to_the_next_best(outcomes):
    planned, trained = outcomes
    study, board = study_of(["uncertain"] * 8)
    planned.update({(0, 1): "infeasible", (1, 1): "feasible"})
    outcome = promotion.promote(study, objective=objective(confirm_minutes=10), board=board, say=print)
    assert trained == [(0, 1), (1, 1)] and "#1 is decided" in outcome.stopped


def test_a_rung_takes_the_top_one_over_eta_only(outcomes):
    planned, trained = outcomes
    study, board = study_of(["uncertain"] * 7)  # 7 // 4: one of rung 0 may climb
    planned.update({(0, 1): "infeasible"})
    outcome = promotion.promote(study, objective=objective(confirm_minutes=10), board=board, say=print)
    assert trained == [(0, 1)] and "rung 1 holds its share of rung 0 (the top 1 of 7)" in outcome.stopped


def test_outside_the_calibration_span_never_climbs_ahead_of_a_candidate_inside(outcomes):
    planned, trained = outcomes
    study, board = study_of(["outside calibration", "uncertain"])
    planned.update({(1, 1): "feasible"})
    promotion.promote(study, objective=objective(confirm_minutes=10), board=board, say=print)
    assert trained == [(1, 1)]


def test_the_time_budget_stops_before_a_training_and_a_larger_one_resumes_without_training_again(outcomes):
    planned, trained = outcomes
    study, board = study_of(["uncertain", "uncertain"])
    planned.update({(0, 1): "uncertain", (0, 2): "uncertain"})
    outcome = promotion.promote(study, objective=objective(confirm_minutes=0.5), board=board, say=print)
    # 40 s for rung 1 fits in 30? no: nothing is trained, and the next step is said with its time
    assert trained == [] and outcome.next_step == promotion.NextStep(0, 1, pytest.approx(40 / 60))
    assert outcome.stopped == ("#0 stays uncertain at rung 0: the promotion budget (0.5 min) leaves 0.5 min, rung 1 "
                               "would take about 0.7 min")
    outcome = promotion.promote(study, objective=objective(confirm_minutes=5), board=board, say=print)
    assert trained == [(0, 1), (0, 2)] and outcome.stopped.startswith("#0 stays uncertain at rung 2: the top rung")
    outcome = promotion.promote(study, objective=objective(confirm_minutes=50), board=board, say=print)
    assert trained == [(0, 1), (0, 2)]  # a rerun: what is stored is not trained again
    assert promotion.current_verdicts(study, [0])[0]["rung"] == 2


def test_when_the_leader_cannot_climb_in_time_the_next_one_may_decide_the_winner(outcomes):
    planned, trained = outcomes
    study, board = study_of(["uncertain"] * 8)  # 8 // 4: two of rung 0 may climb
    planned.update({(0, 1): "uncertain", ("seconds", 0, 2): 3000.0, (1, 1): "feasible"})
    outcome = promotion.promote(study, objective=objective(confirm_minutes=5), board=board, say=print)
    assert trained == [(0, 1), (1, 1)]  # #0 would need 50 min at rung 2: #1, next, fits and is decided
    assert outcome.stopped.startswith("#0 stays uncertain at rung 1: the promotion budget")
    assert outcome.stopped.endswith("the best-ranked decided one is #1, feasible")
    assert outcome.next_step == promotion.NextStep(0, 2, 50.0)


def test_a_worker_with_no_trial_to_start_climbs_one_rung_when_no_other_promotes(outcomes, monkeypatch, tmp_path):
    """With several workers, promotion starts as soon as a worker waits for the others' last trials (ASHA); one
    process climbs at a time, and the promotion after the trials goes on from where the workers left it."""
    planned, trained = outcomes
    study, board = study_of(["uncertain"] * 8)
    planned.update({(0, 1): "uncertain", (0, 2): "feasible"})
    monkeypatch.setattr(promotion, "read_study", lambda study, **kw: (None, None, board))
    worker = objective(confirm_minutes=10, storage=f"journal:{tmp_path / 'study.journal'}")
    waiting = dict(study=study, objective=worker, track=None, say=print)

    with StudyLock(worker.settings.storage_url, worker.settings.name, purpose="promote").held():  # another promotes
        assert promotion.promote_while_waiting(**waiting) is False
    assert trained == []
    assert promotion.promote_while_waiting(**waiting) is True and trained == [(0, 1)]  # one climb, then it asks again
    assert promotion.promote_while_waiting(**{**waiting, "objective": objective(confirm_minutes=0)}) is False
    outcome = promotion.promote(study, objective=worker, board=board, say=print)
    assert trained == [(0, 1), (0, 2)] and "decided: feasible at rung 2" in outcome.stopped
    planned.clear()  # decided: a waiting worker has nothing left to train
    assert promotion.promote_while_waiting(**waiting) is False and len(trained) == 2


def test_no_promotion_budget_trains_nothing(outcomes):
    planned, trained = outcomes
    study, board = study_of(["uncertain"])
    outcome = promotion.promote(study, objective=objective(confirm_minutes=0), board=board, say=print)
    assert trained == [] and outcome.next_step.rung == 1


def test_the_rerun_command_resumes_the_same_study(tmp_path):
    settings = SearchSettings(track="complexity", budget="smoke", seed=3, trials=9, results=str(tmp_path / "r"),
                              latency_input=(3, 24, 36), early_stop=False, reduction_factor=3, max_rung=1,
                              confirm_minutes=2.0)
    settings = settings.replace(storage=settings.storage_url)  # as run_search fixes it
    command = rerun_command(settings, confirm_minutes=7)
    words = command.split()
    assert words[:2] == ["python", "run_search.py"] and words[-2:] == ["--confirm-minutes", "7"]
    assert "--storage" not in words  # the default storage of the run folder is found again
    options = run_search.search_parser().parse_args(words[2:])
    again = SearchSettings(**{k: v for k, v in vars(options).items()
                              if f"--{k.replace('_', '-')}" not in run_search.REPLACED_BY_PROMOTION})
    again = again.replace(device=str(resolve_device(again.device)))  # as run_search resolves "auto"
    assert again.defining() == settings.defining() and again.name == settings.name
    assert (again.confirm_minutes, again.max_rung, again.trials) == (7, 1, 9)


def test_the_re_evaluation_flags_say_what_replaced_them(capsys, tmp_path):
    assert run_search.main(["--reeval-top", "2", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --reeval-top was replaced by promotion")
    assert "--confirm-minutes" in err[0] and not (tmp_path / "r").exists()
