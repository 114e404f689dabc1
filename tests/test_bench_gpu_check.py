"""bench.gpu_check on a machine without CUDA: it runs what it can, says what it could not, and writes its record."""

from __future__ import annotations

import json

import pytest
import torch

from bench import common, gpu_check

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")


def test_without_cuda_every_cuda_step_is_marked_not_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    assert gpu_check.main(["--name", "gpu_check_test"]) == 0
    record = json.loads((tmp_path / "results" / "gpu_check_test.json").read_text())
    steps = record["steps"]
    assert list(steps) == [name for name, _, _ in gpu_check.STEPS]
    assert steps["versions"]["status"] == "passed" and steps["versions"]["torch"] == torch.__version__
    cuda_steps = [name for name, _, needs_cuda in gpu_check.STEPS if needs_cuda]
    assert len(cuda_steps) == 7 and all(steps[name] == {"status": gpu_check.NO_CUDA} for name in cuda_steps)
    assert record["verdict"].startswith("not verified: 7 of 8 steps not run (not run: no CUDA device)")
    assert record["machine"]["gpu"] is None


def test_a_broken_step_is_recorded_and_the_others_still_run(tmp_path):
    def broken(context):
        raise RuntimeError("no kernel image is available for execution on the device\nmore")

    steps = (("broken", broken, False), ("fine", lambda context: {"passed": True, "figure": 1}, False),
             ("later", lambda context: {"passed": False}, False))
    records = gpu_check.run_steps(work=tmp_path, budget_s=60, steps=steps)
    assert records["broken"]["status"] == ("error: RuntimeError: no kernel image is available for execution on "
                                           "the device")
    assert "Traceback" in records["broken"]["traceback"]
    assert records["fine"]["status"] == "passed" and records["fine"]["figure"] == 1
    assert records["later"]["status"] == "failed"
    assert gpu_check.verdict_of(records) == "failed: broken, later"


def test_no_step_starts_after_the_time_budget(tmp_path):
    steps = (("first", lambda context: {"passed": True}, False), ("second", lambda context: {"passed": True}, False))
    records = gpu_check.run_steps(work=tmp_path, budget_s=-1, steps=steps)
    assert records == {"first": {"status": "not run: time budget spent"},
                       "second": {"status": "not run: time budget spent"}}
