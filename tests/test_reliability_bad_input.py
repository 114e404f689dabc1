"""Bad input gives one clear line on stderr, a non-zero exit, no traceback, and overwrites nothing.

Most cases call `run_search.main` in this process (fast); two run the command line as a subprocess
to check the same end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import assert_one_clear_line, run_main, snapshot
from PIL import Image

from search.settings import SearchSettings
from search.study import open_study


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


def search_args(results: Path, data: Path, *extra: str) -> list[str]:
    return ["--budget", "smoke", "--results", str(results), "--data", str(data), "--no-export", *extra]


@pytest.mark.parametrize("flag, value, fragment", [
    ("--track", "speed", "unknown track 'speed'"),
    ("--sampler", "cmaes", "unknown sampler 'cmaes'"),
    ("--space", "resnet", "unknown search space 'resnet'"),
    ("--budget", "huge", "unknown budget 'huge'"),
    ("--predictor", "tea-leaves", "unknown --predictor 'tea-leaves'"),
])
def test_unknown_names(capsys, results, tiny_div2k, flag, value, fragment):
    code, err = run_main(capsys, *search_args(results, tiny_div2k, flag, value))
    assert_one_clear_line(code, err, fragment)
    assert not results.exists()


@pytest.mark.parametrize("flag, value", [
    ("--trials", "0"), ("--trials", "-4"), ("--workers", "0"), ("--iterations", "0"), ("--batch-size", "-1"),
    ("--patch", "0"), ("--lr", "0"), ("--timeout", "-1"), ("--confirm-minutes", "-1"), ("--reduction-factor", "1"),
    ("--max-rung", "-1"),
])
def test_non_positive_counts_and_budget_values(capsys, results, tiny_div2k, flag, value):
    code, err = run_main(capsys, *search_args(results, tiny_div2k, flag, value))
    assert_one_clear_line(code, err, flag)
    assert not results.exists()


def test_calibrate_with_a_folder_that_is_not_a_kit(capsys, results, tiny_div2k, tmp_path):
    code, err = run_main(capsys, *search_args(results, tiny_div2k, "--calibrate-with", str(tmp_path)))
    assert_one_clear_line(code, err, "--calibrate-with", "not a kit folder")
    assert not results.exists()


def test_missing_data_folder(capsys, results, tmp_path):
    code, err = run_main(capsys, *search_args(results, tmp_path / "DIV2K"))
    assert_one_clear_line(code, err, "data folder", "does not exist")
    assert not results.exists()  # no study was created for data that cannot be read


def test_malformed_data_folder(capsys, results, tmp_path):
    (tmp_path / "DIV2K" / "DIV2K_train_HR").mkdir(parents=True)
    code, err = run_main(capsys, *search_args(results, tmp_path / "DIV2K"))
    assert_one_clear_line(code, err, "no validation folder of an accepted layout", "DIV2K_valid_HR/",
                          "DIV2K_LSDIR_valid_HR/")
    assert not results.exists()


def copy_data(source: Path, target: Path) -> Path:
    for path in source.rglob("*.png"):
        (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        (target / path.relative_to(source)).write_bytes(path.read_bytes())
    return target


def test_lr_hr_size_mismatch(capsys, results, tiny_div2k, tmp_path):
    data = copy_data(tiny_div2k, tmp_path / "DIV2K")
    lr_dir = data / "DIV2K_valid_LR_bicubic" / "X4"
    lr_dir.mkdir(parents=True)
    for hr in sorted((data / "DIV2K_valid_HR").glob("*.png")):
        Image.fromarray(np.zeros((10, 10, 3), dtype=np.uint8)).save(lr_dir / f"{hr.stem}x4.png")  # HR is 64x64
    code, err = run_main(capsys, *search_args(results, data))
    assert_one_clear_line(code, err, "0801x4.png is 10x10", "regenerate the LR image")
    assert not results.exists()


def test_corrupt_image(capsys, results, tiny_div2k, tmp_path):
    data = copy_data(tiny_div2k, tmp_path / "DIV2K")
    (data / "DIV2K_train_HR" / "0002.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, err = run_main(capsys, *search_args(results, data))
    assert_one_clear_line(code, err, "cannot decode image", "0002.png")
    assert not results.exists()


def test_invalid_config_json_names_the_field(capsys, tmp_path):
    config = tmp_path / "candidate.json"
    config.write_text(json.dumps({"block": "rlfb", "channels": 48, "kernel_size": 4}))
    code, err = run_main(capsys, "profile", str(config))
    assert_one_clear_line(code, err, "candidate.json", "ArchConfig.kernel_size must be one of [1, 3, 5, 7], got 4")
    config.write_text('{"block": "rlfb", "channels": ')
    code, err = run_main(capsys, "profile", str(config))
    assert_one_clear_line(code, err, "candidate.json", "not valid JSON")
    config.write_text(json.dumps({"block": "rlfb", "chanels": 48}))
    code, err = run_main(capsys, "profile", str(config))
    assert_one_clear_line(code, err, "unknown ArchConfig field(s) ['chanels']")


def test_unknown_reference_name(capsys):
    code, err = run_main(capsys, "profile", "imdn", "rfdnn")
    assert_one_clear_line(code, err, "unknown model 'rfdnn'", "imdn, rfdn, rlfn")


@pytest.mark.parametrize("url, fragment", [
    ("postgresql+psycopg2://nas:secret@127.0.0.1:9/nas", "Connection refused"),  # port 9 (discard): nobody listens
    ("nosuchdb://host/db", "Can't load plugin"),
    ("not a url", "Could not parse"),
])
def test_unreachable_or_invalid_storage_url(capsys, results, tiny_div2k, url, fragment):
    code, err = run_main(capsys, *search_args(results, tiny_div2k, "--storage", url))
    assert_one_clear_line(code, err, "cannot open storage", fragment)
    assert "secret" not in err  # the password is not printed
    code, err = run_main(capsys, "report", "--study", "any", "--storage", url)
    assert_one_clear_line(code, err, "cannot open storage")


def test_existing_study_with_another_track(capsys, results, tiny_div2k):
    settings = SearchSettings(track="runtime", budget="smoke", results=str(results), data=str(tiny_div2k),
                              study_name="shared")
    open_study(settings)
    before = snapshot(results)
    study = optuna.load_study(study_name="shared", storage=settings.storage_url)
    trials_before = [(t.number, t.state, t.user_attrs) for t in study.trials]
    code, err = run_main(capsys, *search_args(results, tiny_div2k, "--study-name", "shared", "--track", "complexity"))
    assert_one_clear_line(code, err, "study 'shared' exists with track='runtime' (asked: 'complexity')")
    study = optuna.load_study(study_name="shared", storage=settings.storage_url)
    assert [(t.number, t.state, t.user_attrs) for t in study.trials] == trials_before
    assert study.user_attrs["settings"]["track"] == "runtime"
    assert snapshot(results).keys() == before.keys()


def test_export_from_a_study_without_feasible_trials(capsys, results, tiny_div2k, tmp_path):
    open_study(SearchSettings(budget="smoke", results=str(results), data=str(tiny_div2k), study_name="empty"))
    out = tmp_path / "export"
    code, err = run_main(capsys, "export", "--study", "empty", "--results", str(results), "--out", str(out))
    assert_one_clear_line(code, err, "study 'empty' has no feasible sampled trial to export")
    assert not out.exists()


def test_export_of_an_unknown_study(capsys, results):
    code, err = run_main(capsys, "export", "--study", "nope", "--results", str(results))
    assert_one_clear_line(code, err, "no study 'nope'")
    assert not results.exists()


def test_output_folder_that_is_a_file(capsys, tmp_path, tiny_div2k):
    path = tmp_path / "results.txt"
    path.write_text("keep me")
    code, err = run_main(capsys, *search_args(path, tiny_div2k))
    assert_one_clear_line(code, err, "results.txt is a file")
    code, err = run_main(capsys, *search_args(path / "sub", tiny_div2k))
    assert_one_clear_line(code, err, "results.txt is a file")
    assert path.read_text() == "keep me"


def test_export_out_that_is_a_file(capsys, results, tiny_div2k, tmp_path):
    open_study(SearchSettings(budget="smoke", results=str(results), data=str(tiny_div2k), study_name="s"))
    out = tmp_path / "out.txt"
    out.write_text("keep me")
    code, err = run_main(capsys, "export", "--study", "s", "--results", str(results), "--out", str(out))
    assert_one_clear_line(code, err, "out.txt is a file")
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("argv, fragment", [
    (["--track", "speed"], "unknown track 'speed'"),
    (["--storage", "postgresql+psycopg2://nas@127.0.0.1:9/nas"], "cannot open storage"),
])
def test_the_command_line_exits_non_zero_without_traceback(run_cli, tmp_path, tiny_div2k, argv, fragment):
    results = tmp_path / "results"
    done = run_cli(*search_args(results, tiny_div2k, *argv), timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and fragment in done.stderr
    assert not results.exists()


@pytest.mark.parametrize("trials", ["1", "4"])
def test_trials_that_leave_no_room_for_a_candidate(capsys, results, tiny_div2k, trials):
    code, err = run_main(capsys, *search_args(results, tiny_div2k, "--trials", trials))
    assert_one_clear_line(code, err, f"--trials {trials} leaves no room for a candidate", "--trials 5 or more")
    assert not results.exists()


def test_a_storage_folder_that_cannot_be_created(capsys, results, tiny_div2k, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, err = run_main(capsys, *search_args(results, tiny_div2k, "--storage", f"sqlite:///{blocker}/sub/x.db"))
    assert_one_clear_line(code, err, f"cannot create the folder {blocker}/sub of storage")
    assert blocker.read_text() == "" and not results.exists()
