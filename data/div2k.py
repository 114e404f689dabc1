"""Reader for a DIV2K folder (`--data DIR`): HR images, and their x4 bicubic LR images when present.

Expected under DIR: `DIV2K_train_HR/0001.png` and `DIV2K_valid_HR/0801.png`. LR images are read from
`DIV2K_train_LR_bicubic/X4/0001x4.png` and `DIV2K_valid_LR_bicubic/X4/0801x4.png`, or from the challenge's
renamed `DIV2K_valid_LR/0801x4.png`; a split without an LR folder gets its LR images made by the
MATLAB-compatible bicubic. Images are decoded to uint8 RGB (grey repeated over channels, alpha dropped).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from data.bicubic import crop_to_multiple
from data.dataset import SCALE, DataError, ImagePair, SRDataset

TRAIN_HR = "DIV2K_train_HR"
VALID_HR = "DIV2K_valid_HR"
TRAIN_LR = ("DIV2K_train_LR_bicubic/X4",)
VALID_LR = ("DIV2K_valid_LR_bicubic/X4", "DIV2K_valid_LR")
GENERATED_LR = "made by MATLAB-compatible bicubic x1/4 (no LR folder)"
_HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def load_div2k(root: str | Path, *, train_limit: int | None = None, valid_limit: int | None = None) -> SRDataset:
    """Decode a DIV2K folder into memory; `*_limit` keeps the first N images of a split (sorted by name)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; pass --data a DIV2K folder, "
                        f"or leave --data out to use the embedded photographs")
    missing = [name for name in (TRAIN_HR, VALID_HR) if not (root / name).is_dir()]
    if missing:
        raise DataError(f"{root} is not a DIV2K folder: expected {TRAIN_HR}/ and {VALID_HR}/ in it "
                        f"(LR optional: {', '.join(f'{d}/' for d in TRAIN_LR + VALID_LR)}); missing: "
                        f"{', '.join(f'{d}/' for d in missing)}")
    train, train_lr = _read_split(root, TRAIN_HR, TRAIN_LR, limit=train_limit)
    valid, valid_lr = _read_split(root, VALID_HR, VALID_LR, limit=valid_limit)
    return SRDataset(source=str(root), train=train, valid=valid, train_lr=train_lr, valid_lr=valid_lr)


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


def _read_split(root: Path, hr_folder: str, lr_folders: tuple[str, ...],
                *, limit: int | None) -> tuple[tuple[ImagePair, ...], str]:
    hr_dir = root / hr_folder
    hr_paths = sorted(hr_dir.glob("*.png"))
    if not hr_paths:
        raise DataError(f"{hr_dir} holds no .png images; put the DIV2K HR images (e.g. 0001.png) there")
    hr_paths = hr_paths[:limit]
    lr_dir = next((root / name for name in lr_folders if (root / name).is_dir()), None)
    lr_paths: list[Path | None] = [None] * len(hr_paths)
    if lr_dir is not None:
        lr_paths = [lr_dir / f"{path.stem}x{SCALE}.png" for path in hr_paths]
        absent = [path for path in lr_paths if not path.is_file()]
        if absent:
            raise DataError(f"LR image {absent[0]} is missing ({len(absent)} missing in all); complete {lr_dir} "
                            f"or remove that folder to make LR images by bicubic")
    # Decoding (and bicubic) release the GIL: threads decode several images at once.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        pairs = tuple(pool.map(_read_pair, hr_paths, lr_paths))
    return pairs, GENERATED_LR if lr_dir is None else str(lr_dir.relative_to(root))


def _read_pair(hr_path: Path, lr_path: Path | None) -> ImagePair:
    hr = read_image(hr_path)
    if lr_path is None:
        return ImagePair.from_hr(hr_path.stem, hr)
    lr = read_image(lr_path)
    (height, width), (lr_height, lr_width) = hr.shape[:2], lr.shape[:2]
    # MATLAB gives ceil(H / 4) rows for an uncropped HR; its first H // 4 rows match the cropped HR's.
    if (lr_height, lr_width) not in ((height // SCALE, width // SCALE), (-(-height // SCALE), -(-width // SCALE))):
        raise DataError(f"LR image {lr_path} is {lr_width}x{lr_height} but HR image {hr_path} is {width}x{height} "
                        f"(WxH): x{SCALE} needs LR {width // SCALE}x{height // SCALE}; regenerate the LR image")
    return ImagePair(name=hr_path.stem, hr=crop_to_multiple(hr, multiple=SCALE),
                     lr=lr[: height // SCALE, : width // SCALE])
