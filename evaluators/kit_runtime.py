"""Runtime as the challenge kits' `test_demo.py` measures it: per image at its own size, batch 1, fp32,
cudnn.benchmark off, no warm-up, mean over the images (the first image carries the cold start).

On CUDA, events bracket the model call with the image already on the GPU; on CPU, perf_counter. This is
the challenge's figure, kept beside the toolkit's warm median ratio (evaluators.latency), which the search
optimises: a mean with a cold start in it varies with the image count and order, a warm median does not.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from evaluators.device import place

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class KitRuntime:
    """Mean per-image runtime [ms] over the images, each image's time, and how it was measured."""

    mean_ms: float
    per_image_ms: tuple[float, ...]
    device_name: str
    timer: str
    protocol: str = "kit: per image, batch 1, fp32, cudnn.benchmark off, no warm-up, mean"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def measure_kit_runtime(model: nn.Module, images: Sequence[torch.Tensor], *, device: torch.device) -> KitRuntime:
    """Time `model` on each (1, 3, H, W) image in turn, as the kits do; the model is moved to `device` in eval mode."""
    if not images:
        raise ValueError("the kit runtime needs at least one image")
    model = place(model, device).eval()
    cuda = device.type == "cuda"
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    times = []
    try:
        with torch.no_grad():
            for image in images:
                x = image.to(device=device, dtype=torch.float32)
                times.append(_time_cuda(model, x) if cuda else _time_cpu(model, x))
    finally:
        torch.backends.cudnn.benchmark = previous
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    logger.debug("kit runtime on %s: %s ms", name, times)
    return KitRuntime(mean_ms=sum(times) / len(times), per_image_ms=tuple(times), device_name=name,
                      timer="cuda events" if cuda else "perf_counter")


def _time_cuda(model: nn.Module, x: torch.Tensor) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(x.device)
    start.record()
    model(x)
    end.record()
    torch.cuda.synchronize(x.device)
    return float(start.elapsed_time(end))


def _time_cpu(model: nn.Module, x: torch.Tensor) -> float:
    started = time.perf_counter()
    model(x)
    return (time.perf_counter() - started) * 1000.0
