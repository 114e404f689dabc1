"""NTIRE 2024 ESR (Amazingren/NTIRE2024_ESR): RLFN_Prune baseline, DIV2K_LSDIR, fvcore, weighted score, RTX 3090.

Sub-track 1 (runtime) keeps the baseline's params and FLOPs; the main track (overall) ranks by
0.7 exp(2 runtime/baseline) + 0.15 exp(2 FLOPs/baseline) + 0.15 exp(2 params/baseline).
"""

from editions.edition import Edition
from editions.rules import Constraint, Floor, ValidationSet, WeightedScore
from evaluators.counter import Counter

EDITION = Edition(
    year=2024,
    baseline="rlfn_prune",
    references=("rlfn_prune", "span"),
    calibration_references=("rlfn_prune", "span"),
    psnr_sources=(2024, 2025, 2026),  # the same DIV2K_LSDIR validation images from 2024 on
    validation=ValidationSet.DIV2K_LSDIR,
    floor=Floor(valid=26.90, test=26.99),
    counter=Counter.FVCORE,
    ranking=WeightedScore((("latency_ratio", 0.7), ("flops_g", 0.15), ("params", 0.15))),
    constraints={"runtime": (Constraint.PARAMS, Constraint.FLOPS, Constraint.PSNR),
                 "complexity": (Constraint.PSNR, Constraint.LATENCY),
                 "overall": (Constraint.PSNR,)},
    gpu="NVIDIA GeForce RTX 3090",
)
