"""Run a search end to end, in order: the study, the trials (one or many workers), the promotion of the best-ranked
candidates, the reports and plots, the export. Each step is its package's; this module keeps their sequence."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch

import train_proxy
from data import load_dataset
from evaluators.device import resolve_device
from evaluators.latency import resolve_dtype
from search import candidate
from search.export.trials import export_trials
from search.objective import budget_of, make_objective, measure_reference, reference_training
from search.progress import Printer
from search.reevaluate import reevaluate
from search.report.html import write_report
from search.report.plots import write_plots
from search.report.tables import format_leaderboard, leaderboard, references_frame, trials_frame, write_tables
from search.settings import SearchSettings
from search.study import (check_writable_storage, done_trials, make_storage, open_study, prepare_storage_folder,
                          study_space)
from search.trial_loop import optimize
from search.tracks import get_track
from search.verdict.calibration import PsnrPredictor, Verdict
from search.workers import run_workers
from spaces import Architecture, build_model, check_x4, get_space, read_kit
from spaces.resolve import ModelOptions, resolve_architecture


@dataclass(frozen=True)
class RunSummary:
    study_name: str
    trials: int
    feasible: int
    winner: int | None
    files: list[Path]


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
