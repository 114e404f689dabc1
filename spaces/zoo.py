"""Named reference configs: the challenge's networks as points of the space.

Parameter counts (inference form) are exact: imdn 893,936, rfdn 433,448, rlfn 317,218,
imdn_paper 715,176, span 150,688.
"""

from __future__ import annotations

from spaces.config import ArchConfig

REFERENCES: dict[str, ArchConfig] = {
    # NTIRE 2022 ESR baseline: 8 IMDB blocks without attention, no fusion, global skip.
    "imdn": ArchConfig(block="imdb", num_blocks=8, channels=64, distill_rate=0.25, distill_steps=3),
    # AIM 2020 winner: 4 RFDB blocks, full ESA (12 channels), concat fusion.
    "rfdn": ArchConfig(block="rfdb", num_blocks=4, channels=50, distill_rate=0.5, distill_steps=3,
                       attention="esa", esa_channels=12, fusion="concat"),
    # NTIRE 2022 runtime winner (challenge version): 46/48 channels, slim ESA (16).
    "rlfn": ArchConfig(block="rlfb", num_blocks=4, channels=46, mid_channels=48,
                       attention="esa_slim", esa_channels=16),
    # The original paper's IMDN: 6 blocks with contrast-aware channel attention, concat fusion.
    "imdn_paper": ArchConfig(block="imdb", num_blocks=6, channels=64, distill_rate=0.25, distill_steps=3,
                             attention="cca", fusion="concat"),
    # NTIRE 2024 winner in its inference form; input_scale=255 reproduces its 0-255 data range.
    "span": ArchConfig(block="span", num_blocks=6, channels=28, mid_channels=28, attention="pfa",
                       activation="silu", fusion="span_taps", subtract_mean=True),
}

# The references that calibrate the PSNR floor, with their published DIV2K-valid PSNRs (full training).
PUBLISHED_PSNR: dict[str, float] = {"imdn": 29.13, "rfdn": 29.04, "rlfn": 29.00}


def get_reference(name: str) -> ArchConfig:
    """The named reference config; a ValueError lists the known names."""
    try:
        return REFERENCES[name]
    except KeyError:
        raise ValueError(f"unknown reference {name!r}; known: {', '.join(REFERENCES)}") from None
