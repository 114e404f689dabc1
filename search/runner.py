"""Run a search end to end: study, trials (one or many workers), re-evaluation, reports, plots, export."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
import pandas as pd
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.trial import FrozenTrial, TrialState

import train_proxy
from data import load_dataset
from editions import Edition
from evaluators.device import resolve_device
from evaluators.latency import resolve_dtype
from search import candidate
from search.calibration import PsnrPredictor, Verdict
from search.export import export_architecture
from search.export_metrics import edition_metrics
from search.objective import TrialObjective, measure_reference, reference_training
from search.plots import write_plots
from search.reevaluate import reevaluate
from search.report import format_leaderboard, leaderboard, references_frame, trials_frame, write_tables
from search.settings import SearchSettings
from search.report_html import write_report
from search.study import (check_writable_storage, done_trials, make_storage, open_study, prepare_storage_folder,
                          reference_records, study_space)
from search.tracks import get_track
from search.trial_gate import BoundedStudy, StudyFull, StudyLock
from spaces import Architecture, ArchConfig, build_model, check_x4, get_space, read_kit
from spaces.resolve import ModelOptions, resolve_architecture

Printer = Callable[[str], None]
MAX_FAILURES_IN_A_ROW = 5
# Seconds that the reports, plots and export (ONNX included) take after the trials and the re-evaluation:
# about 15 s on the default run on 2 CPU cores.
REPORT_AND_EXPORT_S = 15.0


@dataclass(frozen=True)
class RunSummary:
    study_name: str
    trials: int
    feasible: int
    winner: int | None
    files: list[Path]


def budget_of(settings: SearchSettings) -> train_proxy.Budget:
    return train_proxy.get_budget(settings.budget, iterations=settings.iterations, batch_size=settings.batch_size,
                                  lr_patch=settings.patch, lr=settings.lr)


def make_objective(settings: SearchSettings, study: optuna.Study, *, data: Any = None) -> TrialObjective:
    edition = settings.rules
    data = load_dataset(settings.data, valid_limit=settings.valid_limit, edition=edition) if data is None else data
    if "bicubic_psnr" not in study.user_attrs:
        study.set_user_attr("bicubic_psnr", train_proxy.bicubic_baseline_psnr(data))
    if "validation" not in study.user_attrs:
        study.set_user_attr("validation", data.describe_valid())
    measurement = candidate.Measurement.of_edition(edition, device=settings.device,
                                                   latency_input=settings.latency_input, dtype=settings.dtype)
    return TrialObjective(settings=settings, space=study_space(study, settings), data=data, budget=budget_of(settings), measurement=measurement,
                     artifacts=artifact_store(settings), bicubic_psnr=study.user_attrs["bicubic_psnr"])


def artifact_store(settings: SearchSettings) -> FileSystemArtifactStore:
    path = settings.run_dir / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def run_search(settings: SearchSettings, *, say: Printer = print) -> RunSummary:
    """The main job: search until `settings.trials` trials are done, then report and export."""
    check_trial_count(settings)
    settings = settings.replace(device=str(resolve_device(settings.device)))
    resolve_dtype(settings.dtype, torch.device(settings.device))  # e.g. bf16 on a GPU that only emulates it
    budget = budget_of(settings)
    check_writable_storage(settings.storage_url)
    check_output_folder(settings.run_dir)
    # bad data is refused before a study is created for it
    data = load_dataset(settings.data, valid_limit=settings.valid_limit, edition=settings.rules)
    train_proxy.check_data(data, budget=budget)
    if settings.calibrate_with:
        read_kit(settings.calibrate_with)  # a malformed manifest is refused before a study is created
    extra = extra_references(settings)  # a bad model file is refused before a study is created
    train_extra_references(settings, extra, data=data, budget=budget)  # so is one that cannot be trained
    settings = settings.replace(storage=settings.storage_url)  # fixed now: the study file may not exist yet
    created = prepare_storage_folder(settings.storage_url)
    started = time.monotonic()
    try:
        study = open_study(settings)
        done = done_trials(study)
        edition = settings.rules
        say(f"study {settings.name!r}: {edition.name} (baseline {edition.baseline}, floor {settings.floor:.2f} dB, "
            f"GPU {edition.gpu or 'not recorded'}), track {settings.track}, space {settings.space}, "
            f"sampler {settings.sampler}, seed {settings.seed}")
        say(f"  {done} of {settings.trials} trials done; budget {budget.name} ({budget.iterations} steps, batch "
            f"{budget.batch_size}, LR patch {budget.lr_patch}, lr {budget.lr:g}), "
            f"device {settings.device}, {settings.workers} worker(s)")
        say(f"  storage {settings.storage_url}" + (f" (folder {created} created)" if created else ""))
        say(f"  data {data.source}: validated on {data.describe_valid()}")
        if study_space(study, settings) != get_space(settings.space):
            say(f"  space {settings.space!r} has grown since this study began: it goes on sampling the space it "
                f"began with (new choices need a new --study-name)")
        if done < settings.trials:
            if settings.workers == 1:
                optimize(settings, study, say=say, data=data)
            else:
                data = None  # each worker loads its own
                run_workers(settings, say=say)
        try:
            measure_extra_references(settings, study, extra, data=data, say=say)
        except ReferenceFailed:
            finish(settings.replace(reeval_top=0, export_winner=False), say=say)  # the trials are reported all the same
            raise
        return finish(settings, say=say)
    except KeyboardInterrupt:
        say(f"interrupted after {time.monotonic() - started:.0f} s; completed trials are stored (a trial that "
            f"was running is marked failed). Rerun the same command to resume.")
        raise


def extra_references(settings: SearchSettings) -> dict[str, Architecture]:
    """Label -> architecture of every `--reference` (a config, a model file, a kit entry), checked to be x4."""
    options = ModelOptions(kit=settings.kit)
    found = {}
    for spec in settings.extra_references:
        label, arch = resolve_architecture(spec, options=options)
        check_x4(build_model(arch), label=label)
        found[label] = arch
    return found


class ReferenceFailed(ValueError):
    """A --reference that cannot be measured (its loss or output is not finite, its code raises)."""

    def __init__(self, label: str, error: Exception) -> None:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        super().__init__(f"--reference {label} cannot be measured: {reason}; fix that model or leave it out")


def train_extra_references(settings: SearchSettings, extra: dict[str, Architecture], *, data: Any,
                           budget: train_proxy.Budget) -> None:
    """Proxy-train each --reference before any study or candidate (or find its training in the measurement cache):
    one that cannot be trained is refused first, not after the search, and its measurement after the trials
    reads the cache."""
    for label, arch in extra.items():
        try:
            reference_training(arch, name=label, data=data, budget=budget, seed=settings.seed, device=settings.device)
        except Exception as error:  # the user's model code may raise anything
            raise ReferenceFailed(label, error) from None


def measure_extra_references(settings: SearchSettings, study: optuna.Study, extra: dict[str, Architecture], *,
                             data: Any, say: Printer) -> None:
    """Measure the user's extra references not yet in the study, like the edition's (drawn and ranked beside the
    trials, never calibrating the predictor); ReferenceFailed when one cannot be measured."""
    missing = {label: arch for label, arch in extra.items() if f"reference:{label}" not in study.user_attrs}
    if not missing:
        return
    objective = make_objective(settings, study, data=data)
    for label, arch in missing.items():
        try:
            record = measure_reference(study, label, objective=objective, arch=arch)
        except Exception as error:  # the user's model code may raise anything
            raise ReferenceFailed(label, error) from None
        say(f"  extra reference {label}: latency {record['latency_ratio']:.3f}x, {record['params']:,} params, proxy "
            f"PSNR {record['psnr']:.2f} dB, predicted {record['psnr_predicted']:.2f} dB "
            f"[{record['psnr_low']:.2f}, {record['psnr_high']:.2f}] {record['verdict']}")


def check_trial_count(settings: SearchSettings) -> None:
    """--trials counts the references, the study's first trials: it must leave room for one candidate at least."""
    references = settings.rules.references
    if settings.trials <= len(references):
        raise ValueError(f"--trials {settings.trials} leaves no room for a candidate: the first {len(references)} "
                         f"trials of a study are the references ({', '.join(references)}); give --trials "
                         f"{len(references) + 1} or more")


