"""NTIRE 2022 ESR (ofsoundof/NTIRE2022_ESR): IMDN baseline, DIV2K, the kit's counter, rank rules, Titan Xp."""

from editions.edition import Edition
from editions.rules import Constraint, Floor, RankSum, ValidationSet
from evaluators.counter import Counter

EDITION = Edition(
    year=2022,
    baseline="imdn",
    references=("imdn", "rfdn", "rlfn", "span"),
    calibration_references=("imdn", "rfdn", "rlfn"),  # SPAN's published PSNR is on 2024's validation set
    psnr_sources=(2022,),
    validation=ValidationSet.DIV2K,
    floor=Floor(valid=29.00),
    counter=Counter.NTIRE2022,
    ranking=RankSum(),
    constraints={"runtime": (Constraint.PARAMS, Constraint.PSNR),
                 "complexity": (Constraint.PSNR, Constraint.LATENCY),
                 "overall": (Constraint.PSNR,)},
    gpu="NVIDIA Titan Xp",
)
