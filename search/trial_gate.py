"""Hand out a study's trials across workers: never more started than --trials, each candidate claimed once.

Optuna's `optimize` asks the storage for a new trial whenever a worker is free: two workers that each saw 5 of 6
trials done both started one (7 trials for --trials 6), and two workers sampling at once could both draw the same
first candidate and both measure it. Here every worker asks under one lock per study (a file lock beside a journal
or SQLite file; an advisory lock in PostgreSQL), counts the trials done and running, starts one only while that
leaves room, and chooses the new trial's architecture (`claim`) before letting go: a later trial always sees the
architectures of the earlier ones, so the objective can wait for an earlier twin instead of measuring it again.
With no room but trials still running (one may fail, or its worker die), the worker waits, reaping dead workers'
trials, until the study is full or a trial has to be run again; meanwhile it may do other work of the study (`idle`:
the run's promotion climbs the candidates ranked so far, asynchronous successive halving).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import optuna
import sqlalchemy

from search.study import count_trials, reap_dead_workers, storage_file

logger = logging.getLogger(__name__)

POLL_S = 2.0


class StudyFull(Exception):
    """No trial is left to start here: --trials are done, or the worker was asked to stop while it waited."""


class StudyLock:
    """One lock shared by every worker of a study for one `purpose`: "ask" is held while a trial is counted, created
    and claimed; "promote" while a candidate climbs a rung (search.promotion).

    File storages lock `<file>.<purpose>-lock` (flock: released when a worker dies); PostgreSQL takes a
    transaction-level advisory lock named after the study and the purpose. Other servers (MySQL) get no lock: there
    two workers asking at the same moment may still start one trial too many, or train one rung twice.
    """

    def __init__(self, url: str, study_name: str, *, purpose: str = "ask") -> None:
        self.file = storage_file(url)
        self.path = None if self.file is None else f"{self.file}.{purpose}-lock"
        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool) \
            if self.file is None and url.startswith("postgresql") else None
        digest = hashlib.sha256(f"{study_name}\0{purpose}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Wait for the lock, and hold it."""
        with self._locked(wait=True):
            yield

    @contextlib.contextmanager
    def try_held(self) -> Iterator[bool]:
        """Hold the lock if it is free (True), else go on at once without it (False)."""
        with self._locked(wait=False) as got:
            yield got

    @contextlib.contextmanager
    def _locked(self, *, wait: bool) -> Iterator[bool]:
        if self.path is not None:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got = True
                except BlockingIOError:  # another worker holds it
                    got = False
                yield got
            finally:
                os.close(descriptor)  # releases the lock
        elif self.engine is not None:
            with self.engine.begin() as connection:
                if wait:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": self.key})
                    yield True
                else:
                    yield bool(connection.execute(sqlalchemy.text("SELECT pg_try_advisory_xact_lock(:key)"),
                                                  {"key": self.key}).scalar())
        else:
            yield True


class BoundedStudy(optuna.Study):
    """`study`, whose `ask` (what `optimize` calls for each trial) starts a trial only while fewer than `target` are
    done or running, under the study's lock, and raises StudyFull once `target` are done.

    `claim(trial)`: runs under the lock once the trial exists (it samples the candidate's architecture).
    `stop()`: True when a worker waiting for room should give up (Ctrl-C, --timeout).
    `idle()`: called (outside the lock) while the worker waits for room; True when it did some work, so that the
    worker looks for room again at once instead of sleeping.
    """

    def __init__(self, study: optuna.Study, *, target: int, lock: StudyLock, claim: Callable[[optuna.Trial], None],
                 stop: Callable[[], bool], idle: Callable[[], bool] = lambda: False, poll_s: float = POLL_S) -> None:
        super().__init__(study_name=study.study_name, storage=study._storage, sampler=study.sampler,
                         pruner=study.pruner)
        self.target, self.lock, self.claim, self.stop_waiting, self.poll_s = target, lock, claim, stop, poll_s
        self.idle = idle

    def ask(self, fixed_distributions: dict[str, Any] | None = None) -> optuna.Trial:
        while True:
            with self.lock.held():
                optuna.storages.fail_stale_trials(self)  # trials of workers on other machines that stopped beating
                reap_dead_workers(self)  # and of dead workers on this one
                done, running = count_trials(self)
                if done >= self.target:
                    raise StudyFull(f"{done} of {self.target} trials done")
                if done + running < self.target:
                    trial = super().ask(fixed_distributions)
                    try:
                        self.claim(trial)
                    except Exception as error:  # the objective meets it again and records the trial failed
                        logger.debug("trial %d not claimed: %s", trial.number, error)
                    return trial
            if self.stop_waiting():
                raise StudyFull("stopped while other workers' trials ran")
            if self.idle():
                continue
            logger.debug("%d done and %d running of %d trials: waiting for room", done, running, self.target)
            time.sleep(self.poll_s)