def check_output_folder(folder: Path, *, flag: str = "--results") -> None:
    """Refuse an output folder (or the nearest of its parents that exists) that is a file or that this process
    may not write, before anything is written; `flag` is the option that chose it."""
    existing = next(f for f in (folder, *folder.parents) if f.exists())
    if not existing.is_dir():
        raise ValueError(f"output folder {existing} is a file; give {flag} a folder")
    if not os.access(existing, os.W_OK):
        raise ValueError(f"output folder {existing} is read-only here; give {flag} a folder you can write")


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
                           stop=lambda: guard.pending or (deadline is not None and time.monotonic() >= deadline))
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

    def inside(self, objective: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
        """`objective`, where Ctrl-C is raised at once (a held one first)."""

        def run(trial: optuna.Trial) -> Any:
            self.between_trials = False
            try:
                if self.pending:
                    self.fire()
                return objective(trial)
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


def progress_line(trial: FrozenTrial, *, done: int, target: int, settings: SearchSettings, study: optuna.Study,
                  eta_s: float) -> str:
    """One line per trial, in fixed-width columns (a missing figure leaves its column blank); what explains the
    state (cut before training, duplicate, failure reason) comes last, so it never shifts the columns."""
    attrs = trial.user_attrs
    name = attrs.get("reference") or attrs.get("label", "")
    psnr = attrs.get("psnr")
    state = trial.state.name.lower()
    if trial.state == TrialState.COMPLETE and trial.constraints:
        kept = all(v <= 0 for v in trial.constraints.values())  # the PSNR verdict says feasible or uncertain
        state = attrs.get("verdict", "feasible") if kept else "infeasible"
    notes = []
    if attrs.get("duplicate_of") is not None:
        notes.append(f"same as #{attrs['duplicate_of']}")
    if attrs.get("cut_before_training"):
        notes.append(f"cut: {', '.join(attrs['cut_before_training'])}")
    if trial.state == TrialState.FAIL:
        notes.append(attrs.get("fail_reason", "")[:80])
    width = len(str(target))
    latency = f"lat {attrs['latency_ratio']:.2f}x" if "latency_ratio" in attrs else ""
    params = f"{attrs['params'] / 1e3:.0f}K" if "params" in attrs else ""
    measured = psnr is not None and attrs.get("trained", True)
    duration = trial.duration.total_seconds() if trial.duration else 0.0
    columns = [f"[{done:>{width}}/{target}]", f"#{trial.number:<{width + 1}}", f"{state:<10}", f"{name[:48]:<48}",
               f"{latency:<10}", f"{params:>6}", f"PSNR {psnr:5.2f}" if measured else f"{'PSNR -':<10}",
               f"best {best_feasible(study, settings):<28}", f"| {duration:4.0f} s, ETA {eta_s / 60:5.1f} min"]
    return "  ".join(columns + [f"({'; '.join(notes)})"] * bool(notes))


def tail_seconds(settings: SearchSettings, study: optuna.Study) -> float:
    """Seconds that follow the trials: the re-evaluation (each reference and each re-evaluated member trained
    `reeval_seeds` more times at `reeval_budget` x the budget, timed like the references' training in this study),
    the reports and the export."""
    trainings = (len(settings.rules.references) + settings.reeval_top) * settings.reeval_seeds if settings.reeval_top else 0
    times = [record["train_seconds"] for record in reference_records(study).values() if "train_seconds" in record]
    training_s = sum(times) / len(times) if times else 0.0
    return trainings * settings.reeval_budget * training_s + REPORT_AND_EXPORT_S


def best_feasible(study: optuna.Study, settings: SearchSettings) -> str:
    track = get_track(settings.track, settings.rules)
    metric = track.ranked_by[0]
    values = [(t.user_attrs.get(metric), t.number) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.constraints and all(v <= 0 for v in t.constraints.values()) and t.user_attrs.get("trained")
              and not t.user_attrs.get("reference")]
    if not values:
        return "-"
    value, number = min(values)
    return f"#{number} {metric} {value:.3g}"


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


def finish(settings: SearchSettings, *, say: Printer, study: optuna.Study | None = None,
           out_dir: Path | None = None) -> RunSummary:
    """Reports, plots, re-evaluation and export, from what the storage holds; the report's path is said last.

    `study`: the study as already opened (`report` opens it read-only), else it is loaded from the storage;
    `out_dir`: where the reports go (default: the run folder, where the export always goes).
    """
    edition = settings.rules
    track = get_track(settings.track, edition)
    if study is None:
        study = optuna.load_study(study_name=settings.name, storage=make_storage(settings.storage_url))
    out_dir = out_dir or settings.run_dir
    frame = trials_frame(study, track)
    references = references_frame(study)
    board = leaderboard(frame, references, track, edition=edition)
    files = write_tables(frame, board, track=track, out_dir=out_dir)
    say(f"\n{track.name} track: {int(frame['feasible'].sum())} feasible of {len(frame)} trials; leaderboard "
        f"({edition.name} score: {edition.ranking.describe()}; references beside the trials):")
    say(format_leaderboard(board))
    reeval = reevaluate_front(settings, study, frame=frame, board=board, say=say)
    reeval_csv = out_dir / "reevaluation.csv"
    if not reeval.empty and settings.reeval_top:
        reeval.to_csv(reeval_csv, index=False)
        files.append(reeval_csv)
    calibration = study.user_attrs.get("reevaluation_calibration" if not reeval.empty else "calibration")
    predictor = PsnrPredictor.from_dict(calibration) if calibration else None
    if predictor is not None:
        files += write_plots(trials=frame, references=references, track=track,
                             limits=candidate.edition_limits(edition, floor=settings.floor), baseline=edition.baseline,
                             out_dir=out_dir, title=f"{settings.name}: {track.name} track ({edition.name})")
        say(f"\nPSNR predictor: {predictor.describe()}; floor {predictor.floor:.2f} dB: feasible when the whole 80% "
            f"interval clears it, infeasible when it is all under, uncertain otherwise")
    winner, verdict = choose_winner(board, reeval)
    refused = None
    if winner is None:
        say("no sampled architecture is feasible or uncertain yet: nothing to export")
    else:
        row = _winner_row(board, reeval, winner)
        say(f"winner: trial #{winner}, {verdict}: predicted {row['psnr_predicted']:.2f} dB "
            f"[{row['psnr_low']:.2f}, {row['psnr_high']:.2f}] (80% interval), floor {settings.floor:.2f} dB"
            + (" -- its interval straddles the floor: train it longer before relying on it"
               if verdict == Verdict.UNCERTAIN.value else ""))
        if settings.export_winner:
            try:
                files += export_trials(study, frame, [winner], out_dir=settings.run_dir / "export",
                                       artifacts_dir=settings.run_dir / "artifacts", study_edition=settings.rules,
                                       edition=settings.rules, say=say)
            except FileExistsError as error:  # an export folder that holds something else: the report all the same
                refused = error
    report = write_report(study=study, settings=settings, budget=budget_of(settings), track=track, frame=frame,
                          board=board, reeval=reeval, predictor=predictor, winner=winner,
                          out=out_dir / "report.html")
    say(f"\nreport: {report}")
    if refused is not None:
        raise refused
    return RunSummary(settings.name, len(frame), int(frame["feasible"].sum()), winner, [*files, report])


def reevaluate_front(settings: SearchSettings, study: optuna.Study, *, frame: pd.DataFrame, board: pd.DataFrame,
                     say: Printer) -> pd.DataFrame:
    """The re-evaluation table: computed (stored samples are read back, not trained again) when `reeval_top`
    asks for one, else the one a previous run of this study wrote, if any. Its header is printed only above
    something: a training, or the table."""
    stored = settings.run_dir / "reevaluation.csv"
    if not (settings.reeval_top and settings.reeval_seeds):
        return pd.read_csv(stored) if stored.is_file() else pd.DataFrame()
    if board.empty:
        return pd.DataFrame()
    header = [f"\nre-evaluating the {settings.reeval_top} best-ranked trials and the references with "
              f"{settings.reeval_seeds} more seed(s) at {settings.reeval_budget:g}x the budget:"]

    def progress(line: str) -> None:
        while header:
            say(header.pop())
        say(line)

    reeval = reevaluate(study, objective=make_objective(settings, study), frame=frame,
                        track=get_track(settings.track, settings.rules), board=board, progress=progress)
    if reeval.empty:
        say("\nre-evaluation: nothing to re-evaluate (no sampled trial is feasible or uncertain)")
    else:
        progress(reeval[["name", "number", "label", "seeds", "psnr_mean", "psnr_std", "psnr_predicted", "psnr_low",
                         "psnr_high", "verdict", "psnr_tie_with_best"]].to_string(index=False,
                                                                                 float_format=lambda v: f"{v:.3f}"))
    return reeval


def choose_winner(board: pd.DataFrame, reeval: pd.DataFrame) -> tuple[int | None, str | None]:
    """(trial number, verdict) of the best-ranked sampled trial whose verdict is feasible, else of the best-ranked
    uncertain one; a re-evaluated trial is judged by its re-evaluated verdict."""
    trials = board[board["name"] == "trial"] if not board.empty else board
    if trials.empty:
        return None, None
    verdicts = trials.set_index("number")["verdict"].to_dict()
    if not reeval.empty:
        verdicts.update(reeval[reeval["name"] == "trial"].set_index("number")["verdict"].to_dict())
    for wanted in (Verdict.FEASIBLE.value, Verdict.UNCERTAIN.value):
        for number in trials["number"]:
            if verdicts.get(number) == wanted:
                return int(number), wanted
    return None, None


def _winner_row(board: pd.DataFrame, reeval: pd.DataFrame, number: int) -> pd.Series:
    """The winner's predicted PSNR and interval: re-evaluated when it was, else the search's."""
    source = reeval if not reeval.empty and number in set(reeval["number"]) else board
    return source.loc[source["number"] == number].iloc[0]


def export_trials(study: optuna.Study, frame: pd.DataFrame, numbers: list[int], *, out_dir: Path,
                  artifacts_dir: Path, study_edition: Edition, edition: Edition, say: Printer) -> list[Path]:
    """Export the given trials (config, trained weights from the artifact store, metrics); the metrics follow
    `edition`'s rules (`search.export_metrics`), the study having measured by `study_edition`'s."""
    store = FileSystemArtifactStore(str(artifacts_dir))
    references = references_frame(study)
    written = []
    for number in numbers:
        trial = study.trials[number]
        artifact = trial.user_attrs.get("weights_artifact")
        if artifact is None:
            raise ValueError(f"trial #{number} has no trained weights to export (it was not trained)")
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / "weights.pth"
            download_artifact(artifact_store=store, file_path=str(weights), artifact_id=artifact)
            state_dict = torch.load(weights, map_location="cpu", weights_only=True)
        row = frame.loc[frame["number"] == number].iloc[0]
        metrics = {k: (None if pd.isna(v) else getattr(v, "item", lambda: v)()) for k, v in row.items()}
        config = ArchConfig.from_dict(trial.user_attrs["config"])
        metrics = edition_metrics(metrics, config=config, edition=edition, study_edition=study_edition,
                                  references=references)
        name = f"trial{number}_{config.block}"
        result = export_architecture(config=config, state_dict=state_dict,
                                     metrics={"study": study.study_name, "trial": number, **metrics},
                                     out_dir=out_dir, name=name)
        if result.unchanged:
            say(f"export of trial #{number} unchanged: {result.model_file} and {result.weights} already hold it")
        else:
            say(f"exported trial #{number}: {result.model_file} (class {result.class_name}), {result.weights}"
                + (f", {result.onnx}" if result.onnx else f"; ONNX failed: {result.onnx_error}"))
        written += [p for p in (result.model_file, result.weights, result.config_json, result.metrics_json,
                                result.onnx) if p is not None]
    return written
