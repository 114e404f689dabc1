"""Run a search end to end, in order: the study, the trials (one or many workers), the promotion of the best-ranked
candidates, the reports and plots, the export. Each step is its package's; this module keeps their sequence."""

from __future__ import annotations

import math
import os
import shlex
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
from search.export.trials import export_name, export_trials
from search.objective import TrialObjective, budget_of, make_objective, measure_reference, reference_training
from search.progress import Printer
from search.promotion import next_rung_minutes, promote
from search.report.html import write_report
from search.report.plots import write_plots
from search.report.tables import format_leaderboard, read_study, write_tables
from search.settings import SearchSettings
from search.study import (check_writable_storage, done_trials, make_storage, open_study, prepare_storage_folder,
                          study_space)
from search.trial_loop import optimize
from search.tracks import get_track
from search.records import PROMOTION_SECONDS, rung_calibrations
from search.verdict.calibration import PsnrPredictor, Verdict
from search.verdict.rungs import Ladder
from search.workers import run_workers
from spaces import Architecture, ArchConfig, build_model, check_x4, get_space, read_kit
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
            finish(settings.replace(confirm_minutes=0.0, export_winner=False), say=say)  # the trials are reported
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
                           budget: Any) -> None:
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
    """Promotion of the leading candidates (while `confirm_minutes` allows), reports, plots and export, from what
    the storage holds; the winner with its rung and verdict, and the report's path, are said last.

    `study`: the study as already opened (`report` opens it read-only, with `confirm_minutes` 0), else it is
    loaded from the storage; `out_dir`: where the reports go (default: the run folder, where the export goes).
    """
    edition = settings.rules
    track = get_track(settings.track, edition)
    if study is None:
        study = optuna.load_study(study_name=settings.name, storage=make_storage(settings.storage_url))
    out_dir = out_dir or settings.run_dir
    frame, references, board = read_study(study, track=track, edition=edition)
    objective = outcome = None
    if settings.confirm_minutes > 0 and (board["name"] == "trial").any():
        objective = make_objective(settings, study)
        say(f"\npromotion: the undecided candidates ranked ahead climb rungs of {settings.reduction_factor}x the "
            f"steps (rungs 0..{settings.max_rung}), {settings.confirm_minutes:g} min at most in this study:")
        outcome = promote(study, objective=objective, board=board, say=say)
        say(f"  stopped: {outcome.stopped}")
        frame, references, board = read_study(study, track=track, edition=edition)
    files = write_tables(frame, board, track=track, out_dir=out_dir)
    say(f"\n{track.name} track: {int(frame['feasible'].sum())} feasible of {len(frame)} trials; leaderboard "
        f"({edition.name} score: {edition.ranking.describe()}; references beside the trials; verdicts at each "
        f"trial's highest rung):")
    say(format_leaderboard(board))
    ladder = Ladder(budget_of(settings), reduction_factor=settings.reduction_factor, max_rung=settings.max_rung)
    reached = frame.loc[(frame["reference"] == "") & frame["trained"].eq(True), "rung"]
    counts = {rung: int((reached >= rung).sum()) for rung in ladder.rungs if (reached >= rung).any()}
    say("\nladder (candidates that reached each rung):\n" + ladder.table(reached=counts))
    predictors = {rung: PsnrPredictor.from_dict(stored) for rung, stored in rung_calibrations(study).items()}
    if predictors:
        files += write_plots(trials=frame, references=references, track=track,
                             limits=candidate.edition_limits(edition, floor=settings.floor), baseline=edition.baseline,
                             out_dir=out_dir, title=f"{settings.name}: {track.name} track ({edition.name})")
        for rung, predictor in predictors.items():
            say(f"\nPSNR predictor, rung {rung}: {predictor.describe()}")
        say(f"floor {settings.floor:.2f} dB: feasible when the whole 80% interval clears it, infeasible when it is all "
            f"under, uncertain otherwise; outside calibration when the run lies beyond the calibration points' span")
    winner, verdict = choose_winner(board)
    refused = None
    if winner is None:
        say("no sampled architecture is feasible or uncertain yet: nothing to export")
    else:
        say(winner_lines(settings, study, frame=frame, winner=winner, verdict=verdict, ladder=ladder,
                         objective=objective))
        if settings.export_winner:
            try:
                files += export_trials(study, frame, [winner], out_dir=settings.run_dir / "export",
                                       artifacts_dir=settings.run_dir / "artifacts", study_edition=settings.rules,
                                       edition=settings.rules, say=say)
            except FileExistsError as error:  # an export folder that holds something else: the report all the same
                refused = error
    report = write_report(study=study, settings=settings, budget=budget_of(settings), track=track, frame=frame,
                          board=board, predictors=predictors, winner=winner, ladder=ladder,
                          out=out_dir / "report.html")
    say(f"\nreport: {report}")
    if refused is not None:
        raise refused
    return RunSummary(settings.name, len(frame), int(frame["feasible"].sum()), winner, [*files, report])


