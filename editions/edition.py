"""`Edition`: one year of the NTIRE Efficient SR challenge as data (its baseline, references and rules)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from editions.rules import Constraint, Floor, Ranking, ValidationSet
from evaluators.counter import Counter
from spaces import Published, get_reference_record

# The tracks every edition runs (2024 on: the main track is "overall", sub-track 1 is "runtime").
TRACK_NAMES = ("runtime", "complexity", "overall")


@dataclasses.dataclass(frozen=True)
class Edition:
    """A challenge edition. Reference names are records of `spaces.zoo`; published figures come from them.

    references: the networks measured in every study of this edition, baseline first.
    calibration_references: those whose published validation PSNR calibrate the PSNR floor.
    psnr_sources: editions whose published validation PSNRs hold here (same validation set), own year first.
    constraints: per track, the must-keep rules (limits are the baseline's figures and the floor).
    """

    year: int
    baseline: str
    references: tuple[str, ...]
    calibration_references: tuple[str, ...]
    psnr_sources: tuple[int, ...]
    validation: ValidationSet
    floor: Floor
    counter: Counter
    ranking: Ranking
    constraints: Mapping[str, tuple[Constraint, ...]]
    gpu: str | None  # the GPU the challenge timed on; None where the facts do not say
    notes: str = ""

    def __post_init__(self) -> None:
        if self.references[:1] != (self.baseline,):
            raise ValueError(f"edition {self.year}: the references must start with the baseline {self.baseline!r}")
        for name in self.references:
            get_reference_record(name)
        missing = [n for n in self.calibration_references if n not in self.references]
        if missing:
            raise ValueError(f"edition {self.year}: calibration references {missing} are not among its references")
        unpublished = [n for n in self.calibration_references if self.published_psnr(n) is None]
        if unpublished:
            raise ValueError(f"edition {self.year}: no published validation PSNR for {unpublished}")
        if self.psnr_sources[:1] != (self.year,):
            raise ValueError(f"edition {self.year}: psnr_sources must start with the edition's own year")
        if set(self.constraints) != set(TRACK_NAMES):
            raise ValueError(f"edition {self.year}: constraints must name the tracks {TRACK_NAMES}")
        object.__setattr__(self, "constraints", MappingProxyType(dict(self.constraints)))

    @property
    def name(self) -> str:
        return f"NTIRE {self.year}"

    def published(self, name: str) -> Published | None:
        """What this edition published for the reference `name` (None: nothing)."""
        return get_reference_record(name).published_in(self.year)

    def published_psnr(self, name: str) -> float | None:
        """The reference's published PSNR on this edition's validation set (None when unknown)."""
        record = get_reference_record(name)
        for year in self.psnr_sources:
            figures = record.published_in(year)
            if figures is not None and figures.val_psnr is not None:
                return figures.val_psnr
        return None

    @property
    def baseline_figures(self) -> Published:
        figures = self.published(self.baseline)
        if figures is None:
            raise AssertionError(f"edition {self.year} publishes no figures for its baseline {self.baseline}")
        return figures
