import fcntl
import os
import stat
import tempfile

import pytest
import torch
from torch import nn

from evaluators.device import place
from evaluators.latency import (
    CPU_INPUT_SHAPE,
    CUDA_INPUT_SHAPE,
    LatencyReport,
    device_lock,
    lock_path,
    measure_latency,
    measure_relative_latency,
)
from evaluators.memory import measure_memory

FAST = dict(input_shape=(3, 8, 8), warmup=1, repeats=4)
# Timing comparisons run single-threaded: on a loaded machine a 2-thread OpenMP region can stall for
# tens of milliseconds waiting for a descheduled thread, which would swamp a tiny model.
ONE_THREAD = dict(threads=1)


def tiny(channels: int = 8) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, 48, 3, padding=1),
                         nn.PixelShuffle(4))


def test_cpu_latency_is_positive_and_records_its_settings():
    report = measure_latency(tiny(), **FAST, **ONE_THREAD)
    assert report.median_ms > 0 and report.mean_ms > 0 and report.iqr_ms >= 0 and report.cv >= 0
    assert len(report.samples_ms) == report.repeats == 4 and all(s > 0 for s in report.samples_ms)
    assert min(report.samples_ms) <= report.median_ms <= max(report.samples_ms)
    assert report.input_shape == (3, 8, 8) and report.warmup == 1 and report.threads == 1
    assert report.dtype == "fp32" and report.channels_last is False
    assert report.timer == "perf_counter" and report.cudnn_benchmark is None and report.tf32 is None
    assert report.device_name.startswith("cpu")
    assert report.to_dict()["samples_ms"] == report.samples_ms


def test_cpu_defaults():
    report = measure_latency(nn.Conv2d(3, 3, 1))
    assert report.input_shape == CPU_INPUT_SHAPE == (3, 48, 72)
    assert (report.warmup, report.repeats) == (3, 10)
    assert report.threads == torch.get_num_threads()


def test_thread_count_is_restored():
    before = torch.get_num_threads()
    report = measure_latency(tiny(), threads=before + 1, **FAST)
    assert report.threads == before + 1
    assert torch.get_num_threads() == before


def test_the_callers_model_is_untouched():
    model = tiny().train()
    measure_latency(model, dtype="bf16", channels_last=True, **FAST)
    assert model.training
    assert all(p.dtype == torch.float32 and p.is_contiguous() for p in model.parameters())


class OwnTo(nn.Module):
    """A model file's pattern: a .to() of its own (device only) and a weight_norm weight deepcopy refuses."""

    def __init__(self):
        super().__init__()
        self.net = tiny()
        self.net[0] = nn.utils.weight_norm(self.net[0])
        self.moved_to = []

    def to(self, device):
        self.moved_to.append(device)
        return super().to(device)

    def forward(self, x):
        return self.net(x)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_an_fp32_model_is_timed_in_place_without_a_copy_or_a_keyword_to():
    model = OwnTo().train()
    report = measure_latency(model, **FAST, **ONE_THREAD)
    memory = measure_memory(model, device="cpu", input_shape=(3, 8, 8))
    assert report.median_ms > 0 and memory.peak_mb > 0
    assert model.moved_to == [] and model.training  # already on the device; its training flags put back
    assert place(model, torch.device("meta")) is model and model.moved_to == [torch.device("meta")]
    with pytest.raises(ValueError, match="cannot be copied to run it in torch.bfloat16.*measure it in fp32"):
        measure_latency(OwnTo(), dtype="bf16", **FAST)


def test_bf16_and_channels_last_run_on_cpu():
    report = measure_latency(tiny(), dtype="bf16", channels_last=True, **FAST)
    assert report.dtype == "bf16" and report.channels_last and report.median_ms > 0


def test_fp16_on_cpu_and_unknown_dtypes_are_refused():
    with pytest.raises(ValueError, match="fp16 on CPU"):
        measure_latency(tiny(), dtype="fp16", **FAST)
    with pytest.raises(ValueError, match="unknown dtype"):
        measure_latency(tiny(), dtype="fp64", **FAST)


