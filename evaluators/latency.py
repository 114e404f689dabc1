"""Inference latency of a model, alone or interleaved with a reference, and a per-device lock.

Absolute times belong to one machine; the search ranks and constrains candidates by the ratio of their
median latency to a reference (IMDN) timed in the same run, alternating rounds so that drift (clock
boost, thermal throttling, a noisy neighbour) hits both alike.

GPU timing follows the challenge: the input is already on the GPU, CUDA events bracket the model call
only, and the device is synchronised after each call. Unlike the challenge (whose winners hid warm-up
passes in their constructors), every model gets the same warm-up calls before timing. fp32 convolutions
run in TF32 on Ampere and later unless cuDNN is told otherwise; every report says whether they did.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import fcntl
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from evaluators.cuda import native_bf16, tf32_convs
from evaluators.device import place, resolve_device

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# A typical DIV2K validation LR x4 image (2040x1356 HR -> 510x339 LR), what the challenge times.
CUDA_INPUT_SHAPE = (3, 339, 510)
# The same aspect ratio at 1/7 of the side: IMDN takes about 46 ms on 2 cores, so searches stay short.
CPU_INPUT_SHAPE = (3, 48, 72)
# (warm-up calls, timed calls) per model by device type.
DEFAULT_CALLS = {"cuda": (10, 50), "cpu": (3, 10)}


@dataclasses.dataclass(frozen=True)
class LatencyReport:
    """Per-call latency of one model in milliseconds, and how it was measured."""

    median_ms: float
    iqr_ms: float
    cv: float
    mean_ms: float
    samples_ms: tuple[float, ...]
    device_name: str
    dtype: str
    input_shape: tuple[int, ...]
    channels_last: bool
    repeats: int
    warmup: int
    threads: int
    cudnn_benchmark: bool | None  # None off CUDA, where it does not apply.
    tf32: bool | None  # whether fp32 convolutions ran in TF32 (Ampere and later); None off CUDA.
    timer: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RelativeLatency:
    """Median latency of a candidate over that of a reference, both timed in alternating rounds."""

    ratio: float
    candidate: LatencyReport
    reference: LatencyReport
    rounds: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The torch dtype named `dtype`; refused where it is emulated and its timing would mean nothing.

    fp16 on CPU has no fast kernels (IMDN ran 39x slower than fp32); bf16 on a GPU before Ampere (T4,
    V100) has no cuDNN convolutions.
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    if dtype == "fp16" and device.type == "cpu":
        raise ValueError("fp16 on CPU is emulated and says nothing about deployment speed; use fp32 or bf16")
    if dtype == "bf16" and device.type == "cuda" and not native_bf16(device):
        raise ValueError(f"bf16 is emulated on {torch.cuda.get_device_name(device)} (native from Ampere on) and "
                         f"cuDNN has no bf16 convolutions there; use fp32 or fp16")
    return DTYPES[dtype]


def device_name(device: torch.device) -> str:
    """A human-readable name of the device: the GPU model, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return "cpu: " + line.split(":", 1)[1].strip()
    return "cpu: " + (platform.processor() or platform.machine())


def prepare_model(model: nn.Module, *, device: torch.device, dtype: torch.dtype, channels_last: bool) -> nn.Module:
    """`model` ready to run on `device` in `dtype`, in eval mode.

    In fp32 the caller's model itself is measured (callers put its training flags back: `modes_kept`), moved as
    the kits move it (`place`): no copy, which some model files refuse (tensors computed in their constructor),
    and no keyword `.to()`, which a file's own `.to()` may not take. A model with a `native_dtype` (a model file
    written for half precision) is never cast: it runs as its kit runs it. Another dtype or channels_last casts an
    eval-mode copy (torch's own `Module.to`), so the caller's model keeps its precision and layout.
    """
    if getattr(model, "native_dtype", None) is not None or (dtype == torch.float32 and not channels_last):
        return place(model, device).eval()
    try:
        copied = copy.deepcopy(model)
    except RuntimeError as error:
        raise ValueError(f"{type(model).__name__} cannot be copied to run it in {dtype} or channels_last "
                         f"({str(error).splitlines()[0]}); measure it in fp32") from None
    prepared = nn.Module.to(place(copied, device).eval(), dtype=dtype)
    return nn.Module.to(prepared, memory_format=torch.channels_last) if channels_last else prepared


