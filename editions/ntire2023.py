"""NTIRE 2023 ESR (ofsoundof/NTIRE2023_ESR): RFDN baseline at data range 255, DIV2K valid.

The facts file records no floor, ranking or GPU for 2023: 2022's rules (floor 29.00 dB, which RFDN's
29.04 dB meets; rank rules; the 2022 counter) are kept, and the GPU is shown as unknown.
"""

import dataclasses

from editions import ntire2022

EDITION = dataclasses.replace(
    ntire2022.EDITION,
    year=2023,
    baseline="rfdn",
    references=("rfdn", "imdn", "rlfn", "span"),
    psnr_sources=(2023, 2022),  # the same DIV2K validation images
    gpu=None,
    notes="floor and ranking assumed from 2022 (not in the facts)",
)
