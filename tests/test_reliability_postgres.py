"""Two workers on one study in a real PostgreSQL server (Optuna's RDBStorage), as on two machines.

The fixture creates a throwaway cluster in a temporary folder, runs it as an unprivileged user on a free
loopback port with trust authentication, and stops it afterwards. Without the server binaries (Debian's
`postgresql` package: /usr/lib/postgresql/<version>/bin) the test is skipped, except under CI=true,
where `.ci/run` installs them and their absence is an error.
"""

from __future__ import annotations

import collections
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import psycopg2
import pytest
from conftest import STUDY, measured_twice
from optuna.trial import TrialState
from editions import get_edition

REFERENCES = get_edition(2022).references  # the default edition's


pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
DATABASE, ROLE = "nas", "nas"


def server_bin() -> Path | None:
    """The folder of the newest PostgreSQL server programs installed (Debian's layout first, then PATH)."""
    folders = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name), reverse=True)
    on_path = shutil.which("pg_ctl")
    folders += [Path(on_path).parent] if on_path else []
    return next((f for f in folders if all((f / name).is_file() for name in SERVER_PROGRAMS)), None)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unprivileged_user() -> str | None:
    """The user the server runs as when this is root (initdb refuses root); None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):  # Debian's package creates `postgres`
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.fail("running as root and no unprivileged user (postgres, nobody) to run the PostgreSQL server as")


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
    user = unprivileged_user()
    as_user = ["runuser", "-u", user, "--"] if user else []
    # Not under pytest's temporary folders, nor $TMPDIR: the server's user must be able to reach its folder.
    root = Path(tempfile.mkdtemp(prefix="nas_pg_", dir="/tmp" if user and os.path.isdir("/tmp") else None))
    if user:
        record = pwd.getpwnam(user)
        os.chown(root, record.pw_uid, record.pw_gid)
    data, log, port = root / "data", root / "server.log", free_port()

    def run(*command: str) -> None:
        done = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)
        if done.returncode:
            server_log = log.read_text() if log.is_file() else ""
            pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{server_log}")

    run(str(folder / "initdb"), "-D", str(data), "-U", ROLE, "-A", "trust", "-E", "UTF8", "--locale", "C", "--no-sync")
    options = f"-h 127.0.0.1 -p {port} -k '' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    run(str(folder / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    try:
        connection = psycopg2.connect(host="127.0.0.1", port=port, user=ROLE, dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
        connection.close()
        yield f"postgresql+psycopg2://{ROLE}@127.0.0.1:{port}/{DATABASE}"
    finally:
        subprocess.run([*as_user, str(folder / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


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
