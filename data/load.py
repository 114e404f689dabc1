"""One entry point for the training data: a DIV2K or DIV2K_LSDIR folder when given, else the embedded photographs."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from data.dataset import SRDataset
from data.div2k import LAYOUTS, Layout, load_div2k
from data.embedded import load_embedded

if TYPE_CHECKING:
    from editions import Edition

logger = logging.getLogger(__name__)


def load_dataset(path: str | Path | None = None, *, train_limit: int | None = None,
                 valid_limit: int | None = None, edition: Edition | None = None) -> SRDataset:
    """The data folder at `path` in either layout (limits keep its first N images per split), or the embedded set
    for None. With `edition`, a folder holding both layouts is read in the edition's, and a folder of the other
    layout is read with a warning: its PSNR is not on the images the edition's floor and figures are on."""
    if path is None:
        return load_embedded()
    data = load_div2k(path, train_limit=train_limit, valid_limit=valid_limit,
                      prefer=None if edition is None else edition.validation.value)
    if edition is not None:
        expected = LAYOUTS[edition.validation.value]
        if data.valid_set != expected.valid_set:
            _warn_other_validation(str(path), data.valid_set, edition.name, expected)
    return data


@functools.cache  # once per process and folder: a search loads its data several times
def _warn_other_validation(path: str, valid_set: str, edition: str, expected: Layout) -> None:
    logger.warning("%s holds %s, but %s validates on %s: its PSNR floor and published figures are on other "
                   "images (give --data a folder with %s/ to match)", path, valid_set, edition, expected.valid_set,
                   expected.valid.hr)
