"""What a person sees of a run: the first lines, the progress columns, the ETA, and a rerun of a finished study."""

from __future__ import annotations

import datetime
import re
import tempfile

import optuna
import pytest
import torch
from optuna.trial import TrialState, create_trial

import run_search
import search.runner
from editions import get_edition
from search import candidate
import search.progress
from search.progress import progress_line, tail_seconds
from search.runner import RunSummary, run_search as run

REFERENCES = get_edition(2022).references


def _trial(number, *, state=TrialState.COMPLETE, constraints=(-1.0, -0.1), **attrs):
    start = datetime.datetime(2026, 1, 1)
    values = [attrs.get("latency_ratio", 0.5), attrs.get("psnr", 27.0)] if state == TrialState.COMPLETE else None
    trial = create_trial(state=state, values=values, user_attrs=attrs,
                         system_attrs={"constraints:params": constraints[0], "constraints:psnr": constraints[1]}
                         if state == TrialState.COMPLETE else {})
    trial.number, trial.datetime_start = number, start
    trial.datetime_complete = start + datetime.timedelta(seconds=42)
    return trial


def test_progress_columns_stay_aligned_whatever_the_state(search_settings, tmp_path):
    settings = search_settings(tmp_path, trials=24)
    study = optuna.create_study(directions=["minimize", "maximize"])
    common = dict(label="rlfb b4 c46 m48 k3 esa_slim lrelu none", latency_ratio=0.41, params=317_218)
    trials = [
        _trial(0, reference="imdn", psnr=27.46, trained=True, latency_ratio=1.0, params=893_936),
        _trial(5, psnr=27.31, trained=True, verdict="uncertain", **common),
        _trial(6, psnr=27.92, trained=False, cut_before_training=["params"], constraints=(5.0, -0.1), **common),
        _trial(7, psnr=27.31, trained=True, duplicate_of=5, **common),
        _trial(12, state=TrialState.PRUNED, psnr=25.1, trained=True, **common),
        _trial(13, state=TrialState.FAIL, fail_reason="RuntimeError: a bug in a block", label="span b2 c16"),
    ]
    lines = [progress_line(t, done=i + 1, target=24, settings=settings, study=study, eta_s=600.0)
             for i, t in enumerate(trials)]
    for column in ("lat ", "PSNR", "best ", "| "):
        starts = {line.index(column) for line in lines if column in line}
        assert len(starts) == 1, (column, lines)
    assert "uncertain" in lines[1]  # the PSNR verdict, where the constraints keep the trial
    assert "infeasible" in lines[2] and lines[2].endswith("(cut: params)")
    assert lines[3].endswith("(same as #5)") and lines[5].endswith("(RuntimeError: a bug in a block)")
    assert "PSNR -" in lines[2]  # cut before training: its PSNR is a stand-in, not shown as a measurement


def test_the_eta_counts_the_promotion_budget_left_reports_and_export(search_settings, tmp_path):
    study = optuna.create_study()
    settings = search_settings(tmp_path, confirm_minutes=2.0)
    assert tail_seconds(settings, study) == pytest.approx(120 + search.progress.REPORT_AND_EXPORT_S)
    study.set_user_attr("promotion_seconds", 90.0)  # spent by an earlier run of this study
    assert tail_seconds(settings, study) == pytest.approx(30 + search.progress.REPORT_AND_EXPORT_S)
    assert tail_seconds(settings.replace(confirm_minutes=0), study) == search.progress.REPORT_AND_EXPORT_S


def test_the_first_lines_say_when_the_storage_folder_was_created(search_settings, tmp_path, monkeypatch):
    monkeypatch.setattr(search.runner, "optimize", lambda *args, **kwargs: None)
    monkeypatch.setattr(search.runner, "finish", lambda settings, say: RunSummary(settings.name, 0, 0, None, []))
    folder = tmp_path / "new" / "dir"
    lines: list[str] = []
    settings = search_settings(tmp_path / "results", storage=f"sqlite:///{folder}/x.db")
    run(settings, say=lines.append)
    assert lines[2] == f"  storage sqlite:///{folder}/x.db (folder {folder} created)"
    assert lines[3] == f"  data {settings.data}: validated on DIV2K_valid (2 images)"  # the tiny DIV2K folder's
    lines.clear()
    run(settings, say=lines.append)
    assert lines[2] == f"  storage sqlite:///{folder}/x.db"


def test_rerunning_a_finished_study_exits_0_trains_nothing_and_keeps_the_export(
        study_with_references, tiny_div2k, capsys, monkeypatch, cli_env, one_thread):
    monkeypatch.setattr(tempfile, "tempdir", cli_env["TMPDIR"])
    args = ["--budget", "smoke", "--latency-input", "3x24x36", "--data", str(tiny_div2k), "--results",
            str(study_with_references), "--study-name", "reliability", "--trials", "7", "--confirm-minutes", "3", "--max-rung", "1"]
    assert run_search.main(args) == 0
    first = capsys.readouterr().out
    winner = re.search(r"^winner: trial #(\d+) ", first, flags=re.M)
    assert winner, first
    last = next(line for line in first.splitlines() if line.startswith("[7/7]"))
    assert not last.endswith("ETA   0.0 min")  # the promotion, reports and export are still to come
    assert first.rstrip().splitlines()[-1] == f"report: {study_with_references / 'reliability' / 'report.html'}"
    export = study_with_references / "reliability" / "export"
    files = {p: p.read_bytes() for p in export.rglob("*") if p.is_file()}

    def no_training(*args, **kwargs):
        raise AssertionError("a rerun of a finished study trained something")

    monkeypatch.setattr(candidate, "train", no_training)
    assert run_search.main(args) == 0
    second = capsys.readouterr().out
    assert "8 of 7" not in second and "7 of 7 trials done" in second
    assert f"export of trial #{winner.group(1)} unchanged" in second
    assert {p: p.read_bytes() for p in export.rglob("*") if p.is_file()} == files

    weights = next(export.glob("model_zoo/*.pth"))
    torch.save({k: v + 1 for k, v in torch.load(weights).items()}, weights)
    assert run_search.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "refusing to overwrite an export" in err[0]
