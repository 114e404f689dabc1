"""Crash safety: kill -9 and rerun, Ctrl-C and rerun, failing candidates, interrupted references."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import STUDY, load_trials, sqlite_url, started_trial, wait_for
from optuna.trial import FrozenTrial, TrialState

import train_proxy
from search import candidate
from search.trial_loop import SearchStalled, optimize
from search.study import open_study, reap_dead_workers, requeue
from editions import get_edition

REFERENCES = get_edition(2022).references  # the default edition's

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def running_trial(results: Path, *, min_number: int):
    """A candidate running with its parameters chosen: what `kill -9 mid-trial` must not lose."""
    trial = started_trial(sqlite_url(results), min_number=min_number)
    return trial if trial is not None and "config" in trial.user_attrs else None


def done(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def references_in(study: optuna.Study) -> dict[str, dict]:
    return {name: study.user_attrs[f"reference:{name}"] for name in REFERENCES}


def test_kill_9_mid_trial_then_rerun_resumes(start_cli, run_cli, search_args, tmp_path):
    results = tmp_path / "results"
    args = search_args(results, "--trials", "6")
    log = tmp_path / "first.log"
    process = start_cli(*args, log=log)
    victim = wait_for(lambda: running_trial(results, min_number=len(REFERENCES)), process=process, log=log,
                      what="a candidate trial to run")
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    before = {t.number: t for t in load_trials(sqlite_url(results))}
    study = optuna.load_study(study_name=STUDY, storage=sqlite_url(results))
    references_before = references_in(study)
    assert before[victim.number].state == TrialState.RUNNING  # what a kill -9 leaves behind

    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Traceback" not in rerun.stderr

    study = optuna.load_study(study_name=STUDY, storage=sqlite_url(results))
    trials = study.get_trials()
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs["fail_reason"] == f"worker {socket.gethostname()}:{process.pid} died"
    assert len(done(trials)) == 6  # the study went on to the requested number
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # The killed candidate was run again, with the same parameters.
    retried = [t for t in trials if t.number > victim.number and t.params == killed.params]
    assert retried and retried[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    # No completed trial was lost or changed.
    for number, old in before.items():
        if old.state in (TrialState.COMPLETE, TrialState.PRUNED):
            assert trials[number].state == old.state and trials[number].values == old.values
            assert trials[number].user_attrs == old.user_attrs
    # The references were measured once, before the kill, and not again.
    assert references_in(study) == references_before
    reference_trials = [t for t in trials if "reference" in t.user_attrs]
    assert sorted(t.user_attrs["reference"] for t in reference_trials) == sorted(REFERENCES)
    assert all(t.number < len(REFERENCES) and t.state == TrialState.COMPLETE for t in reference_trials)
    rerun_trials = [int(n) for n in re.findall(r"^\[\s*\d+/6\]\s+#(\d+)\s", rerun.stdout, flags=re.M)]
    assert len(rerun_trials) == 6 - len(done(list(before.values())))  # the rerun ran what was missing
    assert min(rerun_trials) > victim.number  # candidates only: no reference again


def test_ctrl_c_inside_a_trial_stops_cleanly_and_says_how_to_resume(start_cli, search_args, study_with_references,
                                                                   tmp_path):
    results = study_with_references
    log = tmp_path / "search.log"
    process = start_cli(*search_args(results, "--trials", "8"), log=log)
    victim = wait_for(lambda: running_trial(results, min_number=len(REFERENCES)), process=process, log=log,
                      what="a candidate trial to run")
    before = {t.number: t for t in load_trials(sqlite_url(results)) if t.state.is_finished()}
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    output = log.read_text()
    assert "Rerun the same command to resume" in output
    assert "Traceback" not in output
    trials = load_trials(sqlite_url(results))
    assert trials[victim.number].state == TrialState.FAIL  # the interrupted trial, nothing else
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    for number, old in before.items():
        assert trials[number].state == old.state and trials[number].values == old.values


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_an_interrupted_reference_is_enqueued_again_once(search_settings, tmp_path):
    settings = search_settings(tmp_path / "results")
    study = open_study(settings)
    trial = study.ask()  # the first waiting trial: IMDN
    assert trial.user_attrs["reference"] == "imdn"
    study.tell(trial, state=TrialState.FAIL)  # what Ctrl-C inside it leaves
    for _ in range(2):  # every rerun
        study = open_study(settings)
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs["reference"] for t in waiting) == sorted(REFERENCES)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_killed_worker_that_its_parent_has_not_reaped_yet_is_dead(search_settings, tmp_path):
    """A `--workers` worker killed while the parent waits for another stays a zombie: its pid still answers kill(0),
    and the other workers waited for its trial for ever."""
    study = open_study(search_settings(tmp_path / "results"))
    trial = study.ask()
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # exits at once; not reaped until wait()
    try:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{child.pid}")
        deadline = time.monotonic() + 60
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.05)
        assert reap_dead_workers(study) == [trial.number]
    finally:
        child.wait()
    assert study.get_trials()[trial.number].user_attrs["fail_reason"] == f"worker {socket.gethostname()}:{child.pid} died"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_whose_worker_died_before_starting_it_is_reaped(search_settings, tmp_path):
    """kill -9 between Optuna creating a trial and the objective naming its worker leaves a RUNNING trial with no
    owner and no heartbeat; once older than the grace period it is failed and its reference enqueued again
    (else a resumed search would wait for that reference for ever)."""
    settings = search_settings(tmp_path / "results")
    study = open_study(settings)
    ghost = study.ask()  # RUNNING, no `worker` attribute: as if killed right here
    assert reap_dead_workers(study) == []  # young: perhaps its worker is about to start it
    assert reap_dead_workers(study, unowned_after_s=0) == [ghost.number]  # old enough
    trial = study.get_trials()[ghost.number]
    assert trial.state == TrialState.FAIL and "its worker died before starting it" in trial.user_attrs["fail_reason"]
    waiting = [t.user_attrs["reference"] for t in study.get_trials() if t.state == TrialState.WAITING]
    assert sorted(waiting) == sorted(REFERENCES)


def test_a_lost_candidate_is_retried_only_when_its_parameters_were_chosen():
    study = optuna.create_study()
    unsampled = study.ask()  # lost before the sampler chose anything
    sampled = study.ask()
    sampled.suggest_int("blocks", 1, 8)
    lost = {t.number: t for t in study.get_trials()}
    requeue(study, lost[unsampled.number])
    assert not [t for t in study.get_trials() if t.state == TrialState.WAITING]
    requeue(study, lost[sampled.number])
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and study.ask().suggest_int("blocks", 1, 8) == sampled.params["blocks"]


def fake_failure(reason: str, budget: train_proxy.Budget) -> train_proxy.ProxyResult:
    return train_proxy.ProxyResult(status="failed", reason=reason, psnr=None, checkpoints=((0, 10.0),), iterations=3,
                                   wall_seconds=0.1, train_seconds=0.1, images_per_s=1.0, budget=budget, seed=0,
                                   device="cpu", precision="fp32", channels_last=False, data={})


def test_failing_candidates_are_recorded_with_their_reason_and_the_search_goes_on(
        search_settings, study_with_references, monkeypatch, cli_env, one_thread):
    monkeypatch.setattr("tempfile.tempdir", cli_env["TMPDIR"])
    real_train = candidate.train
    outcomes = ["out of memory", "nan", "raise"]

    def train(config, *, budget, **kwargs):
        outcome = outcomes.pop(0) if outcomes else "ok"
        if outcome == "out of memory":
            return fake_failure("out of memory at step 3: CUDA out of memory. Tried to allocate 2.00 GiB", budget)
        if outcome == "nan":
            return fake_failure("loss became nan at step 10", budget)
        if outcome == "raise":
            raise RuntimeError("a bug in a block")
        return real_train(config, budget=budget, **kwargs)

    # Every candidate gets trained (none is cut before training by its size or speed).
    monkeypatch.setattr(candidate, "train", train)
    monkeypatch.setattr(candidate, "measure_complexity", lambda config, measurement: {
        "params": 100_000, "flops_g": 5.0, "activations_m": 50.0, "convs": 20})
    settings = search_settings(study_with_references, trials=5)
    study = open_study(settings)
    lines: list[str] = []
    optimize(settings, study, say=lines.append)
    trials = study.get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.user_attrs["fail_reason"] for t in failed] == [
        "out of memory at step 3: CUDA out of memory. Tried to allocate 2.00 GiB", "loss became nan at step 10",
        "RuntimeError: a bug in a block"]
    assert "RuntimeError: a bug in a block" in failed[2].user_attrs["fail_traceback"]
    assert len(done(trials)) == 5 and trials[-1].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert sum(" fail " in line and "loss became nan" in line for line in lines) == 1


def test_a_search_whose_every_trial_fails_stops(search_settings, study_with_references, monkeypatch, one_thread):
    def train(config, **kwargs):
        raise RuntimeError("the device is gone")

    monkeypatch.setattr(candidate, "train", train)
    monkeypatch.setattr(candidate, "measure_complexity", lambda config, measurement: {
        "params": 100_000, "flops_g": 5.0, "activations_m": 50.0, "convs": 20})
    monkeypatch.setattr(candidate, "measure_speed", lambda config, measurement, baseline: {
        "latency_ms": 1.0, "latency_iqr_ms": 0.0, "latency_ratio": 0.5, "baseline_latency_ms": 2.0,
        "memory_mb": 1.0, "memory_method": "fake", "latency_settings": {}})
    settings = search_settings(study_with_references, trials=50)
    with pytest.raises(SearchStalled, match=r"5 trials failed in a row \(last: RuntimeError: the device is gone\)"):
        optimize(settings, open_study(settings), say=lambda line: None)
