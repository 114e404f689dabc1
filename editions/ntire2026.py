"""NTIRE 2026 ESR (Amazingren/NTIRE2026_ESR): SPAN ch28 baseline, DIV2K_LSDIR, fvcore, 0.8/0.1/0.1, RTX A6000."""

from editions.edition import Edition
from editions.rules import Constraint, Floor, ValidationSet, WeightedScore
from evaluators.counter import Counter

EDITION = Edition(
    year=2026,
    baseline="span",
    references=("span", "rlfn_prune"),
    calibration_references=("rlfn_prune", "span"),
    psnr_sources=(2026, 2024, 2025),
    validation=ValidationSet.DIV2K_LSDIR,
    floor=Floor(valid=26.90, test=26.99),
    counter=Counter.FVCORE,
    ranking=WeightedScore((("latency_ratio", 0.8), ("flops_g", 0.1), ("params", 0.1))),
    constraints={"runtime": (Constraint.PARAMS, Constraint.FLOPS, Constraint.PSNR),
                 "complexity": (Constraint.PSNR, Constraint.LATENCY),
                 "overall": (Constraint.PSNR,)},
    gpu="NVIDIA RTX A6000",
)
