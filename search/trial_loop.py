"""One process's share of a study's trials: the optimize loop, its stop rules and its Ctrl-C handling."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.objective import make_objective
from search.promotion import promote_while_waiting
from search.progress import Printer, progress_line, tail_seconds
from search.settings import SearchSettings
from search.study import done_trials
from search.trial_gate import BoundedStudy, StudyFull, StudyLock

MAX_FAILURES_IN_A_ROW = 5


class SearchStalled(RuntimeError):
    """Every recent trial failed: something is wrong beyond one candidate (data, device, storage)."""


def optimize(settings: SearchSettings, study: optuna.Study, *, say: Printer, data: Any = None,
             ctrl_c: CtrlC | None = None) -> None:
    """This process's share of the trials; stops when the study holds `settings.trials` done trials, never starting
    more than that however many workers share the study (search.trial_gate).

    A failed trial (it raised, ran out of memory, or its loss went NaN) is recorded with its reason and the
    search goes on, unless MAX_FAILURES_IN_A_ROW trials of this process fail in a row (SearchStalled).
    Ctrl-C stops it (see CtrlC; `ctrl_c`: the handler a worker process installed, else one is installed here).
    """
    _keep_tracebacks_out_of_optuna_log()
    objective = make_objective(settings, study, data=data)
    target = settings.trials
    durations: list[float] = []
    failures: list[str] = []

    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        durations.append(trial.duration.total_seconds() if trial.duration else 0.0)
        done = done_trials(study)
        trials_left_s = max(0, target - done) * sum(durations) / len(durations) / settings.workers
        say(progress_line(trial, done=done, target=target, settings=settings, study=study,
                          eta_s=trials_left_s + tail_seconds(settings, study)))
        if trial.state == TrialState.FAIL:
            failures.append(trial.user_attrs.get("fail_reason", ""))
        else:
            failures.clear()
        if done >= target or len(failures) >= MAX_FAILURES_IN_A_ROW:
            study.stop()

    guard = ctrl_c or CtrlC()
    deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
    bounded = BoundedStudy(study, target=target, lock=StudyLock(settings.storage_url, settings.name),
                           claim=objective.claim,
                           stop=lambda: guard.pending or (deadline is not None and time.monotonic() >= deadline),
                           idle=guard.inside(lambda: promote_while_waiting(study, objective=objective,
                                                                           track=objective.track, say=say)))
    install = ctrl_c is None and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, guard) if install else None
    try:
        with guard.trials():
            with contextlib.suppress(StudyFull):
                bounded.optimize(guard.inside(objective), callbacks=[report], catch=(Exception,),
                                 timeout=settings.timeout, gc_after_trial=True)
    finally:
        if install:
            signal.signal(signal.SIGINT, previous)
    if len(failures) >= MAX_FAILURES_IN_A_ROW:
        raise SearchStalled(f"stopped: {len(failures)} trials failed in a row (last: {failures[-1] or 'no reason'}); "
                            f"fix the cause, then rerun the same command to resume")


class CtrlC:
    """SIGINT handler of a search process: KeyboardInterrupt once (more, such as a parent passing Ctrl-C on to
    its workers, would cut the cleanup short), and while trials run, only inside a trial's objective, where
    Optuna marks the trial failed. Between trials (Optuna asking the sampler, storing a result) it waits for
    the next trial's start or the loop's end: raised there, it would leave a trial RUNNING that no worker owns.
    """

    def __init__(self) -> None:
        self.between_trials = self.pending = self.fired = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.fired:
            return
        if self.between_trials:
            self.pending = True
            return
        self.fire()

    def fire(self) -> None:
        self.fired, self.pending = True, False
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def trials(self):
        """Around `study.optimize`."""
        self.between_trials = True
        try:
            yield
        finally:
            self.between_trials = False
        if self.pending:
            self.fire()

    def inside(self, work: Callable[..., Any]) -> Callable[..., Any]:
        """`work` (a trial's objective, or a promotion while the worker waits for room), where Ctrl-C is raised at
        once (a held one first)."""

        def run(*args: Any) -> Any:
            self.between_trials = False
            try:
                if self.pending:
                    self.fire()
                return work(*args)
            finally:
                self.between_trials = True

        return run


def _keep_tracebacks_out_of_optuna_log() -> None:
    """Optuna logs a failed trial with its traceback; our progress line and the trial's `fail_reason` (its
    `fail_traceback` attribute keeps the traceback) say it in one line, and Ctrl-C prints no traceback."""
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())


class _NoTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True
