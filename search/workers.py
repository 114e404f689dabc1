"""Several worker processes on one study (they share it through its storage); one GPU per worker."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
import warnings

import optuna
import torch

from search.progress import Printer
from search.settings import SearchSettings
from search.study import open_study
from search.trial_loop import CtrlC, SearchStalled, optimize

def run_workers(settings: SearchSettings, *, say: Printer) -> None:
    """N processes share the study through its storage; with several GPUs, one GPU per worker.

    Ctrl-C: the workers stop (their running trials are marked failed); run_search says how to resume.
    """
    gpus = torch.cuda.device_count() if settings.device == "cuda" else 0
    context = multiprocessing.get_context("spawn")
    processes = []
    # Workers start with SIGINT ignored (inherited) and take it up once they can handle it: a Ctrl-C
    # while Python starts in them would print a traceback from multiprocessing's bootstrap.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for index in range(settings.workers):
            env = worker_env(index, gpus=gpus, visible=os.environ.get("CUDA_VISIBLE_DEVICES"))
            process = context.Process(target=_worker_main, args=(settings, env, index), name=f"worker-{index}")
            process.start()
            processes.append(process)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        _stop_workers(processes)
        raise
    failed = [p.name for p in processes if p.exitcode not in (0, None)]
    if failed:
        say(f"warning: {', '.join(failed)} exited with an error; completed trials are stored")


def _stop_workers(processes: list[multiprocessing.Process], *, grace_s: float = 60.0) -> None:
    """Pass Ctrl-C on to the workers (a terminal sends it to them too, `kill -INT` to this process only) until
    they have stopped (each takes the first one only: CtrlC); one still running after `grace_s` is terminated."""
    deadline = time.monotonic() + grace_s
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        for process in processes:
            if process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGINT)
        for process in processes:
            process.join(timeout=max(0.0, min(2.0, deadline - time.monotonic())))
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join()


def worker_env(index: int, *, gpus: int, visible: str | None = None) -> dict[str, str]:
    """Environment of worker `index`: with several GPUs, CUDA_VISIBLE_DEVICES pins one (round robin), chosen
    among those already visible to this process (`visible`: its CUDA_VISIBLE_DEVICES, None when unset)."""
    if gpus <= 1:
        return {}
    devices = [d.strip() for d in visible.split(",") if d.strip()] if visible else [str(i) for i in range(gpus)]
    return {"CUDA_VISIBLE_DEVICES": devices[index % min(gpus, len(devices))]}


def _worker_main(settings: SearchSettings, env: dict[str, str], index: int) -> None:
    ctrl_c = CtrlC()
    signal.signal(signal.SIGINT, ctrl_c)
    os.environ.update(env)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.workers))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    say = lambda line: print(f"[w{index}] {line}", flush=True)  # noqa: E731
    try:
        study = open_study(settings, stream=index + 1)
        optimize(settings, study, say=say, ctrl_c=ctrl_c)
    except KeyboardInterrupt:
        sys.exit(130)  # the parent says how to resume (run_search)
    except (ValueError, OSError, LookupError, SearchStalled) as error:
        say(f"error: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}")
        sys.exit(2)
