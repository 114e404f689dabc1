"""A candidate too big for the device while its speed is timed: an infeasible trial with its reason, not a failure."""

from __future__ import annotations

import math

import pytest
import torch
from optuna.trial import TrialState

from editions import get_edition
from search import candidate
from search.runner import finish
from search.trial_loop import optimize
from search.study import open_study
from spaces import ArchConfig

OOM = "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 15.75 GiB total capacity)"


def _out_of_memory(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError(OOM)


@pytest.fixture()
def private_tempdir(tmp_path, monkeypatch):
    """The device lock in a folder of this test's own: other jobs on the machine may hold the shared one."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    return tmp_path


def test_speed_out_of_memory_says_where_and_releases_memory(monkeypatch, private_tempdir):
    released = []
    monkeypatch.setattr(candidate, "measure_relative_latency", _out_of_memory)
    monkeypatch.setattr(candidate, "release_memory", lambda device: released.append(device.type))
    measurement = candidate.Measurement.of_edition(get_edition(2022), device="cpu", latency_input=(3, 8, 12))
    config = ArchConfig(block="rlfb", num_blocks=1, channels=8)
    with pytest.raises(candidate.SpeedOutOfMemory) as caught:
        candidate.measure_speed(config, measurement=measurement, baseline=measurement.baseline())
    assert str(caught.value) == f"out of memory measuring latency and memory at 3x8x12: {OOM}"
    assert released == ["cpu"]


def test_other_errors_while_timing_still_fail_the_trial(monkeypatch, private_tempdir):
    def broken(*args, **kwargs):
        raise RuntimeError("Given groups=1, weight of size [8, 3, 3, 3], expected input to have 3 channels")

    monkeypatch.setattr(candidate, "measure_relative_latency", broken)
    measurement = candidate.Measurement.of_edition(get_edition(2022), device="cpu", latency_input=(3, 8, 12))
    with pytest.raises(RuntimeError, match="expected input"):
        candidate.measure_speed(ArchConfig(block="rlfb", num_blocks=1, channels=8), measurement=measurement,
                                baseline=measurement.baseline())


def test_a_candidate_out_of_memory_while_timed_is_an_infeasible_trial(search_settings, study_with_references,
                                                                       monkeypatch, cli_env, one_thread):
    monkeypatch.setattr("tempfile.tempdir", cli_env["TMPDIR"])
    monkeypatch.setattr(candidate, "measure_relative_latency", _out_of_memory)
    trained = []
    monkeypatch.setattr(candidate, "train", lambda *args, **kwargs: trained.append(args))
    settings = search_settings(study_with_references, trials=6)
    study = open_study(settings)
    lines: list[str] = []
    optimize(settings, study, say=lines.append)  # two candidates; five failures in a row would stop it
    oom = [t for t in study.get_trials() if "out_of_memory" in t.user_attrs]
    assert len(oom) == 2 and not trained
    for trial in oom:
        assert trial.state == TrialState.COMPLETE and "fail_reason" not in trial.user_attrs
        assert trial.user_attrs["out_of_memory"].startswith("out of memory measuring latency and memory at 3x24x36")
        assert trial.user_attrs["trained"] is False and trial.user_attrs["cut_before_training"] == ["out of memory"]
        assert trial.constraints and all(value == math.inf for value in trial.constraints.values())
        assert trial.values[0] == math.inf  # runtime track: the latency ratio
    assert sum("(cut: out of memory)" in line for line in lines) == 2
    summary = finish(settings, say=lines.append)  # the reports and plots take the infinite figures
    assert summary.trials == 6 and summary.winner is None
