"""The reference zoo: the challenges' networks as points of the space, one record per network.

Parameter counts (inference form) are exact: imdn 893,936, rfdn 433,448, rlfn and rlfn_prune 317,218,
efdn 276,192, imdn_paper 715,176, span 150,688. Each record carries the data range its official weights run at and
the figures each challenge edition published for it (the editions, in `editions/`, pick theirs).
"""

from __future__ import annotations

import dataclasses

from spaces.config import ArchConfig


@dataclasses.dataclass(frozen=True)
class Published:
    """What one edition's organisers published for a network (None: not published)."""

    edition: int
    val_psnr: float | None = None  # on that edition's validation set [dB]
    test_psnr: float | None = None
    runtime_ms: float | None = None  # on that edition's GPU
    params_m: float | None = None
    flops_g: float | None = None  # with that edition's counter, at 1x3x256x256


@dataclasses.dataclass(frozen=True)
class Reference:
    """A named network: its config, the data range of its official weights, its published figures."""

    name: str
    config: ArchConfig
    description: str
    data_range: float = 1.0
    published: tuple[Published, ...] = ()

    def published_in(self, edition: int) -> Published | None:
        """The figures `edition` published for this network, None when it published none."""
        return next((figures for figures in self.published if figures.edition == edition), None)


_RLFN = ArchConfig(block="rlfb", num_blocks=4, channels=46, mid_channels=48, attention="esa_slim", esa_channels=16)

_RECORDS = (
    Reference("imdn", ArchConfig(block="imdb", num_blocks=8, channels=64, distill_rate=0.25, distill_steps=3),
              "NTIRE 2022 baseline: 8 IMDB blocks without attention, no fusion, global skip",
              published=(Published(2022, 29.13, 28.78, 50.86, 0.894, 58.53),)),
    Reference("rfdn", ArchConfig(block="rfdb", num_blocks=4, channels=50, distill_rate=0.5, distill_steps=3,
                                 attention="esa", esa_channels=12, fusion="concat"),
              "AIM 2020 winner, NTIRE 2023 baseline: 4 RFDB blocks, full ESA (12 channels), concat fusion",
              data_range=255.0,
              published=(Published(2022, 29.04, 28.75, 41.97, 0.433, 27.10), Published(2023, 29.04, None, None, 0.433, 27.10))),
    Reference("rlfn", _RLFN, "NTIRE 2022 runtime winner (challenge version): 46/48 channels, slim ESA (16)",
              data_range=255.0, published=(Published(2022, 29.00, 28.72, 27.11, 0.317, 19.70),)),
    Reference("rlfn_prune", _RLFN, "NTIRE 2024 baseline: RLFN with the 2024 kit's weights (data range 255)",
              data_range=255.0, published=(Published(2024, 26.96, 27.07, 13.54, 0.317, 19.67),)),
    Reference("efdn", ArchConfig(block="efdb", num_blocks=4, channels=48, mid_channels=48, attention="esa",
                                 esa_channels=12, activation="prelu", fusion="local"),
              "NTIRE 2022 NKU-ESR (EFDN), NTIRE 2025 baseline: 4 edge-oriented cells, PReLU, full ESA (12), "
              "local fusion",
              published=(Published(2022, 29.00, 28.66, 34.81, 0.276, 16.73),
                         Published(2025, 26.93, 27.01, 16.69, 0.276, 16.70))),
    Reference("imdn_paper", ArchConfig(block="imdb", num_blocks=6, channels=64, distill_rate=0.25, distill_steps=3,
                                       attention="cca", fusion="concat"),
              "the original paper's IMDN: 6 blocks with contrast-aware channel attention, concat fusion"),
    Reference("span", ArchConfig(block="span", num_blocks=6, channels=28, mid_channels=28, attention="pfa",
                                 activation="silu", fusion="span_taps", subtract_mean=True),
              "NTIRE 2024 winner (ch28), NTIRE 2026 baseline, in its inference form",
              published=(Published(2024, 26.94, 27.01, None, 0.151, 9.83), Published(2026, 26.94, 27.01, 7.74, 0.151, 9.83))),
)

REFERENCES: dict[str, Reference] = {record.name: record for record in _RECORDS}


def get_reference_record(name: str) -> Reference:
    """The named reference's record; a ValueError lists the known names."""
    try:
        return REFERENCES[name]
    except KeyError:
        raise ValueError(f"unknown reference {name!r}; known: {', '.join(REFERENCES)}") from None


def get_reference(name: str) -> ArchConfig:
    """The named reference's config; a ValueError lists the known names."""
    return get_reference_record(name).config
