"""The embedded default data: scikit-image's photographs, a fixed split, LR made by the MATLAB bicubic."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from data import bicubic_downscale, crop_to_multiple, load_embedded
from data.embedded import TRAIN_NAMES, VALID_NAMES


def test_fixed_split_without_overlap_or_the_right_motorcycle() -> None:
    data = load_embedded()
    assert tuple(p.name for p in data.valid) == VALID_NAMES == ("chelsea", "coffee")
    assert tuple(p.name for p in data.train) == TRAIN_NAMES
    assert not set(TRAIN_NAMES) & set(VALID_NAMES)
    motorcycle = next(p for p in data.train if p.name == "stereo_motorcycle")
    left, _right, _disparity = skimage.data.stereo_motorcycle()
    np.testing.assert_array_equal(motorcycle.hr, crop_to_multiple(left, multiple=4))


def test_pairs_are_aligned_uint8_rgb_and_read_only() -> None:
    for pair in load_embedded().train + load_embedded().valid:
        assert pair.hr.dtype == np.uint8 and pair.hr.ndim == 3 and pair.hr.shape[2] == 3
        assert pair.hr.shape == (pair.lr.shape[0] * 4, pair.lr.shape[1] * 4, 3)
        with pytest.raises(ValueError):
            pair.hr[0, 0, 0] = 0


def test_lr_is_the_matlab_bicubic_of_the_cropped_hr() -> None:
    chelsea = load_embedded().valid[0]
    original = skimage.data.chelsea()
    assert original.shape[:2] == (300, 451) and chelsea.hr.shape[:2] == (300, 448)
    np.testing.assert_array_equal(chelsea.lr, bicubic_downscale(chelsea.hr))


def test_loaded_once_and_validation_is_small() -> None:
    data = load_embedded()
    assert load_embedded() is data
    record = data.to_dict()
    # A validation pass must stay cheap on CPU: under 25k LR pixels (IMDN: a fraction of a second).
    assert record["valid_lr_pixels"] < 25_000
    assert record["train_images"] == 6 and record["valid_images"] == 2
