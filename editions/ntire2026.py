"""NTIRE 2026 ESR (Amazingren/NTIRE2026_ESR): 2025's rules with the SPAN ch28 baseline and weights 0.8 / 0.1 / 0.1."""

import dataclasses

from editions import ntire2025
from editions.rules import WeightedScore

EDITION = dataclasses.replace(
    ntire2025.EDITION,
    year=2026,
    baseline="span",
    references=("span", "rlfn_prune"),
    calibration_references=("rlfn_prune", "span"),
    psnr_sources=(2026, 2024, 2025),
    ranking=WeightedScore((("latency_ratio", 0.8), ("flops_g", 0.1), ("params", 0.1))),
)
