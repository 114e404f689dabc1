"""The CUDA decisions, on CPU: native bf16, TF32, out-of-memory errors (torch.cuda's answers faked)."""

import inspect
import re
from pathlib import Path

import pytest
import torch

from evaluators.cuda import is_out_of_memory, native_bf16, tf32_convs
from evaluators.latency import resolve_dtype

CUDA = torch.device("cuda", 0)


@pytest.fixture()
def turing(monkeypatch):
    """A T4: bf16 emulated only (is_bf16_supported() says yes unless emulation is excluded), capability 7.5."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")


@pytest.fixture()
def ampere(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100")


def test_emulated_bf16_is_not_native_and_bf16_latency_is_refused_there(turing):
    assert not native_bf16(CUDA)
    with pytest.raises(ValueError, match="bf16 is emulated on Tesla T4.*use fp32 or fp16"):
        resolve_dtype("bf16", CUDA)
    assert resolve_dtype("fp16", CUDA) == torch.float16 and resolve_dtype("fp32", CUDA) == torch.float32


def test_native_bf16_on_ampere_and_never_on_cpu(ampere):
    assert native_bf16(CUDA) and resolve_dtype("bf16", CUDA) == torch.bfloat16
    assert not native_bf16(torch.device("cpu"))
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16  # CPU bf16 latency stays allowed


def test_tf32_is_on_for_fp32_convs_from_ampere_on_unless_turned_off(ampere, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert tf32_convs(CUDA, torch.float32) is True
    assert tf32_convs(CUDA, torch.float16) is False
    assert tf32_convs(torch.device("cpu"), torch.float32) is None
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert tf32_convs(CUDA, torch.float32) is False


def test_no_tf32_before_ampere(turing, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert tf32_convs(CUDA, torch.float32) is False


@pytest.mark.parametrize("error, expected", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("CUDA error: out of memory"), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to "
                  "allocate 68719476736 bytes"), True),
    (RuntimeError("Given groups=1, weight of size [64, 3, 3, 3], expected input to have 3 channels"), False),
    (ValueError("out of memory"), False),
])
def test_out_of_memory_errors_are_told_from_others(error, expected):
    assert is_out_of_memory(error) is expected


def test_the_torch_floor_covers_what_the_cuda_path_calls():
    """On torch 2.1-2.4 every CUDA trial failed inside device_lock (no device UUID before 2.5)."""
    requirements = (Path(__file__).resolve().parents[1] / "requirements.txt").read_text()
    floor = re.search(r"^torch>=(\d+)\.(\d+)", requirements, re.MULTILINE)
    assert floor and (int(floor[1]), int(floor[2])) >= (2, 5)
    assert "including_emulation" in inspect.signature(torch.cuda.is_bf16_supported).parameters
    assert hasattr(torch.amp, "GradScaler")
