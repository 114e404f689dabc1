"""The NTIRE Efficient SR challenge's editions as data: one module `ntire<year>.py` per edition.

Each module defines `EDITION`; the registry finds them, so the next edition is one new file.
"""

from __future__ import annotations

import importlib
import pkgutil

from editions.edition import TRACK_NAMES, Edition
from editions.rules import Constraint, Floor, RankSum, ValidationSet, WeightedScore

DEFAULT_EDITION = 2022


def _discover() -> dict[int, Edition]:
    found = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("ntire") and module.name[5:].isdigit():
            edition = importlib.import_module(f"{__name__}.{module.name}").EDITION
            if edition.year != int(module.name[5:]):
                raise AssertionError(f"{module.name} defines edition {edition.year}")
            found[edition.year] = edition
    return dict(sorted(found.items()))


EDITIONS: dict[int, Edition] = _discover()


def get_edition(year: int | str) -> Edition:
    """The edition of `year` (2022, "2026", ...); a ValueError lists the known ones."""
    try:
        return EDITIONS[int(year)]
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"unknown edition {year!r}; known: {', '.join(map(str, EDITIONS))}") from None


__all__ = ["EDITIONS", "DEFAULT_EDITION", "TRACK_NAMES", "Edition", "Constraint", "Floor", "RankSum",
           "ValidationSet", "WeightedScore", "get_edition"]
