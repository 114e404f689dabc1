"""Several workers on one machine: `--workers N` through a journal file, Ctrl-C, GPU pinning, the device lock."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import REPO, STUDY, started_trial, wait_for
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

import run_search
from bench.load_and_fault import measured_twice
from editions import get_edition
from search import candidate
from search.workers import worker_env
from search.study import make_storage, open_study
from spaces import ArchConfig

REFERENCES = get_edition(2022).references  # the default edition's
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def journal(results: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(results / STUDY / "study.journal")))


def test_workers_share_one_study_through_a_journal_file(run_cli, search_args, tmp_path, capsys):
    results = tmp_path / "results"
    done = run_cli(*search_args(results, "--trials", "6", "--workers", "2"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "[w0] " in done.stdout and "[w1] " in done.stdout
    assert f"storage journal:{results / STUDY / 'study.journal'}" in done.stdout
    assert not (results / STUDY / "study.db").exists()  # the journal is the one storage

    study = optuna.load_study(study_name=STUDY, storage=journal(results))
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))  # every trial recorded once
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL)]
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 6  # never more
    assert measured_twice(trials) == []
    references = collections.Counter(t.user_attrs.get("reference") for t in trials if "reference" in t.user_attrs)
    assert references == {name: 1 for name in REFERENCES}  # measured once, by one worker
    assert all(f"reference:{name}" in study.user_attrs for name in REFERENCES)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2  # both workers took trials

    # Without --storage, later commands on the run folder find the journal (not a new SQLite study).
    capsys.readouterr()
    assert run_search.main(["report", "--study", STUDY, "--results", str(results)]) == 0
    assert run_search.main(search_args(results, "--trials", "6")) == 0  # one worker: nothing left to do
    output = capsys.readouterr().out
    assert re.search(r"^  6 of 6 trials done", output, flags=re.M) and "storage journal:" in output
    assert not (results / STUDY / "study.db").exists()


def test_two_commands_started_at_once_on_one_journal_measure_each_candidate_once(start_cli, search_args, tmp_path):
    """Two processes (not --workers) on one study: the same first candidate was drawn and measured by both, and
    --trials 6 gave 7 trials."""
    storage = f"journal:{tmp_path / 'study.journal'}"
    logs = [tmp_path / f"{name}.log" for name in "ab"]
    processes = [start_cli(*search_args(tmp_path / f"results_{name}", "--trials", "6", "--storage", storage),
                           log=log) for name, log in zip("ab", logs)]
    for process, log in zip(processes, logs):
        assert process.wait(timeout=600) == 0, log.read_text()
        assert "Traceback" not in log.read_text()
    trials = optuna.load_study(study_name=STUDY, storage=make_storage(storage)).get_trials()
    assert len(trials) == 6 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)  # no more
    assert measured_twice(trials) == []
    assert len({t.user_attrs["worker"] for t in trials}) == 2


@pytest.mark.parametrize("attempt", range(5))
def test_workers_starting_at_once_enqueue_the_references_once(search_settings, tmp_path, attempt):
    """Racing workers: one creates the study and enqueues the references; the others wait until it is ready.
    (Before, a worker loading the study between its creation and its settings enqueued them again.)"""
    settings = search_settings(tmp_path / "results", storage=f"journal:{tmp_path / 'study.journal'}")
    barrier, errors = threading.Barrier(4), []

    def worker() -> None:
        barrier.wait()
        try:
            open_study(settings, storage=make_storage(settings.storage_url))
        except Exception as error:  # noqa: BLE001  (reported below)
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    trials = optuna.load_study(study_name=STUDY, storage=make_storage(settings.storage_url)).get_trials()
    assert sorted(t.user_attrs["reference"] for t in trials) == sorted(REFERENCES)
    assert all(t.state == TrialState.WAITING for t in trials)


@pytest.mark.parametrize("whom", ["terminal", "parent"])
def test_ctrl_c_stops_all_workers_cleanly(start_cli, search_args, tmp_path, whom):
    """Ctrl-C in a terminal signals the whole process group; `kill -INT PID` only the parent, which passes it on."""
    results = tmp_path / "results"
    log = tmp_path / "search.log"
    process = start_cli(*search_args(results, "--trials", "8", "--workers", "2"), log=log, start_new_session=True)
    wait_for(lambda: started_trial(journal(results), min_number=0) if (results / STUDY / "study.journal").exists()
             else None, process=process, log=log, what="a worker to start a trial")
    if whom == "terminal":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)
    assert process.wait(timeout=90) == 130
    assert group_ends(process.pid, timeout=10)  # no worker is left running
    output = log.read_text()
    assert "Rerun the same command to resume" in output
    assert "Traceback" not in output
    trials = optuna.load_study(study_name=STUDY, storage=journal(results)).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def group_ends(pgid: int, *, timeout: float) -> bool:
    """Whether the process group empties within `timeout` (exited helpers wait a moment to be reaped by init)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_one_gpu_per_worker_among_the_visible_ones():
    assert worker_env(0, gpus=0) == {} and worker_env(3, gpus=1) == {}
    assert [worker_env(i, gpus=2)["CUDA_VISIBLE_DEVICES"] for i in range(4)] == ["0", "1", "0", "1"]
    assert [worker_env(i, gpus=2, visible="4,6")["CUDA_VISIBLE_DEVICES"] for i in range(3)] == ["4", "6", "4"]


HOLD_TRAINING_LOCK = """
import sys, tempfile, time
tempfile.tempdir = sys.argv[1]
from evaluators.latency import device_lock
with device_lock("cpu", shared=True):  # what a worker holds while it trains
    open(sys.argv[2], "w").close()
    time.sleep(float(sys.argv[3]))
    open(sys.argv[2], "w").write(repr(time.time()))
"""


def test_latency_is_not_measured_while_another_process_trains(tmp_path, monkeypatch, one_thread):
    """The search's speed measurement takes the device lock exclusively: it waits for another worker's training."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    state = tmp_path / "trainer"
    trainer = subprocess.Popen([sys.executable, "-c", HOLD_TRAINING_LOCK, str(tmp_path), str(state), "2.0"],
                               cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        deadline = time.monotonic() + 60
        while not state.exists():
            assert trainer.poll() is None and time.monotonic() < deadline, "the trainer did not take the lock"
            time.sleep(0.05)
        timing_started = []
        real = candidate.measure_relative_latency

        def timed(*args, **kwargs):
            timing_started.append(time.time())
            return real(*args, **kwargs)

        monkeypatch.setattr(candidate, "measure_relative_latency", timed)
        measurement = candidate.Measurement.of_edition(get_edition(2022), device="cpu", latency_input=(3, 8, 8))
        config = ArchConfig(block="rlfb", num_blocks=1, channels=8)
        record = candidate.measure_speed(config, measurement=measurement, baseline=measurement.baseline())
        assert trainer.wait(timeout=30) == 0
        released = float(state.read_text())
        assert timing_started and timing_started[0] >= released  # timing began only after training let go
        assert record["latency_ratio"] > 0
    finally:
        trainer.kill()
