"""Reader for a challenge data folder (`--data DIR`) in either layout of the NTIRE ESR kits.

DIV2K (2022-2023 kits): `DIV2K_train_HR/0001.png` and `DIV2K_valid_HR/0801.png`; LR images from
`DIV2K_train_LR_bicubic/X4/0001x4.png` and `DIV2K_valid_LR_bicubic/X4/0801x4.png`, or from the challenge's
renamed `DIV2K_valid_LR/0801x4.png`.

DIV2K_LSDIR (2024 on, the kits' test_demo.py): `DIV2K_LSDIR_valid_HR/` (LSDIR `000001.png`-`000100.png` and
DIV2K `0801.png`-`0900.png`) with LR from `DIV2K_LSDIR_valid_LR/000001x4.png`; training images from
`DIV2K_train_HR/` and/or `LSDIR_train_HR/` (the LSDIR release's HR training images in one flat folder, e.g.
`0000001.png`; LR optional in `LSDIR_train_LR_bicubic/X4/0000001x4.png`). The kits' hidden
`DIV2K_LSDIR_test_HR/` and `DIV2K_LSDIR_test_LR/` may be there; they are not read.

A split without an LR folder gets its LR images made by the MATLAB-compatible bicubic. Images are decoded
to uint8 RGB (grey repeated over channels, alpha dropped).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from data.bicubic import crop_to_multiple
from data.dataset import SCALE, DataError, ImagePair, SRDataset, check_hr_size

logger = logging.getLogger(__name__)

GENERATED_LR = "made by MATLAB-compatible bicubic x1/4 (no LR folder)"
_HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


@dataclass(frozen=True)
class Split:
    """One folder of HR images and the folders its LR images may be in (the first present one is read)."""

    hr: str
    lr: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """A data folder's layout. `name` is the edition's validation layout (`editions.ValidationSet` value);
    training reads every present folder of `train` (at least one), validation reads `valid`."""

    name: str
    train: tuple[Split, ...]
    valid: Split

    @property
    def valid_set(self) -> str:
        """The validation set's name, as reports give it (e.g. DIV2K_LSDIR_valid)."""
        return f"{self.name}_valid"

    @property
    def training_folders(self) -> str:
        """The training folders, as error messages name them (at least one must be there)."""
        return " and/or ".join(f"{split.hr}/" for split in self.train)

    def describe(self) -> str:
        """The folders this layout expects, for error messages."""
        lr = ", ".join(f"{folder}/" for split in (*self.train, self.valid) for folder in split.lr)
        return f"{self.name} ({self.training_folders} with {self.valid.hr}/; LR optional: {lr})"


DIV2K_TRAIN = Split("DIV2K_train_HR", ("DIV2K_train_LR_bicubic/X4",))
LAYOUTS = {layout.name: layout for layout in (
    Layout("DIV2K", train=(DIV2K_TRAIN,),
           valid=Split("DIV2K_valid_HR", ("DIV2K_valid_LR_bicubic/X4", "DIV2K_valid_LR"))),
    Layout("DIV2K_LSDIR", train=(DIV2K_TRAIN, Split("LSDIR_train_HR", ("LSDIR_train_LR_bicubic/X4",))),
           valid=Split("DIV2K_LSDIR_valid_HR", ("DIV2K_LSDIR_valid_LR",))),
)}


def detect_layout(root: Path, *, prefer: str | None = None) -> Layout:
    """The layout of the folder `root`, known by its validation folder; `prefer` (a layout name) decides
    when the folder holds both. A DataError lists the accepted layouts when none fits."""
    found = [layout for layout in LAYOUTS.values() if (root / layout.valid.hr).is_dir()]
    if not found:
        raise DataError(f"{root} holds no validation folder of an accepted layout: "
                        f"{'; or '.join(layout.describe() for layout in LAYOUTS.values())}")
    layout = next((layout for layout in found if layout.name == prefer), found[0])
    if len(found) > 1:
        logger.info("%s holds the %s layouts; reading %s", root, " and ".join(f.name for f in found), layout.name)
    if not any((root / split.hr).is_dir() for split in layout.train):
        raise DataError(f"{root} has {layout.valid.hr}/ but no training folder: the {layout.name} layout needs "
                        f"{layout.training_folders}")
    return layout


