"""NTIRE 2023 ESR (ofsoundof/NTIRE2023_ESR): RFDN baseline at data range 255, DIV2K valid.

The facts file records no floor, ranking or GPU for 2023: 2022's floor (29.00 dB, which RFDN's 29.04 dB
meets) and rank rules are kept, and the GPU is shown as unknown.
"""

from editions.edition import Edition
from editions.rules import Constraint, Floor, RankSum, ValidationSet
from evaluators.counter import Counter

EDITION = Edition(
    year=2023,
    baseline="rfdn",
    references=("rfdn", "imdn", "rlfn", "span"),
    calibration_references=("imdn", "rfdn", "rlfn"),
    psnr_sources=(2023, 2022),  # the same DIV2K validation images
    validation=ValidationSet.DIV2K,
    floor=Floor(valid=29.00),
    counter=Counter.NTIRE2022,
    ranking=RankSum(),
    constraints={"runtime": (Constraint.PARAMS, Constraint.PSNR),
                 "complexity": (Constraint.PSNR, Constraint.LATENCY),
                 "overall": (Constraint.PSNR,)},
    gpu=None,
    notes="floor and ranking assumed from 2022 (not in the facts)",
)
