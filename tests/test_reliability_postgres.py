"""Two workers on one study in a real PostgreSQL server (Optuna's RDBStorage), as on two machines.

The fixture starts a throwaway server (bench.postgres_server) and stops it afterwards. Without the server binaries
(Debian's `postgresql` package: /usr/lib/postgresql/<version>/bin) the test is skipped, except under CI=true,
where `.ci/run` installs them and their absence is an error.
"""

from __future__ import annotations

import collections
import os
import re

import optuna
import pytest
from conftest import STUDY
from optuna.trial import TrialState

from bench.load_and_fault import measured_twice
from bench.postgres_server import server_bin, throwaway_database
from editions import get_edition

REFERENCES = get_edition(2022).references  # the default edition's


pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture(scope="module")
def postgres_url():
    """A URL of a fresh database in a private PostgreSQL server, stopped and deleted at teardown."""
    folder = server_bin()
    if folder is None:
        message = ("PostgreSQL server programs (initdb, pg_ctl) not found; install Debian's `postgresql` package "
                   "(.ci/run does) to run the two-worker PostgreSQL test")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    with throwaway_database(folder) as url:
        yield url


def test_two_workers_share_one_study_in_postgres(postgres_url, start_cli, search_args, tmp_path):
    trials_wanted = 6
    workers, logs = [], []
    for name in ("a", "b"):  # two "machines": each its own results folder, one study in the server
        logs.append(tmp_path / f"worker_{name}.log")
        workers.append(start_cli(*search_args(tmp_path / f"results_{name}", "--trials", str(trials_wanted),
                                              "--storage", postgres_url), log=logs[-1]))
    for worker, log in zip(workers, logs):
        assert worker.wait(timeout=600) == 0, log.read_text()
    outputs = [log.read_text() for log in logs]
    assert not any("Traceback" in output for output in outputs), outputs

    study = optuna.load_study(study_name=STUDY, storage=postgres_url)
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))  # every trial recorded once, none lost
    states = collections.Counter(t.state for t in trials)
    assert states[TrialState.COMPLETE] + states[TrialState.PRUNED] == trials_wanted  # never more
    assert measured_twice(trials) == []  # not the same first candidate by both
    assert states[TrialState.RUNNING] == states[TrialState.WAITING] == states[TrialState.FAIL] == 0

    # The references: enqueued once, each measured once in its own trial.
    reference_trials = [t for t in trials if "reference" in t.user_attrs]
    assert sorted(t.user_attrs["reference"] for t in reference_trials) == sorted(REFERENCES)
    assert all(t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs for t in reference_trials)
    for trial in reference_trials:
        record = study.user_attrs[f"reference:{trial.user_attrs['reference']}"]
        assert record["weights_artifact"] == trial.user_attrs["weights_artifact"]  # measured in that trial
    reported = collections.Counter(int(number) for output in outputs
                                   for number in re.findall(r"^\[\s*\d+/\d+\]\s+#(\d+)\s", output, flags=re.M))
    assert [reported[t.number] for t in reference_trials] == [1] * len(REFERENCES)  # one worker ran each
    assert study.user_attrs["settings"]["track"] == "runtime"

    # Both workers took trials (each trial names its worker, host:pid).
    owners = collections.Counter(t.user_attrs["worker"].rpartition(":")[2] for t in trials)
    assert set(owners) == {str(worker.pid) for worker in workers}, owners
