"""NTIRE 2025 ESR (Amazingren/NTIRE2025_ESR): EFDN baseline, DIV2K_LSDIR, fvcore, weighted score, RTX A6000.

The baseline is the NTIRE 2022 NKU-ESR network with its weights. Ranking and constraints as in 2024:
0.7 exp(2 runtime/baseline) + 0.15 exp(2 FLOPs/baseline) + 0.15 exp(2 params/baseline).
"""

from editions.edition import Edition
from editions.rules import Constraint, Floor, ValidationSet, WeightedScore
from evaluators.counter import Counter

EDITION = Edition(
    year=2025,
    baseline="efdn",
    references=("efdn", "span", "rlfn_prune"),
    calibration_references=("efdn", "rlfn_prune", "span"),
    psnr_sources=(2025, 2024, 2026),  # the same DIV2K_LSDIR validation images from 2024 on
    validation=ValidationSet.DIV2K_LSDIR,
    floor=Floor(valid=26.90, test=26.99),
    counter=Counter.FVCORE,
    ranking=WeightedScore((("latency_ratio", 0.7), ("flops_g", 0.15), ("params", 0.15))),
    constraints={"runtime": (Constraint.PARAMS, Constraint.FLOPS, Constraint.PSNR),
                 "complexity": (Constraint.PSNR, Constraint.LATENCY),
                 "overall": (Constraint.PSNR,)},
    gpu="NVIDIA RTX A6000",
)
