"""The MATLAB-compatible bicubic against a slow per-pixel reference written from the formula, and known properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from data import bicubic_downscale, bicubic_upscale, crop_to_multiple


def _keys(x: float) -> float:
    x = abs(x)
    if x <= 1:
        return 1.5 * x ** 3 - 2.5 * x ** 2 + 1
    if x <= 2:
        return -0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2
    return 0.0


def _mirror(k: int, n: int) -> int:
    while not 0 <= k < n:
        k = -k - 1 if k < 0 else 2 * n - 1 - k
    return k


def _reference_axis(line: np.ndarray, s: int) -> np.ndarray:
    """Downscale one 1-D signal by s, pixel by pixel, straight from MATLAB's definition."""
    n = len(line)
    out = []
    for x in range(n // s):
        centre = x * s + 0.5 * (s - 1)
        total = weight_sum = 0.0
        for k in range(math.floor(centre - 2 * s) - 1, math.ceil(centre + 2 * s) + 2):
            w = _keys((centre - k) / s) / s
            total += w * float(line[_mirror(k, n)])
            weight_sum += w
        out.append(total / weight_sum)
    return np.array(out)


def _reference(image: np.ndarray, s: int) -> np.ndarray:
    as_uint8 = image.dtype == np.uint8

    def settle(values: np.ndarray) -> np.ndarray:
        return np.floor(np.clip(values, 0, 255) + 0.5).astype(np.uint8) if as_uint8 else values

    rows = settle(np.stack([_reference_axis(image[:, j], s) for j in range(image.shape[1])], axis=1))
    return settle(np.stack([_reference_axis(rows[i], s) for i in range(rows.shape[0])], axis=0))


@pytest.mark.parametrize("shape", [(12, 16), (8, 20), (4, 4)])
def test_uint8_matches_the_per_pixel_reference_exactly(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(sum(shape)).integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    out = bicubic_downscale(image, scale=4)
    assert out.dtype == np.uint8 and out.shape == (shape[0] // 4, shape[1] // 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], _reference(image[..., c], 4))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_float_matches_the_per_pixel_reference(scale: int) -> None:
    image = np.random.default_rng(scale).random((6 * scale, 5 * scale)) * 255
    np.testing.assert_allclose(bicubic_downscale(image, scale=scale), _reference(image, scale), rtol=0, atol=1e-9)


def test_a_constant_image_stays_constant() -> None:
    for value in (0, 77, 255):
        image = np.full((16, 24, 3), value, dtype=np.uint8)
        assert np.all(bicubic_downscale(image) == value)
        assert np.all(bicubic_upscale(image[:4, :6]) == value)


def test_a_linear_ramp_is_sampled_at_the_pixel_centres() -> None:
    # Away from the borders the normalised symmetric kernel reproduces a linear function exactly:
    # output pixel x takes the ramp's value at input position 4x + 1.5.
    n = 64
    ramp = np.tile(3.0 * np.arange(n) + 10.0, (n, 1))
    out = bicubic_downscale(ramp)
    expected = 3.0 * (4 * np.arange(n // 4) + 1.5) + 10.0
    np.testing.assert_allclose(out[:, 2:-2], np.tile(expected, (n // 4, 1))[:, 2:-2], atol=1e-9)
    np.testing.assert_allclose(out[:, 0], out[:, 0][0])  # constant along the other axis


def test_the_interior_matches_pillows_antialiased_bicubic() -> None:
    # Pillow's BICUBIC is also Keys a = -0.5, widened when shrinking, at the same sample positions;
    # only its border handling differs (it renormalises instead of mirroring).
    image = (np.random.default_rng(1).random((64, 80)) * 255).astype(np.float32)
    pil = Image.fromarray(image, mode="F")
    down = np.asarray(pil.resize((20, 16), Image.BICUBIC))
    np.testing.assert_allclose(bicubic_downscale(image.astype(np.float64))[3:-3, 3:-3], down[3:-3, 3:-3], atol=1e-3)
    small = image[:16, :20]
    up = np.asarray(Image.fromarray(small, mode="F").resize((80, 64), Image.BICUBIC))
    np.testing.assert_allclose(bicubic_upscale(small.astype(np.float64))[8:-8, 8:-8], up[8:-8, 8:-8], atol=1e-3)


def test_grey_images_and_crop() -> None:
    image = np.random.default_rng(2).integers(0, 256, size=(18, 23), dtype=np.uint8)
    cropped = crop_to_multiple(image, multiple=4)
    assert cropped.shape == (16, 20)
    np.testing.assert_array_equal(bicubic_downscale(cropped), _reference(cropped, 4))
    with pytest.raises(ValueError, match="multiple of 4"):
        bicubic_downscale(image)
