"""Shared fixtures: a tiny DIV2K-layout data folder and a runner of the command line in a subprocess.

Test searches use `--data tiny_div2k` (a few small crops of scikit-image's photographs) and the smoke
budget, so a search of a few trials takes seconds per trial on 2 CPU cores.
"""

from __future__ import annotations

import omp_wait  # noqa: F401  (first: OpenMP's wait policy, before torch is imported)
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# (photograph, top, left) of each crop; HR crops are 96x96 for training, 64x64 for validation.
TINY_TRAIN = (("astronaut", 40, 180), ("rocket", 200, 250), ("coffee", 120, 200))
TINY_VALID = (("chelsea", 60, 160), ("immunohistochemistry", 100, 100))


def write_tiny_div2k(root: Path) -> Path:
    """A DIV2K folder (HR only: LR is made by bicubic) of tiny crops; returns `root`."""
    for folder, crops, size, first in (("DIV2K_train_HR", TINY_TRAIN, 96, 1), ("DIV2K_valid_HR", TINY_VALID, 64, 801)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index, (name, top, left) in enumerate(crops):
            image = np.asarray(getattr(skimage.data, name)())[top:top + size, left:left + size, :3]
            Image.fromarray(np.ascontiguousarray(image)).save(root / folder / f"{first + index:04d}.png")
    return root


@pytest.fixture(scope="session", autouse=True)
def private_measurement_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or fill the machine's measurement cache (~/.cache/nas-sr): the session's fixtures use one of
    their own, which their subprocesses inherit."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NAS_SR_CACHE", str(tmp_path_factory.mktemp("measurement-cache")))
        yield


@pytest.fixture(autouse=True)
def own_measurement_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_env: dict[str, str]):
    """Each test its own cache, its subprocesses too: a test's second run reuses its first's reference trainings,
    no other test's."""
    cache = str(tmp_path / "measurement-cache")
    monkeypatch.setenv("NAS_SR_CACHE", cache)
    monkeypatch.setitem(cli_env, "NAS_SR_CACHE", cache)


@pytest.fixture(scope="session")
def tiny_div2k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_div2k(tmp_path_factory.mktemp("tiny_div2k"))


# Arguments that keep a test search short: smoke training, small latency input, no re-evaluation, no export.
FAST_SEARCH = ("--budget", "smoke", "--latency-input", "3x24x36", "--confirm-minutes", "0", "--no-export")
STUDY = "reliability"


@pytest.fixture(scope="session")
def search_args(tiny_div2k: Path):
    """search_args(results, *extra): command-line arguments of a short test search on the tiny data."""

    def args(results: Path, *extra: str, study: str = STUDY) -> list[str]:
        return [*FAST_SEARCH, "--data", str(tiny_div2k), "--results", str(results), "--study-name", study, *extra]

    return args


@pytest.fixture(scope="session")
def search_settings(tiny_div2k: Path):
    """search_settings(results, **changes): the SearchSettings that `search_args` gives, for in-process runs."""
    from search.settings import SearchSettings

    def settings(results: Path, **changes) -> SearchSettings:
        values = dict(budget="smoke", latency_input=(3, 24, 36), confirm_minutes=0, export_winner=False,
                      data=str(tiny_div2k), results=str(results), study_name=STUDY)
        return SearchSettings(**{**values, **changes})

    return settings


@contextlib.contextmanager
def torch_threads(count: int):
    """Run torch on `count` threads, restored afterwards (one is several times faster on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture()
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def references_run(tmp_path_factory: pytest.TempPathFactory, search_settings, cli_env: dict[str, str]) -> Path:
    """A results folder whose study holds the four references, measured once per session (copy it to use it)."""
    from search.trial_loop import optimize
    from search.study import open_study
    results = tmp_path_factory.mktemp("references") / "results"
    settings = search_settings(results, trials=4)
    assert len(settings.rules.references) == 4  # run_search refuses a study of references only
    with pytest.MonkeyPatch.context() as patch, torch_threads(1):
        patch.setattr(tempfile, "tempdir", cli_env["TMPDIR"])  # the device lock, as in the subprocesses
        optimize(settings, open_study(settings), say=lambda line: None)
    return results


@pytest.fixture()
def study_with_references(references_run: Path, tmp_path: Path) -> Path:
    """A private copy of `references_run` (results folder): resume it with more trials."""
    return Path(shutil.copytree(references_run, tmp_path / "results"))


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of command-line subprocesses: the repo importable, a private TMPDIR for the device locks
    (so tests running beside other jobs on the machine do not wait on their locks), unbuffered output, and
    one torch thread (two-thread OpenMP regions stall badly when other processes share the 2 cores)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path_factory.mktemp("locks")), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@pytest.fixture()
def start_cli(cli_env: dict[str, str]):
    """Start `python run_search.py ARGS...` (stdout and stderr to files, as Popen); every process is killed at teardown."""
    processes: list[subprocess.Popen] = []
    sessions: list[subprocess.Popen] = []

    def start(*args: str, log: Path, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
        handle = open(log, "w")
        process = subprocess.Popen([sys.executable, str(REPO / "run_search.py"), *args], cwd=REPO,
                                   env={**cli_env, **(env or {})}, stdout=handle, stderr=subprocess.STDOUT, **popen)
        handle.close()
        processes.append(process)
        if popen.get("start_new_session"):
            sessions.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process in sessions:  # its workers (a search with --workers) are in its process group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture()
def run_cli(cli_env: dict[str, str]):
    """Run `python run_search.py ARGS...` to completion; returns the CompletedProcess (text output)."""

    def run(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "run_search.py"), *args], cwd=REPO,
                              env={**cli_env, **(env or {})}, capture_output=True, text=True, timeout=timeout)

    return run


# Helpers of the reliability tests (import them: `from conftest import wait_for`).
def sqlite_url(results: Path, study: str = STUDY) -> str:
    return f"sqlite:///{(results / study / 'study.db').as_posix()}"


def load_trials(storage, study: str = STUDY) -> list | None:
    """The trials of `study` in `storage` (a URL or storage object), or None while it does not exist yet."""
    import optuna
    import sqlalchemy
    if isinstance(storage, str) and storage.startswith("sqlite:///") and not Path(storage[10:]).is_file():
        return None
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials()
    except (KeyError, sqlalchemy.exc.SQLAlchemyError):
        return None


def started_trial(storage, *, min_number: int, study: str = STUDY):
    """The first trial numbered >= min_number that a worker runs (RUNNING, with its `worker` attribute)."""
    from optuna.trial import TrialState
    return next((t for t in load_trials(storage, study) or [] if t.number >= min_number
                 and t.state == TrialState.RUNNING and "worker" in t.user_attrs), None)


def wait_for(condition, *, process: subprocess.Popen, log: Path, what: str, timeout: float = 180.0):
    """Poll `condition()` until it is truthy (returned); fail if the process exits or time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"the search exited ({process.returncode}) before {what}:\n{log.read_text()}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{log.read_text()}")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_main(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    """Exit code and stderr of the command line run in this process."""
    import run_search
    code = run_search.main(list(argv))
    return code, capsys.readouterr().err


def assert_one_clear_line(code: int, err: str, *fragments: str) -> None:
    """Bad input's answer: a non-zero exit and one `error:` line holding `fragments`, no traceback."""
    assert code not in (0, None), err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "Warning" not in line and "optuna_warn" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

