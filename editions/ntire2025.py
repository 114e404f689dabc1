"""NTIRE 2025 ESR (Amazingren/NTIRE2025_ESR): 2024's rules with the EFDN baseline, judged on an RTX A6000.

The baseline is the NTIRE 2022 NKU-ESR network with its weights. DIV2K_LSDIR, floors, fvcore and the
0.7 / 0.15 / 0.15 weighted score are 2024's.
"""

import dataclasses

from editions import ntire2024

EDITION = dataclasses.replace(
    ntire2024.EDITION,
    year=2025,
    baseline="efdn",
    references=("efdn", "span", "rlfn_prune"),
    calibration_references=("efdn", "rlfn_prune", "span"),
    psnr_sources=(2025, 2024, 2026),  # the same DIV2K_LSDIR validation images from 2024 on
    gpu="NVIDIA RTX A6000",
)
