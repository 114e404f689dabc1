"""Reading DIV2K-layout folders written by the tests: with and without LR folders, and the errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data import DataError, bicubic_downscale, crop_to_multiple, load_dataset, load_div2k, load_embedded, read_image


def _random_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def _write_div2k(root: Path, *, train_lr: str | None, valid_lr: str | None,
                 train: tuple[str, ...] = ("0001", "0002", "0003"), valid: tuple[str, ...] = ("0801", "0802"),
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """HR images (sizes a multiple of 4) and, for a given LR folder, their LR images; returns name -> (hr, lr)."""
    rng = np.random.default_rng(0)
    written = {}
    for names, hr_folder, lr_folder in ((train, "DIV2K_train_HR", train_lr), (valid, "DIV2K_valid_HR", valid_lr)):
        for name in names:
            hr = _random_image(rng, 48, 64)
            lr = _random_image(rng, 12, 16)  # any content: the reader must take the file, not recompute it
            _save(root / hr_folder / f"{name}.png", hr)
            if lr_folder is not None:
                _save(root / lr_folder / f"{name}x4.png", lr)
            written[name] = (hr, lr)
    return written


def test_reads_the_official_layout_with_lr_folders(tmp_path: Path) -> None:
    written = _write_div2k(tmp_path, train_lr="DIV2K_train_LR_bicubic/X4", valid_lr="DIV2K_valid_LR_bicubic/X4")
    data = load_div2k(tmp_path)
    assert [p.name for p in data.train] == ["0001", "0002", "0003"]
    assert [p.name for p in data.valid] == ["0801", "0802"]
    for pair in data.train + data.valid:
        np.testing.assert_array_equal(pair.hr, written[pair.name][0])
        np.testing.assert_array_equal(pair.lr, written[pair.name][1])
    assert data.train_lr == "DIV2K_train_LR_bicubic/X4" and data.valid_lr == "DIV2K_valid_LR_bicubic/X4"
    assert data.to_dict()["valid_names"] == ["0801", "0802"]


def test_makes_lr_by_bicubic_when_absent_and_reads_the_renamed_valid_lr(tmp_path: Path) -> None:
    written = _write_div2k(tmp_path, train_lr=None, valid_lr="DIV2K_valid_LR")
    data = load_div2k(tmp_path)
    for pair in data.train:
        np.testing.assert_array_equal(pair.lr, bicubic_downscale(written[pair.name][0]))
    for pair in data.valid:
        np.testing.assert_array_equal(pair.lr, written[pair.name][1])
    assert "bicubic" in data.train_lr and data.valid_lr == "DIV2K_valid_LR"


def test_limits_keep_the_first_images(tmp_path: Path) -> None:
    _write_div2k(tmp_path, train_lr=None, valid_lr=None)
    data = load_dataset(tmp_path, train_limit=2, valid_limit=1)
    assert [p.name for p in data.train] == ["0001", "0002"] and [p.name for p in data.valid] == ["0801"]


def test_grey_rgba_and_uncropped_hr(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, size=(50, 66), dtype=np.uint8)  # not a multiple of 4
    rgba = rng.integers(0, 256, size=(40, 40, 4), dtype=np.uint8)
    _save(tmp_path / "DIV2K_train_HR" / "0001.png", grey)
    _save(tmp_path / "DIV2K_valid_HR" / "0801.png", rgba)
    _save(tmp_path / "DIV2K_valid_LR" / "0801x4.png", rgba[::4, ::4])
    data = load_div2k(tmp_path)
    train, valid = data.train[0], data.valid[0]
    np.testing.assert_array_equal(train.hr, np.repeat(crop_to_multiple(grey, multiple=4)[..., None], 3, axis=2))
    assert train.hr.shape == (48, 64, 3) and train.lr.shape == (12, 16, 3)
    np.testing.assert_array_equal(valid.hr, rgba[..., :3])
    np.testing.assert_array_equal(valid.lr, rgba[::4, ::4, :3])


def test_accepts_matlab_sized_lr_of_an_uncropped_hr(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    _save(tmp_path / "DIV2K_train_HR" / "0001.png", _random_image(rng, 50, 66))
    _save(tmp_path / "DIV2K_valid_HR" / "0801.png", _random_image(rng, 50, 66))
    _save(tmp_path / "DIV2K_valid_LR" / "0801x4.png", _random_image(rng, 13, 17))  # ceil(50 / 4) x ceil(66 / 4)
    pair = load_div2k(tmp_path).valid[0]
    assert pair.hr.shape == (48, 64, 3) and pair.lr.shape == (12, 16, 3)


def test_missing_layout_names_the_expected_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_div2k(tmp_path / "nowhere")
    (tmp_path / "DIV2K_train_HR").mkdir()
    with pytest.raises(DataError, match=r"expected DIV2K_train_HR/ and DIV2K_valid_HR/.*missing: DIV2K_valid_HR/"):
        load_div2k(tmp_path)
    (tmp_path / "DIV2K_valid_HR").mkdir()
    with pytest.raises(DataError, match="DIV2K_train_HR holds no .png images"):
        load_div2k(tmp_path)


def test_size_mismatch_names_both_files_and_sizes(tmp_path: Path) -> None:
    _write_div2k(tmp_path, train_lr=None, valid_lr="DIV2K_valid_LR")
    _save(tmp_path / "DIV2K_valid_LR" / "0802x4.png", _random_image(np.random.default_rng(3), 10, 16))
    with pytest.raises(DataError) as info:
        load_div2k(tmp_path)
    message = str(info.value)
    assert "0802x4.png is 16x10" in message and "0802.png is 64x48" in message and "needs LR 16x12" in message


def test_missing_lr_file_is_named(tmp_path: Path) -> None:
    _write_div2k(tmp_path, train_lr="DIV2K_train_LR_bicubic/X4", valid_lr=None)
    (tmp_path / "DIV2K_train_LR_bicubic" / "X4" / "0002x4.png").unlink()
    with pytest.raises(DataError, match=r"LR image .*0002x4\.png is missing"):
        load_div2k(tmp_path)


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    _write_div2k(tmp_path, train_lr=None, valid_lr=None)
    broken = tmp_path / "DIV2K_valid_HR" / "0802.png"
    broken.write_bytes(broken.read_bytes()[:100])  # truncated
    (tmp_path / "DIV2K_train_HR" / "0003.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot decode image .*0003\.png"):
        load_div2k(tmp_path)
    with pytest.raises(DataError, match=r"cannot decode image .*0802\.png"):
        read_image(broken)


def test_sixteen_bit_grey_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(path)
    with pytest.raises(DataError, match="8-bit"):
        read_image(path)


def test_no_path_means_the_embedded_set() -> None:
    assert load_dataset(None) is load_embedded()
