"""The default data: natural RGB photographs bundled inside scikit-image's wheel (nothing is downloaded).

Fixed split: validation = chelsea and coffee (two small photographs, so a validation pass of the IMDN
baseline costs a fraction of a second on CPU); training = the six others. stereo_motorcycle gives its
left view only: the right view is a near duplicate. LR images are made with the MATLAB-compatible
bicubic after cropping HR to a multiple of 4, as DIV2K's were.
"""

from __future__ import annotations

import functools

import numpy as np
import skimage.data

from data.dataset import DataError, ImagePair, SRDataset

TRAIN_NAMES = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle")
VALID_NAMES = ("chelsea", "coffee")
SOURCE = "embedded: scikit-image photographs"
VALID_SET = "the embedded photographs " + " and ".join(VALID_NAMES)
LR_ORIGIN = "MATLAB-compatible bicubic x1/4 of HR cropped to a multiple of 4"


@functools.cache
def load_embedded() -> SRDataset:
    """The embedded dataset (decoded once per process; its arrays are read-only)."""
    return SRDataset(
        source=SOURCE,
        valid_set=VALID_SET,
        train=tuple(ImagePair.from_hr(name, _read(name)) for name in TRAIN_NAMES),
        valid=tuple(ImagePair.from_hr(name, _read(name)) for name in VALID_NAMES),
        train_lr=LR_ORIGIN,
        valid_lr=LR_ORIGIN,
    )


def _read(name: str) -> np.ndarray:
    try:
        image = getattr(skimage.data, name)()
    except (OSError, ImportError, ValueError) as error:
        raise DataError(f"cannot read scikit-image's bundled photograph {name!r} ({error}); reinstall "
                        f"scikit-image from its wheel or pass --data DIR with a DIV2K folder") from None
    if name == "stereo_motorcycle":
        image = image[0]  # (left, right, disparity): the left view
    return image
