"""Reading data folders written by the tests, in the DIV2K and the DIV2K_LSDIR layouts: with and without LR
folders, limits, the edition's layout, and the errors."""

from __future__ import annotations

from pathlib import Path

import logging

import numpy as np
import pytest
from PIL import Image

from data import DataError, bicubic_downscale, crop_to_multiple, load_dataset, load_div2k, load_embedded, read_image
from data.div2k import LAYOUTS
from editions import ValidationSet, get_edition


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
    with pytest.raises(DataError, match=r"no validation folder of an accepted layout: DIV2K \(DIV2K_train_HR/ with "
                                        r"DIV2K_valid_HR/.*; or DIV2K_LSDIR \(DIV2K_train_HR/ and/or LSDIR_train_HR/ "
                                        r"with DIV2K_LSDIR_valid_HR/"):
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


# The DIV2K_LSDIR layout of the 2024+ kits: LSDIR 000001... and DIV2K 0801... in one validation folder.
LSDIR_VALID = ("000001", "000002", "0801")


def _write_div2k_lsdir(root: Path, *, div2k_train: tuple[str, ...] = ("0001", "0002"),
                       lsdir_train: tuple[str, ...] = ("0000001", "0000002"), lr: bool = True,
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Training folders (DIV2K's and LSDIR's; an empty tuple leaves one out), the validation folder and, with
    `lr`, every LR folder; a hidden-test folder too, which must not be read. Returns name -> (hr, lr)."""
    rng = np.random.default_rng(4)
    written = {}
    for names, hr_folder, lr_folder in ((div2k_train, "DIV2K_train_HR", "DIV2K_train_LR_bicubic/X4"),
                                        (lsdir_train, "LSDIR_train_HR", "LSDIR_train_LR_bicubic/X4"),
                                        (LSDIR_VALID, "DIV2K_LSDIR_valid_HR", "DIV2K_LSDIR_valid_LR"),
                                        (("0901",), "DIV2K_LSDIR_test_HR", "DIV2K_LSDIR_test_LR")):
        for name in names:
            hr, low = _random_image(rng, 32, 40), _random_image(rng, 8, 10)
            _save(root / hr_folder / f"{name}.png", hr)
            if lr:
                _save(root / lr_folder / f"{name}x4.png", low)
            written[name] = (hr, low)
    return written


def test_every_edition_validation_layout_can_be_read() -> None:
    assert set(LAYOUTS) == {validation.value for validation in ValidationSet}


def test_reads_the_div2k_lsdir_layout_with_lr_folders(tmp_path: Path) -> None:
    written = _write_div2k_lsdir(tmp_path)
    data = load_dataset(tmp_path)
    assert [p.name for p in data.train] == ["0001", "0002", "0000001", "0000002"]
    assert [p.name for p in data.valid] == list(LSDIR_VALID)  # the hidden test's 0901 is not read
    for pair in data.train + data.valid:
        np.testing.assert_array_equal(pair.hr, written[pair.name][0])
        np.testing.assert_array_equal(pair.lr, written[pair.name][1])
    assert data.valid_set == "DIV2K_LSDIR_valid" and data.describe_valid() == "DIV2K_LSDIR_valid (3 images)"
    assert data.valid_lr == "DIV2K_LSDIR_valid_LR"
    assert data.train_lr == "DIV2K_train_HR: DIV2K_train_LR_bicubic/X4; LSDIR_train_HR: LSDIR_train_LR_bicubic/X4"


def test_lsdir_training_alone_with_lr_made_by_bicubic(tmp_path: Path) -> None:
    written = _write_div2k_lsdir(tmp_path, div2k_train=(), lr=False)
    data = load_dataset(tmp_path)
    assert [p.name for p in data.train] == ["0000001", "0000002"]
    for pair in data.train + data.valid:
        np.testing.assert_array_equal(pair.lr, bicubic_downscale(written[pair.name][0]))
    assert "bicubic" in data.train_lr and "bicubic" in data.valid_lr


def test_div2k_lsdir_limits_keep_the_first_images_across_training_folders(tmp_path: Path) -> None:
    _write_div2k_lsdir(tmp_path)
    (tmp_path / "DIV2K_LSDIR_valid_LR" / "0801x4.png").unlink()  # beyond the limit: never looked for
    data = load_dataset(tmp_path, train_limit=3, valid_limit=2)
    assert [p.name for p in data.train] == ["0001", "0002", "0000001"]
    assert [p.name for p in data.valid] == ["000001", "000002"]  # LSDIR's names sort before DIV2K's
    assert data.describe_valid() == "DIV2K_LSDIR_valid (2 images)"


def test_div2k_lsdir_needs_a_training_folder(tmp_path: Path) -> None:
    _save(tmp_path / "DIV2K_LSDIR_valid_HR" / "000001.png", _random_image(np.random.default_rng(5), 16, 16))
    with pytest.raises(DataError, match=r"DIV2K_LSDIR_valid_HR/ but no training folder: the DIV2K_LSDIR layout "
                                        r"needs DIV2K_train_HR/ and/or LSDIR_train_HR/"):
        load_dataset(tmp_path)


def test_a_folder_of_both_layouts_is_read_in_the_edition_s(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_div2k(tmp_path, train_lr=None, valid_lr=None)
    _write_div2k_lsdir(tmp_path, div2k_train=(), lsdir_train=("0000001",), lr=False)
    with caplog.at_level(logging.WARNING, logger="data"):
        assert load_dataset(tmp_path).valid_set == "DIV2K_valid"  # no edition: the first layout, DIV2K
        assert load_dataset(tmp_path, edition=get_edition(2022)).valid_set == "DIV2K_valid"
        lsdir = load_dataset(tmp_path, edition=get_edition(2026))
    assert lsdir.valid_set == "DIV2K_LSDIR_valid" and [p.name for p in lsdir.valid] == list(LSDIR_VALID)
    assert [p.name for p in lsdir.train] == ["0001", "0002", "0003", "0000001"]
    assert not caplog.records


def test_another_edition_s_validation_set_is_read_with_one_warning(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    _write_div2k(tmp_path, train_lr=None, valid_lr=None)
    with caplog.at_level(logging.WARNING, logger="data"):
        for _ in range(2):  # a search loads its data several times: one warning
            assert load_dataset(tmp_path, edition=get_edition(2024)).valid_set == "DIV2K_valid"
        load_dataset(None, edition=get_edition(2024))  # the embedded stand-in is no edition's: no warning
    assert [record.getMessage() for record in caplog.records] == [
        f"{tmp_path} holds DIV2K_valid, but NTIRE 2024 validates on DIV2K_LSDIR_valid: its PSNR floor and published "
        f"figures are on other images (give --data a folder with DIV2K_LSDIR_valid_HR/ to match)"]
