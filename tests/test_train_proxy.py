"""Proxy training: it learns, it is deterministic, failures are results, the callback stops it, the CLI writes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import train_proxy
from data import load_embedded, to_tensor
from data.patches import LOADER_WORKERS_ENV, LoaderSharedMemoryError
from evaluators.quality import mean_psnr
from spaces import ArchConfig, build_model, inference_form
from train_proxy import BUDGETS, bicubic_baseline_psnr, get_budget, train, validation_psnr

ROOT = Path(__file__).resolve().parents[1]
TINY = ArchConfig(block="rlfb", num_blocks=1, channels=8)


@pytest.fixture(scope="module")
def data():
    return load_embedded()


def test_smoke_training_improves_on_its_start(data) -> None:
    result = train(TINY, data=data, budget="smoke", seed=0, device="cpu")
    assert result.status == "ok" and result.reason is None and result.iterations == BUDGETS["smoke"].iterations
    steps = [step for step, _ in result.checkpoints]
    assert steps == [0, *BUDGETS["smoke"].checkpoint_steps()]
    assert result.psnr == result.checkpoints[-1][1] > result.checkpoints[0][1] + 1.0
    assert result.images_per_s > 0 and result.wall_seconds >= result.train_seconds > 0
    assert result.device.startswith("cpu") and result.precision == "fp32"
    assert all(t.device.type == "cpu" for t in result.state_dict.values())


def test_same_seed_gives_identical_psnr_and_weights(data) -> None:
    budget = get_budget("smoke", iterations=6)
    first, second, other = (train(TINY, data=data, budget=budget, seed=s, device="cpu") for s in (3, 3, 4))
    assert first.checkpoints == second.checkpoints
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)
    assert first.checkpoints != other.checkpoints


def test_rep_conv_trains_multi_branch_and_fuses_to_the_same_psnr(data) -> None:
    config = TINY.replace(rep_conv=True)
    result = train(config, data=data, budget=get_budget("smoke", iterations=4), seed=0, device="cpu")
    assert result.status == "ok"
    model = build_model(config)
    model.load_state_dict(result.state_dict)
    assert any("expand" in key for key in result.state_dict)  # the multi-branch form was trained
    fused = validation_psnr(inference_form(model), data.valid, device="cpu")
    assert fused == pytest.approx(result.psnr, abs=0.01)


def test_diverging_loss_is_a_failed_result(data) -> None:
    result = train(TINY, data=data, budget=get_budget("smoke", lr=1e30), seed=0, device="cpu")
    assert result.status == "failed" and result.psnr is None and result.state_dict is None
    assert "not finite" in result.reason or "loss became" in result.reason


class _Broken(nn.Module):
    """A model with one weight whose output is NaN, or whose training forward raises `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.error = error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.error is not None:
            if self.training:
                raise self.error
            return F.interpolate(x, scale_factor=4) * self.weight
        return F.interpolate(x, scale_factor=4) * self.weight * math.nan


def test_nan_output_is_a_failed_result(data, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_proxy, "build_model", lambda config, device: _Broken())
    result = train(TINY, data=data, budget="smoke", seed=0, device="cpu")
    assert result.status == "failed" and result.iterations == 0
    assert "validation image chelsea is not finite" in result.reason


def test_out_of_memory_is_a_failed_result_other_errors_propagate(data, monkeypatch: pytest.MonkeyPatch) -> None:
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    monkeypatch.setattr(train_proxy, "build_model", lambda config, device: _Broken(oom))
    result = train(TINY, data=data, budget="smoke", seed=0, device="cpu")
    assert result.status == "failed" and result.reason.startswith("out of memory at step 1")
    monkeypatch.setattr(train_proxy, "build_model", lambda config, device: _Broken(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        train(TINY, data=data, budget="smoke", seed=0, device="cpu")


class _OutOfMemoryMidStep(nn.Module):
    """Allocates an activation in its training forward, then runs out of memory; `activation` sees it die."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.activation: weakref.ref | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.interpolate(x, scale_factor=4) * self.weight
        if self.training:
            self.activation = weakref.ref(out)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return out


def test_memory_is_released_only_once_the_failed_steps_activations_are_gone(data, monkeypatch) -> None:
    """empty_cache() inside the except block released nothing: the traceback still held the step's tensors."""
    model = _OutOfMemoryMidStep()
    monkeypatch.setattr(train_proxy, "build_model", lambda config, device: model)
    seen = []

    def release(device: torch.device) -> None:
        seen.append((model.activation is not None and model.activation() is None, device.type))

    monkeypatch.setattr(train_proxy, "release_memory", release)
    result = train(TINY, data=data, budget="smoke", seed=0, device="cpu")
    assert result.status == "failed" and result.reason.startswith("out of memory at step 1")
    assert seen == [(True, "cpu")]


def test_validation_on_the_device_equals_the_challenge_scoring_of_copied_outputs(data) -> None:
    """The device-side scoring (uint8 HR, integer error sums) gives the old host-side figure bit for bit."""
    model = build_model(TINY).eval()
    with torch.no_grad():
        copied = mean_psnr((model(pair.tensors()[0]).cpu(), to_tensor(pair.hr)) for pair in data.valid)
    assert validation_psnr(model, data.valid, device="cpu") == copied
    assert validation_psnr(model, data.valid, device="cpu", memory_format=torch.channels_last) == copied


def test_bf16_autocast_only_where_the_gpu_has_it_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    """A T4 or V100 emulates bf16 (is_bf16_supported() says yes) but cuDNN has no bf16 convs: fp16 there."""
    def t4(including_emulation: bool = True) -> bool:
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", t4)
    cuda = torch.device("cuda")
    assert train_proxy._autocast_dtype(cuda) == torch.float16
    assert train_proxy._describe_precision(torch.float16, device=cuda) == "fp16 autocast + GradScaler"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert train_proxy._autocast_dtype(cuda) == torch.bfloat16
    assert train_proxy._autocast_dtype(torch.device("cpu")) is None


def test_fp32_training_on_ampere_says_its_convs_run_in_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert train_proxy._describe_precision(None, device=torch.device("cuda")) == "fp32 (TF32 convolutions)"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    assert train_proxy._describe_precision(None, device=torch.device("cuda")) == "fp32"
    assert train_proxy._describe_precision(None, device=torch.device("cpu")) == "fp32"


def test_checkpoint_callback_sees_each_checkpoint_and_can_stop(data) -> None:
    seen = []
    result = train(TINY, data=data, budget="smoke", seed=0, device="cpu",
                   checkpoint_callback=lambda step, psnr: seen.append((step, psnr)))
    assert seen == list(result.checkpoints[1:])
    stopped = train(TINY, data=data, budget="smoke", seed=0, device="cpu", checkpoint_callback=lambda step, psnr: True)
    first_step = BUDGETS["smoke"].checkpoint_steps()[0]
    assert stopped.status == "stopped" and stopped.iterations == first_step
    assert stopped.checkpoints == result.checkpoints[:2] and stopped.psnr == result.checkpoints[1][1]
    assert stopped.state_dict is not None


def test_budgets_presets_overrides_and_validation() -> None:
    quick = BUDGETS["quick"]
    custom = get_budget("quick", iterations=7, lr=1e-3)
    assert custom.name == "quick-custom" and custom.iterations == 7 and custom.batch_size == quick.batch_size
    assert get_budget(quick) is quick and get_budget(custom, lr_patch=8).name == "quick-custom"
    assert quick.replace(iterations=10, checkpoints=4).checkpoint_steps() == (3, 5, 8, 10)
    assert quick.replace(iterations=2, checkpoints=5).checkpoint_steps() == (1, 2)
    assert quick.lr_factor(0) == 1.0 and quick.lr_factor(quick.iterations) == pytest.approx(0.0)
    full = BUDGETS["full"]
    assert [full.lr_factor(step) for step in (0, 199_999, 200_000, 999_999)] == [1.0, 1.0, 0.5, 0.0625]
    for bad in ({"iterations": 0}, {"batch_size": -1}, {"lr_patch": 1.5}, {"lr": 0.0}, {"lr": math.nan}):
        with pytest.raises(ValueError, match="must be a positive"):
            quick.replace(**bad)
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        get_budget("huge")


def test_bicubic_baseline_and_result_record(data) -> None:
    bicubic = bicubic_baseline_psnr(data)
    assert 20 < bicubic < 40 and bicubic == bicubic_baseline_psnr(data)
    result = train(TINY, data=data, budget=get_budget("smoke", iterations=2), seed=0, device="cpu")
    record = json.loads(json.dumps(result.to_dict()))
    assert "state_dict" not in record and record["budget"]["iterations"] == 2
    assert record["checkpoints"][0][0] == 0 and record["data"]["valid_names"] == ["chelsea", "coffee"]


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train_proxy.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_cli_writes_three_files_and_refuses_to_overwrite(tmp_path: Path) -> None:
    config_file = tmp_path / "tiny.json"
    config_file.write_text(TINY.to_json())
    out = tmp_path / "run"
    done = _run_cli("--arch", str(config_file), "--budget", "smoke", "--iterations", "4", "--device", "cpu",
                    "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "model.pth"]
    assert ArchConfig.from_json((out / "config.json").read_text()) == TINY
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["arch"] == "tiny" and metrics["budget"]["name"] == "smoke-custom"
    assert metrics["bicubic_psnr"] > metrics["psnr"] > 0
    build_model(TINY).load_state_dict(torch.load(out / "model.pth"))
    again = _run_cli("--arch", str(config_file), "--budget", "smoke", "--out", str(out))
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines() == [f"error: output folder {out} is not empty; pass --overwrite or "
                                                 f"choose another --out"]


@pytest.mark.parametrize("args, message", [
    (["--arch", "imdx"], "unknown model 'imdx'"),
    (["--arch", "{bad}.json"], "cannot read config"),
    (["--arch", "imdn", "--data", "/nonexistent/DIV2K"], "data folder /nonexistent/DIV2K does not exist"),
    (["--arch", "imdn", "--iterations", "0"], "iterations must be a positive integer"),
    (["--arch", "imdn", "--lr", "-1"], "lr must be a positive number"),
    (["--arch", "imdn", "--patch", "x"], "argument --patch: invalid int value"),
    (["--arch", "imdn", "--budget", "huge"], "argument --budget: invalid choice"),
    (["--arch", "imdn", "--seed", "-1"], "--seed must be 0 or more"),
    (["--arch", "imdn", "--valid-limit", "3"], "--train-limit and --valid-limit need --data"),
    (["--arch", "imdn", "--patch", "200"], "smaller than the 200-pixel LR patch allows"),
] + ([] if torch.cuda.is_available() else [(["--arch", "imdn", "--device", "cuda"], "CUDA is not available")]))
def test_cli_bad_input_is_one_error_line(args: list[str], message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        sys.exit(train_proxy.main([*args, "--out", str(tmp_path / "out")]))
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_cli_bad_json_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config_file = tmp_path / "broken.json"
    config_file.write_text("{not json")
    assert train_proxy.main(["--arch", str(config_file), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {config_file}: config is not valid JSON") and "\n" not in error


def test_cli_failed_training_writes_metrics_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config_file = tmp_path / "tiny.json"
    config_file.write_text(TINY.to_json())
    out = tmp_path / "run"
    assert train_proxy.main(["--arch", str(config_file), "--budget", "smoke", "--lr", "1e30", "--device", "cpu",
                             "--out", str(out)]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json"]
    assert json.loads((out / "metrics.json").read_text())["status"] == "failed"
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: training failed: ")


def test_cli_bad_loader_worker_count_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOADER_WORKERS_ENV, "-1")
    assert train_proxy.main(["--arch", "imdn", "--device", "cpu", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: NAS_SR_LOADER_WORKERS must be a count of 0 or more, got '-1'"]
    assert not (tmp_path / "out").exists()


def test_cli_full_shared_memory_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def bus_error(*args, **kwargs):
        raise LoaderSharedMemoryError("the data loader's 4 worker processes ran out of shared memory (/dev/shm)")

    monkeypatch.setattr(train_proxy, "train", bus_error)
    assert train_proxy.main(["--arch", "imdn", "--device", "cpu", "--out", str(tmp_path / "out")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["error: the data loader's 4 worker processes ran out of shared memory (/dev/shm)"]
