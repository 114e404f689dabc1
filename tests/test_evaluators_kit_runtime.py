"""The kits' runtime protocol (per image, no warm-up, mean) and the one device rule."""

import json

import pytest
import torch
from torch import nn

from evaluators.device import resolve_device
from evaluators.kit_runtime import measure_kit_runtime
from spaces import ArchConfig, build_model


def test_kit_runtime_times_each_image_at_its_own_size_and_means_them():
    seen = []

    class Recorder(nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return x

    images = [torch.rand(1, 3, 8, 12), torch.rand(1, 3, 16, 10)]
    report = measure_kit_runtime(Recorder(), images, device=torch.device("cpu"))
    assert seen == [(1, 3, 8, 12), (1, 3, 16, 10)]  # no warm-up call, batch 1, each image once
    assert len(report.per_image_ms) == 2 and report.mean_ms == pytest.approx(sum(report.per_image_ms) / 2)
    assert report.timer == "perf_counter" and "no warm-up" in report.protocol


def test_kit_runtime_needs_images():
    with pytest.raises(ValueError, match="at least one image"):
        measure_kit_runtime(nn.Identity(), [], device=torch.device("cpu"))


def test_one_device_rule():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_profile_prints_the_kit_runtime_beside_the_warm_median(capsys):
    from run_search import main
    assert main(["profile", "rlfn", "--repeats", "5", "--input", "3x16x16", "--kit-runtime"]) == 0
    out = capsys.readouterr().out
    assert "ratio to baseline" in out and "kit runtime (kit: per image" in out and "2 images" in out


def test_evaluate_prints_the_kit_runtime_on_the_images_it_scored(tmp_path, capsys):
    from run_search import main
    config = ArchConfig(block="rlfb", num_blocks=1, channels=8, mid_channels=8)
    (tmp_path / "tiny.json").write_text(config.to_json())
    torch.save(build_model(config).state_dict(), tmp_path / "tiny.pth")
    command = ["evaluate", str(tmp_path / "tiny.json"), "--weights", str(tmp_path / "tiny.pth"), "--input", "3x16x16",
               "--kit-runtime"]
    assert main([*command, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    kit = record["kit_runtime"]
    assert len(kit["per_image_ms"]) == record["memory_images"] == 2  # the two embedded validation photographs
    assert kit["mean_ms"] == pytest.approx(sum(kit["per_image_ms"]) / 2)
    assert main(command) == 0
    assert "kit runtime (kit: per image" in capsys.readouterr().out
