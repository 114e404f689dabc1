"""Load and fault: several workers on one study, one of them killed with SIGKILL while it trains.

Each scenario runs one study of `--trials` trials at the smoke budget (embedded photographs, no promotion, no
export, a measurement cache of its own so that every scenario trains its references) and, once a candidate has
trained for `--kill-after` seconds, kills that candidate's worker with SIGKILL. The other workers must finish the
study: every trial done once, the killed candidate run again, nothing measured twice. It records the trials
done, the architectures measured more than once, the trials lost (missing from --trials at the end) and the
wall time.

Scenarios: `--workers 2` and `--workers 4` on the run folder's journal file (one command), and two commands on one
PostgreSQL database (as two machines; a throwaway server, skipped without Debian's `postgresql` programs).

    python3 -m bench.load_and_fault
    python3 -m bench.load_and_fault --scenarios journal-2 --trials 12
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from bench.common import REPO, write_result
from bench.postgres_server import server_bin, throwaway_database
from search.study import StorageError, make_storage

RUNS = REPO / "bench" / "runs" / "load_and_fault"
STUDY = "load-and-fault"
POLL_S = 0.5


@dataclass(frozen=True)
class Scenario:
    """`commands` processes (each a search with `--workers workers`) on one study in `storage` (journal or
    postgresql)."""

    name: str
    storage: str
    commands: int
    workers: int


SCENARIOS = {s.name: s for s in (Scenario("journal-2", "journal", commands=1, workers=2),
                                 Scenario("journal-4", "journal", commands=1, workers=4),
                                 Scenario("postgresql-2", "postgresql", commands=2, workers=1))}


def measured_twice(trials: list[FrozenTrial]) -> list[str]:
    """The architectures that more than one done trial measured (a trial copying its twin's figures, with
    `duplicate_of`, measured nothing): every architecture is measured once, whatever the workers."""
    measured = collections.Counter(json.dumps(t.user_attrs["config"], sort_keys=True) for t in trials
                                   if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                                   and "duplicate_of" not in t.user_attrs)
    return [config for config, count in measured.items() if count > 1]


@contextlib.contextmanager
def storage_url(scenario: Scenario, folder: Path) -> Iterator[str | None]:
    """The study's storage URL (None: the run folder's journal, chosen by --workers)."""
    if scenario.storage == "journal":
        yield None
        return
    programs = server_bin()
    if programs is None:
        raise FileNotFoundError("PostgreSQL server programs not found (Debian's `postgresql` package)")
    with throwaway_database(programs) as url:
        yield url


def read_trials(url: str) -> list[FrozenTrial] | None:
    """The study's trials, read without changing anything; None while it does not exist yet."""
    try:
        return optuna.load_study(study_name=STUDY, storage=make_storage(url, read_only=True)).get_trials()
    except (StorageError, KeyError):
        return None


def victim(trials: list[FrozenTrial], *, after_s: float) -> FrozenTrial | None:
    """A candidate (not a reference) that has run for `after_s` seconds: its worker is training it."""
    now = datetime.datetime.now()
    return next((t for t in trials if t.state == TrialState.RUNNING and "reference" not in t.user_attrs
                 and "worker" in t.user_attrs and "config" in t.user_attrs
                 and (now - t.datetime_start).total_seconds() >= after_s), None)


def run_scenario(scenario: Scenario, *, trials: int, budget: str, kill_after_s: float,
                 timeout_s: float) -> dict[str, Any]:
    folder = RUNS / scenario.name
    if folder.exists():
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    (folder / "tmp").mkdir(parents=True)
    env = dict(os.environ, NAS_SR_CACHE=str(folder / "cache"), TMPDIR=str(folder / "tmp"), PYTHONUNBUFFERED="1")
    with storage_url(scenario, folder) as url:
        read_url = url or f"journal:{folder / 'results-0' / STUDY / 'study.journal'}"
        started = time.monotonic()
        processes = []
        for index in range(scenario.commands):
            args = ["--budget", budget, "--trials", str(trials), "--workers", str(scenario.workers), "--study-name",
                    STUDY, "--results", str(folder / f"results-{index}"), "--confirm-minutes", "0", "--no-export"]
            log = open(folder / f"command-{index}.log", "w")
            processes.append(subprocess.Popen([sys.executable, str(REPO / "run_search.py"), *args,
                                               *(["--storage", url] if url else [])], cwd=REPO, env=env,
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
        killed = None
        try:
            while killed is None and all(p.poll() is None for p in processes):
                found = victim(read_trials(read_url) or [], after_s=kill_after_s)
                if found is not None:
                    pid = int(found.user_attrs["worker"].rpartition(":")[2])
                    os.kill(pid, signal.SIGKILL)
                    killed = {"trial": found.number, "pid": pid, "config": found.user_attrs["config"],
                              "at_s": time.monotonic() - started}
                    print(f"  killed worker {pid} while it trained trial #{found.number}", flush=True)
                time.sleep(POLL_S)
            codes = [p.wait(timeout=timeout_s) for p in processes]
        finally:
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        wall_s = time.monotonic() - started
        study_trials = read_trials(read_url) or []
    done = [t for t in study_trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    redone = killed is not None and any(t.number > killed["trial"] and t.user_attrs.get("config") == killed["config"]
                                        for t in done)
    return {"scenario": scenario.name, "storage": scenario.storage, "commands": scenario.commands,
            "workers_per_command": scenario.workers, "exit_codes": codes, "killed": killed,
            "trials_done": len(done), "trials_in_study": len(study_trials),
            "failed": sum(t.state == TrialState.FAIL for t in study_trials),
            "duplicated_measurements": len(measured_twice(study_trials)),
            "copies_of_a_twin": sum("duplicate_of" in t.user_attrs for t in done),
            "lost": max(0, trials - len(done)), "killed_candidate_run_again": redone, "wall_s": wall_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--budget", default="smoke")
    parser.add_argument("--kill-after", type=float, default=3.0, help="seconds a candidate trains before the kill")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds a scenario may take after the kill")
    parser.add_argument("--name", default="load_and_fault")
    args = parser.parse_args(argv)
    rows = []
    for name in args.scenarios.split(","):
        print(f"{name}: {args.trials} trials, budget {args.budget}", flush=True)
        try:
            row = run_scenario(SCENARIOS[name], trials=args.trials, budget=args.budget, kill_after_s=args.kill_after,
                               timeout_s=args.timeout)
        except FileNotFoundError as error:
            row = {"scenario": name, "skipped": str(error)}
        print(f"  {json.dumps(row)}", flush=True)
        rows.append(row)
    write_result(args.name, {"settings": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
