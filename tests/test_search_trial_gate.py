"""Workers ask for trials through the study's lock: never more started than --trials, a failed trial run again."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.study import make_storage
from search.trial_gate import BoundedStudy, StudyFull, StudyLock

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def journal_study(tmp_path: Path) -> tuple[str, optuna.Study]:
    url = f"journal:{tmp_path / 'study.journal'}"
    return url, optuna.create_study(study_name="gate", storage=make_storage(url))


def bounded(study: optuna.Study, url: str, *, target: int, stop=lambda: False) -> BoundedStudy:
    """A worker's view of `study`: its own storage connection, as another process would have."""
    own = optuna.load_study(study_name=study.study_name, storage=make_storage(url))
    return BoundedStudy(own, target=target, lock=StudyLock(url, study.study_name),
                        claim=lambda trial: trial.set_user_attr("claimed", True), stop=stop, poll_s=0.05)


def run(worker: BoundedStudy, objective, **kwargs) -> None:
    with contextlib.suppress(StudyFull):
        worker.optimize(objective, **kwargs)


def test_workers_asking_at_once_never_start_more_than_the_target(tmp_path):
    url, study = journal_study(tmp_path)
    barrier = threading.Barrier(3)

    def objective(trial: optuna.Trial) -> float:
        time.sleep(0.02)
        return 1.0

    def worker() -> None:
        barrier.wait()
        run(bounded(study, url, target=7), objective)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 7
    assert all(t.user_attrs["claimed"] for t in trials)  # each claimed as it was created


def test_a_worker_without_room_waits_and_runs_again_a_trial_that_failed(tmp_path):
    url, study = journal_study(tmp_path)
    started = threading.Event()

    def failing(trial: optuna.Trial) -> float:
        started.set()
        time.sleep(0.5)
        raise RuntimeError("its worker lost it")

    first = threading.Thread(target=run, args=(bounded(study, url, target=1), failing),
                             kwargs={"n_trials": 1, "catch": (RuntimeError,)})
    first.start()
    assert started.wait(timeout=60)
    began = time.monotonic()
    run(bounded(study, url, target=1), lambda trial: 1.0)  # no room while the first runs; then its trial again
    first.join(timeout=60)
    assert time.monotonic() - began >= 0.3
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_waiting_worker_stops_when_asked(tmp_path):
    url, study = journal_study(tmp_path)
    running = study.ask()  # another worker's trial, running for ever
    asked = []
    with pytest.raises(StudyFull, match="stopped while other workers' trials ran"):
        bounded(study, url, target=1, stop=lambda: asked.append(1) or len(asked) > 2).ask()
    assert [t.number for t in study.get_trials()] == [running.number]  # it started nothing


def test_a_full_study_starts_nothing(tmp_path):
    url, study = journal_study(tmp_path)
    study.tell(study.ask(), 1.0)
    with pytest.raises(StudyFull, match="1 of 1 trials done"):
        bounded(study, url, target=1).ask()
    assert len(study.get_trials()) == 1


def test_a_worker_without_room_does_other_work_meanwhile(tmp_path):
    """While the last trial runs elsewhere, the waiting worker's `idle` work (promotion) runs; True asks again at
    once, without sleeping."""
    url, study = journal_study(tmp_path)
    started, calls = threading.Event(), []

    def slow(trial: optuna.Trial) -> float:
        started.set()
        time.sleep(0.6)
        return 1.0

    first = threading.Thread(target=run, args=(bounded(study, url, target=1), slow))
    first.start()
    assert started.wait(timeout=60)
    waiting = bounded(study, url, target=1)
    waiting.poll_s = 10.0  # a sleep would outlast the test: only `idle` returning True keeps it asking
    waiting.idle = lambda: calls.append(time.monotonic()) or (time.sleep(0.05) or True)
    run(waiting, lambda trial: 1.0)
    first.join(timeout=60)
    assert len(calls) >= 3  # asked again and again while the first trial ran
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]


def test_try_held_goes_on_without_a_lock_another_holds(tmp_path):
    url, study = journal_study(tmp_path)
    mine, theirs = (StudyLock(url, "gate", purpose="promote") for _ in range(2))
    asking = StudyLock(url, "gate")
    with theirs.held():
        with mine.try_held() as got:
            assert got is False
        with asking.try_held() as got:
            assert got is True  # another purpose, another lock
    with mine.try_held() as got:
        assert got is True
