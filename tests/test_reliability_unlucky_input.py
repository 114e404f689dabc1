"""Unlucky and hostile input, second round: one `error:` line naming the input and the fix, a non-zero exit, no
traceback, and nothing already written changed.

Tiny images, a reference that cannot be measured, a study shared read-only, an empty storage, a hand-edited
export, a malformed kit manifest, too few profile repeats and a study name that escapes --results. (Two workers
on one study are in test_reliability_workers and test_reliability_postgres.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from conftest import REPO, STUDY, assert_one_clear_line, run_main, snapshot, sqlite_url
from PIL import Image

import train_proxy
from spaces import ArchConfig, build_model

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
RLFN_TRIAL = "2"  # the session's study of references: imdn, rfdn, rlfn, span


def fast_search(results: Path, data: Path, *extra: str) -> list[str]:
    return ["--budget", "smoke", "--latency-input", "3x24x36", "--confirm-minutes", "0", "--no-export",
            "--results", str(results), "--data", str(data), *extra]


def data_with(tiny_div2k: Path, target: Path, *, image: str, size: int) -> Path:
    """A copy of the tiny data folder whose `image` (e.g. DIV2K_valid_HR/0801.png) is size x size pixels."""
    shutil.copytree(tiny_div2k, target)
    Image.fromarray(np.full((size, size, 3), 128, dtype=np.uint8)).save(target / image)
    return target


# 1. Tiny images ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("image, size, fragments", [
    ("DIV2K_valid_HR/0801.png", 1, ("0801.png is 1x1 pixels", "smallest that works is 12x12 for validation")),
    ("DIV2K_valid_HR/0801.png", 10, ("0801.png is 8x8 pixels (HR)", "4-pixel border", "smallest that works is 12x12")),
    ("DIV2K_train_HR/0002.png", 40, ("0002.png is 40x40 pixels (HR)", "16-pixel LR patch",
                                     "smallest that works is 64x64", "--patch")),
])
def test_a_tiny_image_is_refused_before_any_study(capsys, tiny_div2k, tmp_path, image, size, fragments):
    data = data_with(tiny_div2k, tmp_path / "DIV2K", image=image, size=size)
    before = snapshot(data)
    code, err = run_main(capsys, *fast_search(tmp_path / "results", data))
    assert_one_clear_line(code, err, str(data / image), *fragments)
    assert not (tmp_path / "results").exists() and snapshot(data) == before


@pytest.fixture()
def tiny_model(tmp_path: Path) -> tuple[Path, Path]:
    """(config JSON, weights) of a small trained-looking network."""
    config = ArchConfig(block="rlfb", num_blocks=1, channels=8)
    config_file, weights = tmp_path / "tiny.json", tmp_path / "tiny.pth"
    config_file.write_text(json.dumps(config.to_dict()))
    torch.save(build_model(config).state_dict(), weights)
    return config_file, weights


@pytest.mark.parametrize("size, fragment", [(1, "0801.png is 1x1 pixels"), (6, "0801.png is 4x4 pixels (HR)")])
def test_evaluate_names_a_tiny_validation_image(capsys, tiny_div2k, tmp_path, tiny_model, size, fragment):
    data = data_with(tiny_div2k, tmp_path / "DIV2K", image="DIV2K_valid_HR/0801.png", size=size)
    config, weights = tiny_model
    code, err = run_main(capsys, "evaluate", str(config), "--weights", str(weights), "--data", str(data),
                         "--input", "3x16x16")
    assert_one_clear_line(code, err, fragment, "smallest that works is 12x12", "remove or replace it")


def test_train_proxy_names_a_tiny_image(capsys, tiny_div2k, tmp_path, tiny_model):
    data = data_with(tiny_div2k, tmp_path / "DIV2K", image="DIV2K_train_HR/0001.png", size=2)
    out = tmp_path / "out"
    code = train_proxy.main(["--arch", str(tiny_model[0]), "--budget", "smoke", "--data", str(data), "--out", str(out)])
    assert_one_clear_line(code, capsys.readouterr().err, "0001.png is 2x2 pixels", "remove or replace it")
    assert not out.exists()


# 2. A reference that cannot be measured -----------------------------------------------------------------------
MODEL_FILE = '''
from torch import nn


class Net(nn.Module):
    """x4 by a conv and a pixel shuffle; {what}."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 48, 3, padding=1)
        self.up = nn.PixelShuffle(4)

    def forward(self, x):
        {check}
        return self.up(self.conv(x)){tail}
