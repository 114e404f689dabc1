"""Measure one architecture: complexity (cheap), speed on the target device, then proxy training.

Complexity, latency and memory are measured on the inference form (re-parameterised convs fused).
Latency is measured interleaved with the edition's baseline, so the ratio survives a noisy machine;
FLOPs are counted with the edition's counter. A candidate too big for the device's memory at the latency
input is an outcome (`SpeedOutOfMemory`), not a failure: the objective records it as infeasible, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

import train_proxy
from editions import Edition
from evaluators.counter import Counter, count_complexity
from evaluators.cuda import is_out_of_memory, release_memory
from evaluators.device import resolve_device
from evaluators.latency import device_lock, measure_latency, measure_relative_latency
from evaluators.memory import measure_memory
from search.constraints import Limits
from spaces import Architecture, ArchConfig, build_model, get_reference, inference_form, measured_form


@dataclass(frozen=True)
class Measurement:
    """How speed is measured in a study: the same for every candidate and reference."""

    device: str
    latency_input: tuple[int, int, int] | None
    baseline_name: str  # the edition's baseline: latency ratios are to it
    counter: Counter  # the edition's FLOPs counter
    dtype: str = "fp32"
    complexity_input: tuple[int, int, int] = (3, 256, 256)

    @classmethod
    def of_edition(cls, edition: Edition, *, device: str, latency_input: tuple[int, int, int] | None,
                   dtype: str = "fp32") -> Measurement:
        """How `edition` measures: latency ratios to its baseline, FLOPs by its counter."""
        return cls(device=device, latency_input=latency_input, baseline_name=edition.baseline,
                   counter=edition.counter, dtype=dtype)

    def baseline(self) -> nn.Module:
        return inference_form(build_model(get_reference(self.baseline_name)))


def measure_complexity(config: Architecture, *, measurement: Measurement) -> dict[str, Any]:
    report = count_complexity(measured_form(config).model, counter=measurement.counter,
                              input_shape=measurement.complexity_input)
    return {"params": report.params, "flops_g": report.flops_g, "activations_m": report.activations_m,
            "convs": report.convs}


def edition_limits(edition: Edition, *, floor: float) -> Limits:
    """The constraints' limits: the edition's baseline's params and FLOPs (its counter), and `floor`."""
    model = inference_form(build_model(get_reference(edition.baseline)))
    report = count_complexity(model, counter=edition.counter)
    return Limits(params=report.params, flops_g=report.flops_g, floor=floor)


class SpeedOutOfMemory(RuntimeError):
    """The candidate ran out of memory while its latency or memory was measured (the reason is the message)."""


def measure_speed(config: ArchConfig, *, measurement: Measurement, baseline: nn.Module) -> dict[str, Any]:
    """Latency (median, and ratio to the baseline measured side by side) and peak memory at one input.

    SpeedOutOfMemory when the candidate does not fit the device's memory; the memory is released first.
    """
    try:
        return _measure_speed(config, measurement=measurement, baseline=baseline)
    except RuntimeError as error:
        if not is_out_of_memory(error):
            raise
        shape = "x".join(map(str, measurement.latency_input)) if measurement.latency_input else "the default input"
        reason = f"out of memory measuring latency and memory at {shape}: {str(error).splitlines()[0]}"
    release_memory(torch.device(measurement.device))  # here, the except block left: its traceback held tensors
    raise SpeedOutOfMemory(reason)


def _measure_speed(config: Architecture, *, measurement: Measurement, baseline: nn.Module) -> dict[str, Any]:
    model = measured_form(config, device=resolve_device(measurement.device)).model
    common = dict(device=measurement.device, input_shape=measurement.latency_input, dtype=measurement.dtype)
    with device_lock(measurement.device):
        if config == get_reference(measurement.baseline_name):
            # The baseline against itself is 1 by definition; its own time is still measured.
            latency = measure_latency(model, **common)
            ratio, baseline_ms = 1.0, latency.median_ms
        else:
            relative = measure_relative_latency(model, baseline, **common)
            latency, ratio, baseline_ms = relative.candidate, relative.ratio, relative.reference.median_ms
        memory = measure_memory(model, **common)
    return {"latency_ms": latency.median_ms, "latency_iqr_ms": latency.iqr_ms, "latency_ratio": ratio,
            "baseline_latency_ms": baseline_ms, "memory_mb": memory.peak_mb, "memory_method": memory.method,
            "memory_input_shape": list(memory.input_shape),
            "latency_settings": {k: v for k, v in latency.to_dict().items() if k != "samples_ms"}}


def train(config: ArchConfig, *, data: Any, budget: train_proxy.Budget, seed: int, device: str,
          checkpoint_callback: Callable[[int, float], bool | None] | None = None) -> train_proxy.ProxyResult:
    """Proxy-train `config`; the shared device lock keeps other workers' latency measurements off the device."""
    with device_lock(device, shared=True):
        return train_proxy.train(config, data=data, budget=budget, seed=seed, device=torch.device(device),
                                 checkpoint_callback=checkpoint_callback)


def training_record(result: train_proxy.ProxyResult) -> dict[str, Any]:
    """The parts of a proxy-training result a study stores (the weights go to an artifact)."""
    return {"psnr": result.psnr, "psnr_curve": [list(point) for point in result.checkpoints],
            "train_status": result.status, "train_reason": result.reason, "iterations": result.iterations,
            "train_seconds": result.train_seconds, "train_wall_seconds": result.wall_seconds,
            "images_per_s": result.images_per_s}