@contextlib.contextmanager
def modes_kept(models: list[nn.Module]) -> Iterator[None]:
    """The models' training flags as they were once measuring (in eval mode, in place) is over."""
    flags = [(module, module.training) for model in models for module in model.modules()]
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def make_input(input_shape: tuple[int, ...], *, device: torch.device, dtype: torch.dtype,
               channels_last: bool) -> torch.Tensor:
    """A fixed random 1 x `input_shape` batch on `device`, drawn without touching the global RNG."""
    x = torch.rand(1, *input_shape, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def default_input_shape(device: torch.device) -> tuple[int, ...]:
    return CUDA_INPUT_SHAPE if device.type == "cuda" else CPU_INPUT_SHAPE


@contextlib.contextmanager
def _measurement(device: torch.device, threads: int | None) -> Iterator[None]:
    """Inference mode, the CUDA device current, and `threads` CPU threads, restored afterwards."""
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode(), (torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()):
            yield
    finally:
        if threads is not None:
            torch.set_num_threads(previous_threads)


def _time_calls(model: nn.Module, x: torch.Tensor, *, count: int, device: torch.device) -> list[float]:
    """Milliseconds of each of `count` calls; on CUDA between events on an idle device, synchronised after."""
    samples = []
    for _ in range(count):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            model(x)
            end.record()
            torch.cuda.synchronize(device)
            samples.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            model(x)
            samples.append((time.perf_counter() - begin) * 1e3)
    return samples


def _interleaved(models: list[nn.Module], *, device: str | torch.device, input_shape: tuple[int, ...] | None,
                 dtype: str, channels_last: bool, warmup: int | None, repeats: int | None, rounds: int,
                 threads: int | None) -> list[LatencyReport]:
    """Latency reports of `models`, timed in `rounds` rounds of A B ... calls, `repeats` calls per model in all."""
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    input_shape = tuple(input_shape or default_input_shape(device))
    default_warmup, default_repeats = DEFAULT_CALLS[device.type]
    warmup = default_warmup if warmup is None else warmup
    repeats = default_repeats if repeats is None else repeats
    if warmup < 0 or rounds < 1 or repeats < rounds:
        raise ValueError(f"need warmup >= 0 and repeats >= rounds >= 1, got warmup={warmup}, "
                         f"repeats={repeats}, rounds={rounds}")
    x = make_input(input_shape, device=device, dtype=torch_dtype, channels_last=channels_last)
    samples: list[list[float]] = [[] for _ in models]
    with modes_kept(models), _measurement(device, threads):
        prepared = [prepare_model(m, device=device, dtype=torch_dtype, channels_last=channels_last) for m in models]
        used_threads = torch.get_num_threads()
        for model in prepared:
            _time_calls(model, x, count=warmup, device=device)
        for calls in (repeats // rounds + (i < repeats % rounds) for i in range(rounds)):
            for model, times in zip(prepared, samples):
                times.extend(_time_calls(model, x, count=calls, device=device))
    settings = dict(
        device_name=device_name(device), dtype=dtype, input_shape=input_shape, channels_last=channels_last,
        repeats=repeats, warmup=warmup, threads=used_threads,
        cudnn_benchmark=bool(torch.backends.cudnn.benchmark) if device.type == "cuda" else None,
        tf32=tf32_convs(device, torch_dtype),
        timer="cuda_events" if device.type == "cuda" else "perf_counter",
    )
    return [_report(times, **settings) for times in samples]


def _report(samples: list[float], **settings: Any) -> LatencyReport:
    q1, median, q3 = np.percentile(samples, [25, 50, 75])
    mean = statistics.fmean(samples)
    spread = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return LatencyReport(median_ms=float(median), iqr_ms=float(q3 - q1), cv=spread / mean, mean_ms=mean,
                         samples_ms=tuple(samples), **settings)


def measure_latency(model: nn.Module, *, device: str | torch.device = "cpu", input_shape: tuple[int, ...] | None = None,
                    dtype: str = "fp32", channels_last: bool = False, warmup: int | None = None,
                    repeats: int | None = None, threads: int | None = None) -> LatencyReport:
    """Per-call latency of `model` on one 1 x `input_shape` input, after `warmup` untimed calls.

    Defaults by device: input 3x339x510 (a DIV2K validation LR image) with 10 warm-up and 50 timed calls
    on CUDA; 3x48x72 (same aspect ratio, small enough for quick searches) with 3 and 10 calls on CPU.
    `threads` fixes torch's CPU thread count during the measurement (None keeps the current count).
    It does not take `device_lock`: the caller holds that around measurement and training alike.
    """
    return _interleaved([model], device=device, input_shape=input_shape, dtype=dtype, channels_last=channels_last,
                        warmup=warmup, repeats=repeats, rounds=1, threads=threads)[0]


def measure_relative_latency(model: nn.Module, reference: nn.Module, *, rounds: int = 5,
                             device: str | torch.device = "cpu", input_shape: tuple[int, ...] | None = None,
                             dtype: str = "fp32", channels_last: bool = False, warmup: int | None = None,
                             repeats: int | None = None, threads: int | None = None) -> RelativeLatency:
    """median(model) / median(reference), the two timed alternately in `rounds` rounds on one input.

    `repeats` is the number of timed calls per model in all, split evenly over the rounds; the other
    arguments are those of `measure_latency`.
    """
    candidate, baseline = _interleaved([model, reference], device=device, input_shape=input_shape, dtype=dtype,
                                       channels_last=channels_last, warmup=warmup, repeats=repeats, rounds=rounds,
                                       threads=threads)
    return RelativeLatency(ratio=candidate.median_ms / baseline.median_ms, candidate=candidate, reference=baseline,
                           rounds=rounds)


def lock_path(device: str | torch.device) -> str:
    """The lock file of `device`: one per CPU, one per physical GPU (its UUID survives CUDA_VISIBLE_DEVICES)."""
    device = resolve_device(device)
    if device.type == "cuda":
        name = "cuda-" + re.sub(r"[^0-9A-Za-z-]", "", str(torch.cuda.get_device_properties(device).uuid))
    else:
        name = "cpu"
    return os.path.join(tempfile.gettempdir(), f"nas_sr_device_{name}.lock")


@contextlib.contextmanager
def device_lock(device: str | torch.device, *, shared: bool = False) -> Iterator[None]:
    """A readers-writer lock on `device` among processes on this machine (fcntl.flock), whoever runs them.

    Training holds it shared (workers may train side by side), timing holds it exclusive: no latency
    is measured while another worker trains on the device. It is not reentrant. The lock file is
    created readable and writable by everyone (whatever the umask), and one that another user created
    read-only is locked through a read-only handle (flock needs no write access), so that two users of
    one machine share the lock instead of failing with PermissionError.
    """
    descriptor = _open_lock_file(lock_path(device))
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _open_lock_file(path: str) -> int:
    """A descriptor of the lock file at `path`, created with mode 0666 when absent.

    An existing file is opened without O_CREAT: Linux's protected_regular refuses O_CREAT on another
    user's file in a sticky directory such as /tmp, even where its mode allows the open.
    """
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        try:
            return os.open(path, os.O_RDWR)
        except PermissionError:  # another user's file without write access for us: flock needs none
            return os.open(path, os.O_RDONLY)
    os.fchmod(descriptor, 0o666)  # the umask trimmed the mode given to open
    return descriptor