'''


def model_file(folder: Path, name: str, *, what: str, check: str = "pass", tail: str = "") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(MODEL_FILE.format(what=what, check=check, tail=tail))
    return f"{folder / name}.py:Net"


def test_a_reference_whose_output_is_nan_is_refused_before_any_study(capsys, tiny_div2k, tmp_path):
    spec = model_file(tmp_path / "models", "nan_out", what="its output is NaN", tail=' * float("nan")')
    code, err = run_main(capsys, *fast_search(tmp_path / "results", tiny_div2k, "--reference", spec))
    assert_one_clear_line(code, err, "--reference nan_out:Net cannot be measured", "is not finite",
                          "fix that model or leave it out")
    assert not (tmp_path / "results").exists()


def test_a_reference_that_fails_after_the_trials_still_leaves_the_reports(capsys, tiny_div2k, study_with_references,
                                                                         tmp_path, one_thread):
    """It trains (16x16 patches and images), but its latency input (24x36) makes it raise: the study's trials are
    reported all the same, then the one line."""
    spec = model_file(tmp_path / "models", "odd", what="it refuses a width of 36",
                      check='if x.shape[-1] == 36:\n            raise RuntimeError("width 36 is not supported")')
    results = study_with_references
    before = {t.number: t.user_attrs for t in optuna.load_study(study_name=STUDY, storage=sqlite_url(results)).trials}
    code, err = run_main(capsys, *fast_search(results, tiny_div2k, "--study-name", STUDY, "--trials", "5",
                                              "--reference", spec))
    assert_one_clear_line(code, err, "--reference odd:Net cannot be measured", "width 36 is not supported")
    assert (results / STUDY / "report.html").is_file() and (results / STUDY / "trials.csv").is_file()
    trials = optuna.load_study(study_name=STUDY, storage=sqlite_url(results)).trials
    assert all(trials[number].user_attrs == attrs for number, attrs in before.items())
    assert "reference:odd:Net" not in optuna.load_study(study_name=STUDY, storage=sqlite_url(results)).user_attrs


# 3. A study shared read-only ----------------------------------------------------------------------------------
def read_only_prefix() -> list[str]:
    """A command prefix under which this user obeys file permissions: as root, without the capabilities that
    bypass them (what another user of a shared, read-only folder is)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux's setpriv: cannot make a folder read-only to this user")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def make_read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)


@pytest.fixture()
def read_only_run(study_with_references: Path, tmp_path: Path, cli_env: dict[str, str]):
    """run(*args): the command line on the session's study made read-only, as a user who may not write it."""
    results = study_with_references
    journal = results / "journal"
    journal.mkdir()
    optuna.copy_study(from_study_name=STUDY, from_storage=sqlite_url(results), to_study_name=STUDY,
                      to_storage=optuna.storages.JournalStorage(
                          optuna.storages.journal.JournalFileBackend(str(journal / "study.journal"))))
    make_read_only(results)
    prefix = read_only_prefix()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, sys.executable, str(REPO / "run_search.py"), *args], cwd=REPO, env=cli_env,
                              capture_output=True, text=True, timeout=300)

    yield results, run
    for path in [results, *results.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)  # so that pytest can clean up


def test_report_and_export_of_a_read_only_study_work_and_a_search_says_read_only(read_only_run, tiny_div2k, tmp_path):
    results, run = read_only_run
    before = snapshot(results)
    study = ["--study", STUDY, "--results", str(results)]

    done = run("report", *study)
    assert_one_clear_line(done.returncode, done.stderr, f"output folder {results / STUDY} is read-only here",
                          "give --out")
    done = run("report", *study, "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report" / "report.html").is_file()
    done = run("report", *study, "--storage", f"journal:{results / 'journal' / 'study.journal'}",
               "--out", str(tmp_path / "report-journal"))
    assert done.returncode == 0, done.stderr
    done = run("export", *study, "--trial", RLFN_TRIAL)
    assert_one_clear_line(done.returncode, done.stderr, "is read-only here", "give --out")
    done = run("export", *study, "--trial", RLFN_TRIAL, "--out", str(tmp_path / "export"))
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "export" / "models").glob("*.py"))) == 1

    done = run(*fast_search(results, tiny_div2k, "--study-name", STUDY, "--trials", "6"))
    assert_one_clear_line(done.returncode, done.stderr, f"storage {sqlite_url(results)} is read-only here",
                          "copy the study folder to a writable place")
    assert snapshot(results) == before


# 4. report never creates or changes a storage -----------------------------------------------------------------
def test_report_on_an_empty_storage_changes_nothing(capsys, tmp_path):
    folder = tmp_path / "results" / "s"
    folder.mkdir(parents=True)
    (folder / "study.db").write_bytes(b"")
    code, err = run_main(capsys, "report", "--study", "s", "--results", str(tmp_path / "results"))
    assert_one_clear_line(code, err, f"study storage {folder / 'study.db'} is empty (0 bytes)", "check --study")
    assert snapshot(tmp_path) == {"results/s/study.db": b""}
    for storage in (f"journal:{folder / 'study.journal'}", f"sqlite:///{folder / 'other.db'}"):
        code, err = run_main(capsys, "export", "--study", "s", "--storage", storage)
        assert_one_clear_line(code, err, "does not exist", "report and export read a study and create none")
    assert snapshot(tmp_path) == {"results/s/study.db": b""}


# 6. A hand-edited export --------------------------------------------------------------------------------------
def test_a_hand_edited_export_is_named_and_left_as_it_is(capsys, study_with_references, tmp_path):
    out = tmp_path / "export"
    args = ["export", "--study", STUDY, "--results", str(study_with_references), "--trial", RLFN_TRIAL,
            "--out", str(out)]
    assert run_main(capsys, *args)[0] == 0
    model_file, = (out / "models").glob("*.py")
    model_file.write_text(model_file.read_text().replace("def forward", "def broken_forward", 1))
    before = snapshot(out)
    code, err = run_main(capsys, *args)
    assert_one_clear_line(code, err, f"{model_file} differs from what this export writes",
                          f"remove {out} or give --out another folder")
    assert snapshot(out) == before


# 7. A malformed kit manifest ----------------------------------------------------------------------------------
HEADER = "edition,id,team,module,factory,args,weights,state_key,strip_prefix,data_range"
ROW = "2022,1,team,models.x,Net,{},,,,1.0"


@pytest.mark.parametrize("manifest, fragment", [
    ("name,path\nx,y\n", "lacks the column(s) edition, id, team"),
    (f"{HEADER}\n{ROW}\ngarbage\n", "line 3 has 1 values for 10 columns"),
    (f"{HEADER}\n{ROW},surplus\n", "line 2 has 11 values for 10 columns"),
    (f"{HEADER}\n2022,one,team,models.x,Net,{{}},,,,1.0\n", "line 2: invalid literal for int()"),
    (f"{HEADER}\n2022,1,,models.x,Net,{{}},,,,1.0\n", "line 2: team is empty"),
    (f"{HEADER}\n{ROW}\n{ROW}\n", "entry 2022:1 appears twice"),
])
def test_a_malformed_kit_manifest_is_refused_naming_the_row(capsys, tiny_div2k, tmp_path, manifest, fragment):
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "manifest.csv").write_text(manifest)
    code, err = run_main(capsys, *fast_search(tmp_path / "results", tiny_div2k, "--calibrate-with", str(kit)))
    assert_one_clear_line(code, err, str(kit / "manifest.csv"), fragment)
    assert not (tmp_path / "results").exists() and snapshot(kit) == {"manifest.csv": manifest.encode()}


# 9. Unclear refusals ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("repeats", ["2", "0"])
def test_profile_with_too_few_repeats_says_the_smallest_and_why(capsys, repeats):
    code, err = run_main(capsys, "profile", "rlfn", "--repeats", repeats)
    assert_one_clear_line(code, err, f"--repeats {repeats} is too few", "5 rounds alternating with the baseline",
                          "give --repeats 5 or more")


@pytest.mark.parametrize("name", ["../escape", "a/b", ".."])
def test_a_study_name_that_leaves_the_results_folder_is_refused(capsys, tiny_div2k, tmp_path, name):
    results = tmp_path / "in" / "results"
    code, err = run_main(capsys, *fast_search(results, tiny_div2k, "--study-name", name))
    assert_one_clear_line(code, err, f"study name {name!r} must be one plain folder name under --results")
    assert not (tmp_path / "in").exists()
