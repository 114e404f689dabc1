"""A side-by-side summary of models: challenge complexity, latency relative to a reference, peak memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from evaluators.complexity import COMPLEXITY_INPUT_SHAPE
from evaluators.counter import Counter, count_complexity, input_dependence
from evaluators.latency import device_lock, measure_relative_latency
from evaluators.memory import measure_memory, measure_memory_over

ROUNDS = 5  # rounds of interleaved calls (model, reference) that latency is timed in: one call each at least


def profile_models(models: Sequence[tuple[str, nn.Module]], *, reference: nn.Module, counter: Counter,
                   device: str | torch.device = "cpu",
                   input_shape: tuple[int, ...] | None = None,
                   complexity_shape: tuple[int, ...] = COMPLEXITY_INPUT_SHAPE, dtype: str = "fp32",
                   channels_last: bool = False, repeats: int | None = None, warmup: int | None = None,
                   rounds: int = ROUNDS, threads: int | None = None,
                   memory_images: Sequence[torch.Tensor] | None = None) -> list[dict[str, Any]]:
    """One record per named model: params, FLOPs, activations, #conv, latency and its ratio to `reference`, memory.

    Complexity is counted at `complexity_shape` (the challenge's 3x256x256) whatever the latency input, on a fixed
    seeded input, and again on two more: `input_dependent` gives the figures' range when they differ (top-k routing,
    sampling left on in eval), else None. FLOPs are counted by `counter` (the edition's); latency is timed interleaved with `reference` (the edition's
    baseline) and memory is measured at the latency input (`measure_latency`'s per-device default when None),
    both under the exclusive device lock, as a search measures. With `memory_images` (e.g. the validation LR
    images) the record also holds the challenge's figure, the maximum over them (`memory_images_mb`). Each record
    carries its `settings`.
    """
    records = []
    for name, model in models:
        complexity = count_complexity(model, counter=counter, input_shape=complexity_shape)
        spread = input_dependence(model, counter=counter, first=complexity)
        with device_lock(device):
            latency = measure_relative_latency(model, reference, device=device, input_shape=input_shape,
                                               dtype=dtype, channels_last=channels_last, warmup=warmup,
                                               repeats=repeats, rounds=rounds, threads=threads)
            timed = latency.candidate
            memory = measure_memory(model, device=device, input_shape=timed.input_shape, dtype=dtype)
            over = None if memory_images is None else measure_memory_over(model, images=memory_images,
                                                                          device=device, dtype=dtype)
        records.append({
            "name": name,
            "params": complexity.params,
            "flops_g": complexity.flops_g,
            "activations_m": complexity.activations_m,
            "convs": complexity.convs,
            "input_dependent": spread,
            "latency_ms": timed.median_ms,
            "latency_ratio": latency.ratio,
            "memory_mb": memory.peak_mb,
            "memory_method": memory.method,
            "memory_input_shape": memory.input_shape,
            **({} if over is None else {"memory_images_mb": over.peak_mb, "memory_images": over.images}),
            "settings": {
                "device": timed.device_name,
                "dtype": dtype,
                "latency_input_shape": timed.input_shape,
                "complexity_input_shape": complexity.input_shape,
                "repeats": timed.repeats,
                "warmup": timed.warmup,
                "rounds": rounds,
                "threads": timed.threads,
                "channels_last": channels_last,
                "cudnn_benchmark": timed.cudnn_benchmark,
                "tf32": timed.tf32,
                "timer": timed.timer,
                "flops_counter": counter.value,
            },
        })
    return records


_COLUMNS = (  # (header, record key, format)
    ("name", "name", "{}"),
    ("params", "params", "{:,}"),
    ("FLOPs [G]", "flops_g", "{:.2f}"),
    ("acts [M]", "activations_m", "{:.2f}"),
    ("#conv", "convs", "{}"),
    ("latency median [ms]", "latency_ms", "{:.2f}"),
    ("ratio to baseline", "latency_ratio", "{:.3f}"),
    ("memory [MB]", "memory_mb", "{:.1f}"),
    ("memory max over images [MB]", "memory_images_mb", "{:.1f}"),
)


def format_profile_table(records: Sequence[dict[str, Any]]) -> str:
    """An aligned text table of `profile_models` records, then one line with their (shared) measurement settings."""
    if not records:
        raise ValueError("no records to format")
    columns = [column for column in _COLUMNS if all(column[1] in record for record in records)]
    rows = [[header for header, _, _ in columns]]
    rows += [[fmt.format(record[key]) for _, key, fmt in columns] for record in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    s = records[0]["settings"]
    memory_methods = sorted({record["memory_method"] for record in records})
    lines.append(
        f"settings: {s['device']}, {s['dtype']}, latency input 1x{'x'.join(map(str, s['latency_input_shape']))} "
        f"(median of {s['repeats']} calls after {s['warmup']} warm-up, {s['rounds']} interleaved rounds, "
        f"{s['timer']}), {s['threads']} threads, channels_last={s['channels_last']}, "
        f"cudnn.benchmark={s['cudnn_benchmark']}, tf32={s['tf32']}; complexity at "
        f"1x{'x'.join(map(str, s['complexity_input_shape']))} (FLOPs: {s['flops_counter']}); memory: "
        f"{', '.join(memory_methods)} at the latency input"
        + (f", and the maximum over {records[0]['memory_images']} images" if "memory_images" in records[0] else "")
    )
    lines += [f"{record['name']}: its counts depend on the input (seed 0's shown): FLOPs "
              f"{spread['flops_g'][0]:.2f}-{spread['flops_g'][1]:.2f} G, activations {spread['activations_m'][0]:.2f}-"
              f"{spread['activations_m'][1]:.2f} M, #conv {spread['convs'][0]}-{spread['convs'][1]} over "
              f"{spread['inputs']} inputs" for record in records if (spread := record.get("input_dependent"))]
    return "\n".join(lines)
