"""Run a search end to end: study, trials (one or many workers), re-evaluation, reports, plots, export."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
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
from search import candidate
from search.calibration import PsnrFloor
from search.export import export_architecture
from search.objective import Objective
from search.plots import write_plots
from search.reevaluate import reevaluate
from search.report import format_leaderboard, leaderboard, references_frame, trials_frame, write_tables
from search.settings import SearchSettings
from search.study import done_trials, make_storage, open_study
from search.tracks import get_track
from spaces import ArchConfig

Printer = Callable[[str], None]


@dataclass(frozen=True)
class RunSummary:
    study_name: str
    trials: int
    feasible: int
    winner: int | None
    files: list[Path]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    return device


def budget_of(settings: SearchSettings) -> train_proxy.Budget:
    return train_proxy.resolve_budget(settings.budget, iterations=settings.iterations, batch_size=settings.batch_size,
                                      patch=settings.patch, lr=settings.lr)


def make_objective(settings: SearchSettings, study: optuna.Study) -> Objective:
    data = load_dataset(settings.data)
    if "bicubic_psnr" not in study.user_attrs:
        study.set_user_attr("bicubic_psnr", train_proxy.bicubic_baseline_psnr(data))
    measurement = candidate.Measurement(device=settings.device, latency_input=settings.latency_input,
                                        dtype=settings.dtype)
    return Objective(settings=settings, data=data, budget=budget_of(settings), measurement=measurement,
                     artifacts=artifact_store(settings), bicubic_psnr=study.user_attrs["bicubic_psnr"])


def artifact_store(settings: SearchSettings) -> FileSystemArtifactStore:
    path = settings.run_dir / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def run_search(settings: SearchSettings, *, say: Printer = print) -> RunSummary:
    """The main job: search until `settings.trials` trials are done, then report and export."""
    settings = settings.replace(device=resolve_device(settings.device))
    budget = budget_of(settings)
    if settings.workers > 1 and settings.storage is None:
        settings = settings.replace(storage=f"journal:{(settings.run_dir / 'study.journal').as_posix()}")
    study = open_study(settings)
    done = done_trials(study)
    say(f"study {settings.name!r}: track {settings.track}, space {settings.space}, sampler {settings.sampler}, "
        f"seed {settings.seed}")
    say(f"  {done} of {settings.trials} trials done; budget {settings.budget} ({budget.describe()}), "
        f"device {settings.device}, {settings.workers} worker(s)")
    say(f"  storage {settings.storage_url}")
    if done < settings.trials:
        if settings.workers == 1:
            optimize(settings, study, say=say)
        else:
            run_workers(settings, say=say)
    return finish(settings, say=say)


def optimize(settings: SearchSettings, study: optuna.Study, *, say: Printer) -> None:
    """This process's share of the trials; stops when the study holds `settings.trials` done trials."""
    objective = make_objective(settings, study)
    target = settings.trials
    started = time.monotonic()
    durations: list[float] = []

    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        durations.append(trial.duration.total_seconds() if trial.duration else 0.0)
        done = done_trials(study)
        say(progress_line(trial, done=done, target=target, settings=settings, study=study,
                          eta_s=(target - done) * sum(durations) / len(durations) / settings.workers))
        if done >= target:
            study.stop()

    try:
        study.optimize(objective, callbacks=[report], catch=(Exception,),
                       timeout=settings.timeout, gc_after_trial=True)
    except KeyboardInterrupt:
        say(f"\ninterrupted after {time.monotonic() - started:.0f} s; completed trials are stored. "
            f"Rerun the same command to resume.")
        raise


def progress_line(trial: FrozenTrial, *, done: int, target: int, settings: SearchSettings, study: optuna.Study,
                  eta_s: float) -> str:
    attrs = trial.user_attrs
    name = attrs.get("reference") or attrs.get("label", "")
    psnr = attrs.get("psnr")
    state = trial.state.name.lower()
    if trial.state == TrialState.COMPLETE and trial.constraints:
        state = "feasible" if all(v <= 0 for v in trial.constraints.values()) else "infeasible"
    if attrs.get("duplicate_of") is not None:
        state += f" (same as #{attrs['duplicate_of']})"
    if attrs.get("cut_before_training"):
        state += f" (cut: {', '.join(attrs['cut_before_training'])})"
    best = best_feasible(study, settings)
    parts = [f"[{done}/{target}] #{trial.number} {state:<12} {name[:48]:<48}"]
    if "latency_ratio" in attrs:
        parts.append(f"lat {attrs['latency_ratio']:.2f}x")
    if "params" in attrs:
        parts.append(f"{attrs['params'] / 1e3:.0f}K")
    if psnr is not None:
        parts.append(f"PSNR {psnr:.2f}")
    if trial.state == TrialState.FAIL:
        parts.append(attrs.get("fail_reason", "")[:80])
    parts.append(f"best {best} | {trial.duration.total_seconds() if trial.duration else 0:.0f} s, ETA {eta_s / 60:.1f} min")
    return "  ".join(parts)


def best_feasible(study: optuna.Study, settings: SearchSettings) -> str:
    track = get_track(settings.track)
    metric = track.ranked_by[0]
    values = [(t.user_attrs.get(metric), t.number) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.constraints and all(v <= 0 for v in t.constraints.values()) and t.user_attrs.get("trained")
              and not t.user_attrs.get("reference")]
    if not values:
        return "-"
    value, number = min(values)
    return f"#{number} {metric} {value:.3g}"