def choose_winner(board: pd.DataFrame) -> tuple[int | None, str | None]:
    """(trial number, verdict) of the best-ranked sampled trial whose verdict (at its highest rung) is feasible,
    else of the best-ranked uncertain one, else of the best-ranked one outside the calibration span."""
    trials = board[board["name"] == "trial"] if not board.empty else board
    for wanted in (Verdict.FEASIBLE.value, Verdict.UNCERTAIN.value, Verdict.OUTSIDE.value):
        chosen = trials[trials["verdict"] == wanted]
        if not chosen.empty:
            return int(chosen["number"].iloc[0]), wanted
    return None, None


def winner_lines(settings: SearchSettings, study: optuna.Study, *, frame: pd.DataFrame, winner: int, verdict: str,
                 ladder: Ladder, objective: TrialObjective | None) -> str:
    """The winner, its rung, its verdict with its interval; undecided, what the next rung costs and the command."""
    row = frame.loc[frame["number"] == winner].iloc[0]
    rung, config = int(row["rung"]), ArchConfig.from_json(row["config"])
    lines = [f"winner: trial #{winner} ({row['label']}), rung {rung} ({ladder.budget(rung).iterations} steps), "
             f"{verdict}: predicted {row['psnr_predicted']:.2f} dB [{row['psnr_low']:.2f}, {row['psnr_high']:.2f}] "
             f"(80% interval), floor {settings.floor:.2f} dB" + (f"; {row['verdicts']}" if rung else "")]
    if verdict == Verdict.FEASIBLE.value:
        return "\n".join(lines)
    if rung >= ladder.max_rung:
        lines.append(f"  still {verdict} at the top rung: raise --max-rung, or train it fully and measure it "
                     f"(python train_proxy.py --arch "
                     f"{settings.run_dir / 'export' / export_name(winner, config=config, rung=rung)}.json --budget full "
                     f"--data DIV2K)")
        return "\n".join(lines)
    step = next_rung_minutes(study, objective=objective, number=winner) if objective is not None else None
    spent = float(study.user_attrs.get(PROMOTION_SECONDS, 0.0)) / 60.0
    if step is None:
        lines.append(f"  not decided: promote it with a promotion budget: "
                     f"{rerun_command(settings, confirm_minutes=max(spent, settings.confirm_minutes) + 10)}")
    else:
        minutes = math.ceil(spent + step.minutes * 1.25 + 1)
        lines.append(f"  not decided: rung {step.rung} ({ladder.budget(step.rung).iterations} steps) would take about "
                     f"{step.minutes:.1f} min on this machine; to run it (the study resumes, nothing is trained "
                     f"again): {rerun_command(settings, confirm_minutes=minutes)}")
    return "\n".join(lines)


def rerun_command(settings: SearchSettings, *, confirm_minutes: float) -> str:
    """The command that resumes this study with another promotion budget (every setting that differs from the
    default is spelt out, so the study is found and matches)."""
    default = SearchSettings(edition=settings.edition)
    words = ["python", "run_search.py"]
    for name in RERUN_OPTIONS:
        value = getattr(settings, name)
        if value is None or value == getattr(default, name) or (
                name == "storage" and value == settings.replace(storage=None).storage_url):
            continue
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            words.append(NEGATED[name])
        elif name == "extra_references":
            words += [word for spec in value for word in ("--reference", spec)]
        elif name == "latency_input":
            words += [flag, "x".join(map(str, value))]
        else:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join([*words, "--confirm-minutes", f"{confirm_minutes:g}"])


RERUN_OPTIONS = ("track", "edition", "space", "sampler", "seed", "trials", "budget", "iterations", "batch_size", "patch",
                 "lr", "data", "valid_limit", "device", "latency_input", "dtype", "floor", "predictor",
                 "calibrate_with", "extra_references", "kit", "early_stop", "early_stop_margin", "reduction_factor",
                 "max_rung", "study_name", "storage", "results", "workers", "export_winner")
NEGATED = {"early_stop": "--no-early-stop", "export_winner": "--no-export"}
