"""One entry point for the training data: a DIV2K folder when given, else the embedded photographs."""

from __future__ import annotations

from pathlib import Path

from data.dataset import SRDataset
from data.div2k import load_div2k
from data.embedded import load_embedded


def load_dataset(path: str | Path | None = None, *, train_limit: int | None = None,
                 valid_limit: int | None = None) -> SRDataset:
    """The DIV2K folder at `path` (limits keep its first N images per split), or the embedded set for None."""
    if path is None:
        return load_embedded()
    return load_div2k(path, train_limit=train_limit, valid_limit=valid_limit)