def load_div2k(root: str | Path, *, train_limit: int | None = None, valid_limit: int | None = None,
               prefer: str | None = None) -> SRDataset:
    """Decode a data folder of either layout (`detect_layout`) into memory; `*_limit` keeps the first N images
    of a split (sorted by name within a folder, training folders in the layout's order)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; pass --data a DIV2K or DIV2K_LSDIR folder, "
                        f"or leave --data out to use the embedded photographs")
    layout = detect_layout(root, prefer=prefer)
    train = [(split, *_pair_paths(root, split)) for split in layout.train if (root / split.hr).is_dir()]
    train_lr = train[0][2] if len(train) == 1 else "; ".join(f"{split.hr}: {origin}" for split, _, origin in train)
    valid_paths, valid_lr = _pair_paths(root, layout.valid)
    return SRDataset(source=str(root), valid_set=layout.valid_set,
                     train=_decode([pair for _, pairs, _ in train for pair in pairs][:train_limit]),
                     valid=_decode(valid_paths[:valid_limit]), train_lr=train_lr, valid_lr=valid_lr)


def read_image(path: Path) -> np.ndarray:
    """Decode one image file to uint8 (H, W, 3) RGB."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot decode image {path} ({error}); replace the file") from None
    if image.mode in _HIGH_DEPTH_MODES:
        raise DataError(f"{path} is a {image.mode} (more than 8 bits per channel) image; convert it to 8-bit RGB")
    return np.asarray(image.convert("RGB"))


def _pair_paths(root: Path, split: Split) -> tuple[list[tuple[Path, Path | None]], str]:
    """(HR path, LR path or None: made by bicubic) of every image of `split`, and where its LR images come from."""
    hr_dir = root / split.hr
    hr_paths = sorted(hr_dir.glob("*.png"))
    if not hr_paths:
        raise DataError(f"{hr_dir} holds no .png images; put the HR images (e.g. 0001.png) there")
    lr_dir = next((root / name for name in split.lr if (root / name).is_dir()), None)
    if lr_dir is None:
        return [(path, None) for path in hr_paths], GENERATED_LR
    return [(path, lr_dir / f"{path.stem}x{SCALE}.png") for path in hr_paths], str(lr_dir.relative_to(root))


def _decode(pairs: list[tuple[Path, Path | None]]) -> tuple[ImagePair, ...]:
    """The images of `pairs`; their LR files must all be there (an LR folder is complete or absent)."""
    absent = [lr for _, lr in pairs if lr is not None and not lr.is_file()]
    if absent:
        raise DataError(f"LR image {absent[0]} is missing ({len(absent)} missing in all); complete {absent[0].parent} "
                        f"or remove that folder to make LR images by bicubic")
    # Decoding (and bicubic) release the GIL: threads decode several images at once.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return tuple(pool.map(lambda pair: _read_pair(*pair), pairs))


def _read_pair(hr_path: Path, lr_path: Path | None) -> ImagePair:
    hr = read_image(hr_path)
    if lr_path is None:
        return ImagePair.from_hr(hr_path.stem, hr, path=str(hr_path))
    check_hr_size(hr, where=str(hr_path))
    lr = read_image(lr_path)
    (height, width), (lr_height, lr_width) = hr.shape[:2], lr.shape[:2]
    # MATLAB gives ceil(H / 4) rows for an uncropped HR; its first H // 4 rows match the cropped HR's.
    if (lr_height, lr_width) not in ((height // SCALE, width // SCALE), (-(-height // SCALE), -(-width // SCALE))):
        raise DataError(f"LR image {lr_path} is {lr_width}x{lr_height} but HR image {hr_path} is {width}x{height} "
                        f"(WxH): x{SCALE} needs LR {width // SCALE}x{height // SCALE}; regenerate the LR image")
    return ImagePair(name=hr_path.stem, hr=crop_to_multiple(hr, multiple=SCALE),
                     lr=lr[: height // SCALE, : width // SCALE], path=str(hr_path))
