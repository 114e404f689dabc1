"""A user's own network (a model file of the NTIRE layout) measured beside the references of a search."""

from pathlib import Path

import pandas as pd
import pytest

import run_search
from search.runner import run_search as run
from search.verdict.calibration import Verdict

MODEL_FILE = '''
import torch
from torch import nn


class Mine(nn.Module):
    def __init__(self, nf=8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, nf, 3, padding=1), nn.ReLU(), nn.Conv2d(nf, 48, 3, padding=1))
        self.up = nn.PixelShuffle(4)

    def forward(self, x):
        return self.up(self.body(x))


class Half(Mine):
    def forward(self, x):
        return super().forward(x)[..., ::2, ::2]
'''


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "mine.py"
    path.write_text(MODEL_FILE)
    return path


def test_an_extra_reference_is_measured_ranked_and_drawn_beside_the_trials(tmp_path, model_file, search_settings,
                                                                            one_thread):
    settings = search_settings(tmp_path / "results", trials=5, extra_references=(f"{model_file}:Mine",))
    lines = []
    run(settings, say=lines.append)
    board = pd.read_csv(settings.run_dir / "leaderboard_runtime.csv")
    mine = board[board["name"] == "mine:Mine"]
    assert len(mine) == 1 and mine["params"].iloc[0] == 3 * 8 * 9 + 8 + 8 * 48 * 9 + 48
    assert mine["verdict"].iloc[0] in [v.value for v in Verdict] and mine["number"].iloc[0] == -1
    assert any(line.startswith("  extra reference mine:Mine: latency") for line in lines)
    assert "mine:Mine" in (settings.run_dir / "report.html").read_text()
    # A rerun measures nothing again.
    again = []
    run(settings, say=again.append)
    assert not any("extra reference" in line for line in again)


def test_a_bad_extra_reference_is_refused_before_a_study_exists(capsys, tmp_path, model_file, tiny_div2k):
    results = tmp_path / "results"
    code = run_search.main(["--budget", "smoke", "--data", str(tiny_div2k), "--results", str(results),
                            "--reference", f"{model_file}:Half"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: mine:Half: output") and "Traceback" not in err
    assert not results.exists()
