"""--valid-limit: a search validates on the first N validation images of --data (100 DIV2K images are many)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import run_search
from search import runner
from search.settings import STUDY_DEFINING, SearchSettings


class _Loaded(Exception):
    pass


def test_the_search_loads_only_the_first_n_validation_images(tiny_div2k: Path, tmp_path: Path, monkeypatch):
    seen = []

    def load(path, **limits):
        seen.append((path, limits))
        raise _Loaded

    monkeypatch.setattr(runner, "load_dataset", load)
    settings = SearchSettings(data=str(tiny_div2k), valid_limit=1, results=str(tmp_path / "results"), device="cpu")
    with pytest.raises(_Loaded):
        runner.run_search(settings, say=lambda line: None)
    # the edition too: a folder holding both layouts is read in the edition's
    assert seen == [(str(tiny_div2k), {"valid_limit": 1, "edition": settings.rules})]
    assert "valid_limit" in STUDY_DEFINING  # the PSNRs of a study depend on it: a resumed study must keep it


def test_a_non_positive_valid_limit_is_one_error_line(tiny_div2k: Path, tmp_path: Path, capsys):
    results = tmp_path / "results"
    assert run_search.main(["--data", str(tiny_div2k), "--results", str(results), "--valid-limit", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --valid-limit must be positive, got 0"
    assert not results.exists()


def test_a_valid_limit_without_data_is_refused(tmp_path: Path, capsys):
    assert run_search.main(["--valid-limit", "3", "--results", str(tmp_path / "results")]) == 2
    assert capsys.readouterr().err.strip() == "error: --valid-limit needs --data (the embedded validation set is fixed)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where no GPU is present")
def test_bf16_latency_on_a_gpu_that_emulates_it_is_refused_before_a_study_exists(tmp_path: Path, capsys,
                                                                                  monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100-SXM2-16GB")
    results = tmp_path / "results"
    assert run_search.main(["--device", "cuda", "--dtype", "bf16", "--results", str(results)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: bf16 is emulated on Tesla V100-SXM2-16GB")
    assert not results.exists()



def test_profile_with_data_gives_the_challenges_memory_figure(tiny_div2k: Path, tmp_path: Path, capsys, monkeypatch):
    """The challenge reports the maximum memory over the validation set; --valid-limit keeps its first N images."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # the device lock
    assert run_search.main(["profile", "rlfn", "--device", "cpu", "--repeats", "5", "--json", "--data",
                            str(tiny_div2k), "--valid-limit", "1"]) == 0
    record, = json.loads(capsys.readouterr().out)
    assert record["memory_images"] == 1 and record["memory_images_mb"] > 0
    assert record["memory_method"] == "cpu_estimate_peak_live_tensors" and record["memory_input_shape"] == [3, 48, 72]