def test_bad_call_counts_are_refused():
    with pytest.raises(ValueError, match="repeats"):
        measure_relative_latency(tiny(), tiny(), rounds=5, input_shape=(3, 8, 8), repeats=3)
    with pytest.raises(ValueError, match="warmup"):
        measure_latency(tiny(), input_shape=(3, 8, 8), warmup=-1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is missing")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        measure_latency(tiny(), device="cuda", **FAST)


def test_devices_resolve_as_everywhere_else():
    """The toolkit's one device rule: `auto` and a torch.device are accepted, other device types refused."""
    report = measure_latency(tiny(), device="auto", **FAST, **ONE_THREAD)
    assert report.timer == ("cuda_events" if torch.cuda.is_available() else "perf_counter")
    assert measure_latency(tiny(), device=torch.device("cpu"), **FAST).device_name.startswith("cpu")
    with pytest.raises(ValueError, match="only cpu and cuda devices are supported"):
        measure_latency(tiny(), device="meta", **FAST)


def test_a_model_against_itself_has_a_ratio_near_one():
    model = tiny(16)
    relative = measure_relative_latency(model, model, rounds=3, input_shape=(3, 16, 16), warmup=2, repeats=9,
                                        **ONE_THREAD)
    assert 0.5 < relative.ratio < 2
    assert relative.ratio == relative.candidate.median_ms / relative.reference.median_ms
    assert relative.rounds == 3
    assert len(relative.candidate.samples_ms) == len(relative.reference.samples_ms) == 9
    assert relative.candidate.input_shape == relative.reference.input_shape == (3, 16, 16)
    assert relative.to_dict()["candidate"]["repeats"] == 9


def test_a_heavier_model_is_slower():
    light = nn.Conv2d(3, 3, 1)
    heavy = nn.Sequential(*[nn.Conv2d(64 if i else 3, 64, 3, padding=1) for i in range(6)])
    relative = measure_relative_latency(heavy, light, rounds=2, input_shape=(3, 32, 32), warmup=1, repeats=4,
                                        **ONE_THREAD)
    assert relative.ratio > 2


@pytest.fixture()
def private_tempdir(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_device_lock_excludes_other_holders(private_tempdir):
    path = lock_path("cpu")
    assert path == os.path.join(str(private_tempdir), "nas_sr_device_cpu.lock")
    with device_lock("cpu"), open(path) as other:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(path) as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_shared_device_lock_admits_trainers_but_not_timers(private_tempdir):
    path = lock_path("cpu")
    with device_lock("cpu", shared=True), open(path) as other_trainer, open(path) as timer:
        fcntl.flock(other_trainer, fcntl.LOCK_SH | fcntl.LOCK_NB)  # another worker may train alongside
        with pytest.raises(BlockingIOError):
            fcntl.flock(timer, fcntl.LOCK_EX | fcntl.LOCK_NB)  # but nobody times while anyone trains


def test_device_lock_is_released_on_error(private_tempdir):
    with pytest.raises(RuntimeError), device_lock("cpu"):
        raise RuntimeError
    with open(lock_path("cpu")) as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_the_lock_file_is_shared_by_every_user_whatever_the_umask(private_tempdir):
    """A 0644 lock file made by one user gave every other user PermissionError on every trial."""
    previous = os.umask(0o077)
    try:
        with device_lock("cpu"):
            pass
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(lock_path("cpu")).st_mode) == 0o666


def test_another_users_read_only_lock_file_is_locked_read_only(private_tempdir, monkeypatch):
    """flock needs no write access: a lock file we may only read still excludes and is excluded."""
    path = lock_path("cpu")
    open(path, "w").close()
    os.chmod(path, 0o644)
    real_open, flags_used = os.open, []

    def as_another_user(file, flags, *args):  # root ignores modes: play the other user's refusal
        flags_used.append(flags)
        if file == path and flags & (os.O_WRONLY | os.O_RDWR) and not flags & os.O_EXCL:  # O_EXCL: EEXIST first
            raise PermissionError(13, "Permission denied", file)
        return real_open(file, flags, *args)

    monkeypatch.setattr(os, "open", as_another_user)
    with device_lock("cpu", shared=True), open(path) as timer:
        with pytest.raises(BlockingIOError):
            fcntl.flock(timer, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with device_lock("cpu"), open(path) as trainer:
        with pytest.raises(BlockingIOError):
            fcntl.flock(trainer, fcntl.LOCK_SH | fcntl.LOCK_NB)
    assert os.O_RDONLY in flags_used and not any(flags & os.O_CREAT and not flags & os.O_EXCL for flags in flags_used)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_latency_uses_events_and_records_cudnn_benchmark():
    report = measure_latency(tiny(), device="cuda", warmup=2, repeats=5)
    assert isinstance(report, LatencyReport)
    assert report.input_shape == CUDA_INPUT_SHAPE
    assert report.timer == "cuda_events" and report.cudnn_benchmark == torch.backends.cudnn.benchmark
    assert report.device_name == torch.cuda.get_device_name() and report.median_ms > 0
    assert report.tf32 == (torch.backends.cudnn.allow_tf32 and torch.cuda.get_device_capability() >= (8, 0))
    relative = measure_relative_latency(tiny(), tiny(), device="cuda", dtype="fp16", rounds=2, warmup=2, repeats=4)
    assert 0.5 < relative.ratio < 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_lock_is_named_by_the_physical_gpu(private_tempdir):
    assert os.path.basename(lock_path("cuda")).startswith("nas_sr_device_cuda-")
    with device_lock("cuda:0"):
        pass