def run_workers(settings: SearchSettings, *, say: Printer) -> None:
    """N processes share the study through its storage; with several GPUs, one GPU per worker."""
    gpus = torch.cuda.device_count() if settings.device == "cuda" else 0
    context = multiprocessing.get_context("spawn")
    processes = []
    for index in range(settings.workers):
        env = {"CUDA_VISIBLE_DEVICES": str(index % gpus)} if gpus > 1 else {}
        process = context.Process(target=_worker_main, args=(settings, env, index), name=f"worker-{index}")
        process.start()
        processes.append(process)
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        for process in processes:
            process.join(timeout=30)
        raise
    failed = [p.name for p in processes if p.exitcode not in (0, None)]
    if failed:
        say(f"warning: {', '.join(failed)} exited with an error; completed trials are stored")


def _worker_main(settings: SearchSettings, env: dict[str, str], index: int) -> None:
    os.environ.update(env)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.workers))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(settings)
    optimize(settings, study, say=lambda line: print(f"[w{index}] {line}", flush=True))


def finish(settings: SearchSettings, *, say: Printer) -> RunSummary:
    """Reports, plots, re-evaluation and export, from what the storage holds."""
    track = get_track(settings.track)
    study = optuna.load_study(study_name=settings.name, storage=make_storage(settings.storage_url))
    frame = trials_frame(study, track)
    references = references_frame(study)
    board = leaderboard(frame, references, track)
    files = write_tables(frame, board, track=track, out_dir=settings.run_dir)
    say(f"\n{track.name} track: {int(frame['feasible'].sum())} feasible of {len(frame)} trials; leaderboard "
        f"(challenge ranking, references beside the trials):")
    say(format_leaderboard(board))
    reeval = pd.DataFrame()
    if settings.reeval_top and settings.reeval_seeds and not board.empty:
        say(f"\nre-evaluating up to {settings.reeval_top} Pareto members and the references with "
            f"{settings.reeval_seeds} more seed(s) at {settings.reeval_budget:g}x the budget:")
        reeval = reevaluate(study, objective=make_objective(settings, study), frame=frame, track=track,
                            board=board, progress=say)
        if not reeval.empty:
            path = settings.run_dir / "reevaluation.csv"
            reeval.to_csv(path, index=False)
            files.append(path)
            say(reeval[["name", "number", "label", "seeds", "psnr_mean", "psnr_std", "psnr_predicted", "feasible",
                        "psnr_tie_with_best"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    calibration = study.user_attrs.get("calibration")
    if calibration:
        floor = PsnrFloor.from_dict(calibration)
        files += write_plots(trials=frame, references=references, track=track, floor=floor, out_dir=settings.run_dir,
                             title=f"{settings.name}: {track.name} track")
        say(f"\nPSNR floor ({floor.mode}): proxy PSNR >= {floor.proxy_floor:.3f} dB predicts >= {floor.floor:.2f} dB"
            + (" (warning: the proxy does not order the references as full training does)" if floor.degenerate else ""))
    winner = choose_winner(board, reeval)
    if winner is None:
        say("no sampled architecture is feasible yet: nothing to export")
    else:
        say(f"winner: trial #{winner}")
        if settings.export_winner:
            files += export_trials(study, frame, [winner], out_dir=settings.run_dir / "export",
                                   artifacts_dir=settings.run_dir / "artifacts", say=say)
    for path in files:
        if path.suffix == ".html" and path.name.startswith("pareto"):
            say(f"Pareto plot: {path}")
    return RunSummary(settings.name, len(frame), int(frame["feasible"].sum()), winner, files)


def choose_winner(board: pd.DataFrame, reeval: pd.DataFrame) -> int | None:
    """The best-ranked sampled trial; after re-evaluation, the best-ranked one still feasible on its mean PSNR."""
    trials = board[board["name"] == "trial"] if not board.empty else board
    if not reeval.empty:
        still = set(reeval.loc[(reeval["name"] == "trial") & reeval["feasible"], "number"])
        reevaluated = set(reeval.loc[reeval["name"] == "trial", "number"])
        trials = trials[trials["number"].isin(still) | ~trials["number"].isin(reevaluated)]
    return None if trials.empty else int(trials.iloc[0]["number"])


def export_trials(study: optuna.Study, frame: pd.DataFrame, numbers: list[int], *, out_dir: Path,
                  artifacts_dir: Path, say: Printer) -> list[Path]:
    """Export the given trials (config, trained weights from the artifact store, metrics)."""
    store = FileSystemArtifactStore(str(artifacts_dir))
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
        name = f"trial{number}_{trial.user_attrs['config']['block']}"
        result = export_architecture(config=ArchConfig.from_dict(trial.user_attrs["config"]), state_dict=state_dict,
                                     metrics={"study": study.study_name, "trial": number, **metrics},
                                     out_dir=out_dir, name=name)
        say(f"exported trial #{number}: {result.model_file} (class {result.class_name}), {result.weights}"
            + (f", {result.onnx}" if result.onnx else f"; ONNX failed: {result.onnx_error}"))
        written += [p for p in (result.model_file, result.weights, result.config_json, result.metrics_json,
                                result.onnx) if p is not None]
    return written
