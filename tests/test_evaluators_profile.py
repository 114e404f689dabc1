import fcntl
import tempfile

import pytest
import torch
from torch import nn

from evaluators import profile
from evaluators.complexity import count_params, profile_complexity
from evaluators.counter import Counter
from evaluators.latency import lock_path
from evaluators.memory import measure_memory
from evaluators.profile import format_profile_table, profile_models

KEYS = {"name", "params", "flops_g", "activations_m", "convs", "input_dependent", "latency_ms", "latency_ratio", "memory_mb",
        "memory_method", "memory_input_shape", "settings"}
SETTINGS = {"device", "dtype", "latency_input_shape", "complexity_input_shape", "repeats", "warmup", "rounds",
            "threads", "channels_last", "cudnn_benchmark", "tf32", "timer", "flops_counter"}


def net(channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.LeakyReLU(0.05),
                         nn.Conv2d(channels, 48, 3, padding=1), nn.PixelShuffle(4))


FAST = dict(counter=Counter.NTIRE2022, input_shape=(3, 8, 12), complexity_shape=(3, 16, 16), repeats=4, warmup=1, rounds=2, threads=1)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    reference = net(8)
    models = [("small", net(4)), ("reference", reference)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("locks")))  # the device lock
        return profile_models(models, reference=reference, **FAST)


@pytest.fixture()
def private_tempdir(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_profile_measures_under_the_exclusive_device_lock(private_tempdir, monkeypatch):
    """No latency is timed while a search worker trains on the device (it holds the lock shared)."""
    held = []
    real = profile.measure_relative_latency

    def timed(*args, **kwargs):
        with open(lock_path("cpu")) as trainer:
            try:
                fcntl.flock(trainer, fcntl.LOCK_SH | fcntl.LOCK_NB)
                held.append(False)
            except BlockingIOError:
                held.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(profile, "measure_relative_latency", timed)
    profile_models([("small", net(4))], reference=net(8), **FAST)
    assert held == [True]


def test_memory_over_images_is_the_largest_images_peak(private_tempdir):
    images = [torch.rand(1, 3, 8, 8), torch.rand(1, 3, 16, 24), torch.rand(1, 3, 12, 12)]
    record, = profile_models([("small", net(4))], reference=net(8), memory_images=images, **FAST)
    largest = measure_memory(net(4), device="cpu", input_shape=(3, 16, 24))
    assert record["memory_images_mb"] == largest.peak_mb > record["memory_mb"]
    assert record["memory_images"] == 3 and record["memory_input_shape"] == (3, 8, 12)
    header, *_, settings = format_profile_table([record]).splitlines()
    assert "memory max over images [MB]" in header and "maximum over 3 images" in settings


def test_one_record_per_model_with_the_agreed_keys(records):
    assert [r["name"] for r in records] == ["small", "reference"]
    for record in records:
        assert set(record) == KEYS and set(record["settings"]) == SETTINGS


def test_complexity_is_counted_at_the_complexity_shape(records):
    expected = profile_complexity(net(4), input_shape=(3, 16, 16))
    small = records[0]
    assert small["params"] == count_params(net(4))
    assert small["flops_g"] == expected.flops_g and small["activations_m"] == expected.activations_m
    assert small["convs"] == 2
    assert small["settings"]["complexity_input_shape"] == (3, 16, 16)


def test_latency_and_memory_use_the_latency_input(records):
    for record in records:
        settings = record["settings"]
        assert settings["latency_input_shape"] == (3, 8, 12)
        assert (settings["repeats"], settings["warmup"], settings["rounds"], settings["threads"]) == (4, 1, 2, 1)
        assert settings["device"].startswith("cpu") and settings["dtype"] == "fp32"
        assert record["latency_ms"] > 0 and record["memory_mb"] > 0
        assert record["memory_method"] == "cpu_estimate_peak_live_tensors"
    assert 0.5 < records[1]["latency_ratio"] < 2


def test_table_lists_every_model_and_ends_with_the_settings(records):
    table = format_profile_table(records).splitlines()
    header, rule, *rows, settings = table
    for column in ("params", "FLOPs [G]", "acts [M]", "#conv", "latency median [ms]", "ratio to baseline", "memory [MB]"):
        assert column in header
    assert len({len(line) for line in (header, rule, *rows)}) == 1
    assert [row.split()[0] for row in rows] == ["small", "reference"]
    assert rows[0].split()[1] == f"{records[0]['params']:,}"
    assert rows[1].split()[6] == f"{records[1]['latency_ratio']:.3f}"
    assert settings.startswith("settings: cpu") and "1x3x8x12" in settings and "1x3x16x16" in settings
    assert "cpu_estimate_peak_live_tensors" in settings and "tf32=None" in settings
    assert "memory max over images" not in header


def test_an_empty_table_is_refused():
    with pytest.raises(ValueError):
        format_profile_table([])
