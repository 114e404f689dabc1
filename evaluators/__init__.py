"""Measurements of a super-resolution network: complexity, latency, memory and image quality.

Every function takes a plain `nn.Module` (or images) and knows nothing of the search that calls it.
Every measured figure comes with how it was measured.
"""

from evaluators.complexity import ComplexityReport, count_params, profile_complexity
from evaluators.latency import (
    LatencyReport,
    RelativeLatency,
    device_lock,
    measure_latency,
    measure_relative_latency,
)
from evaluators.memory import MemoryReport, measure_memory, measure_memory_over
from evaluators.profile import format_profile_table, profile_models
from evaluators.quality import challenge_psnr, challenge_ssim, mean_psnr, to_uint8_image

__all__ = [
    "ComplexityReport", "count_params", "profile_complexity",
    "LatencyReport", "RelativeLatency", "device_lock", "measure_latency", "measure_relative_latency",
    "MemoryReport", "measure_memory", "measure_memory_over",
    "format_profile_table", "profile_models",
    "challenge_psnr", "challenge_ssim", "mean_psnr", "to_uint8_image",
]
