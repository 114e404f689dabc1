import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from evaluators.quality import (challenge_psnr, challenge_ssim, mean_psnr, psnr_from_squared_error, quantize,
                                 squared_error, to_uint8_image)


def constant(value: int, height: int = 24, width: int = 24) -> torch.Tensor:
    return torch.full((3, height, width), value / 255)


def challenge_crop(t: torch.Tensor, *, scale: int = 4, border: int = 4) -> np.ndarray:
    image = to_uint8_image(t)
    image = image[: image.shape[0] // scale * scale, : image.shape[1] // scale * scale]
    return image[border:-border, border:-border] if border else image


@pytest.mark.parametrize("d", [1, 5, 20, 100])
def test_constant_offset_gives_the_closed_form(d):
    assert challenge_psnr(constant(100 + d), constant(100)) == pytest.approx(20 * math.log10(255 / d), abs=1e-12)


def test_identical_images_give_inf():
    hr = torch.rand(3, 20, 20)
    assert challenge_psnr(hr.clone(), hr) == math.inf


def test_output_is_clamped_and_rounded_before_comparison():
    hr = torch.rand(3, 16, 16)
    hr[:, :8] = 1.0
    hr[:, 8:] = 0.0
    sr = hr.clone()
    sr[:, :8] += 0.7
    sr[:, 8:] -= 0.3
    assert challenge_psnr(sr, hr) == math.inf
    # 100.4 rounds to 100; 100.6 rounds to 101.
    assert challenge_psnr(constant(100.4), constant(100)) == math.inf
    assert challenge_psnr(constant(100.6), constant(100)) == pytest.approx(20 * math.log10(255))


@pytest.mark.parametrize("height, width, border", [(37, 45, 4), (32, 32, 4), (40, 43, 0), (21, 30, 2)])
def test_matches_skimage_on_the_cropped_uint8_images(height, width, border):
    generator = torch.Generator().manual_seed(height * width)
    hr = torch.rand(3, height, width, generator=generator)
    sr = (hr + 0.05 * torch.randn(3, height, width, generator=generator))[:, : height // 4 * 4, : width // 4 * 4]
    expected = peak_signal_noise_ratio(challenge_crop(hr, border=border), challenge_crop(sr, border=border),
                                       data_range=255)
    assert challenge_psnr(sr, hr, border=border) == pytest.approx(expected, abs=1e-10)


@settings(max_examples=30, deadline=None)
@given(height=st.integers(12, 40), width=st.integers(12, 40), seed=st.integers(0, 10_000))
def test_psnr_is_the_rgb_mse_over_the_crop(height, width, seed):
    rng = np.random.default_rng(seed)
    hr_u8 = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    sr_u8 = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    hr = torch.from_numpy(hr_u8).permute(2, 0, 1).float() / 255
    sr = torch.from_numpy(sr_u8).permute(2, 0, 1).float() / 255
    h, w = height // 4 * 4, width // 4 * 4
    diff = sr_u8[4:h - 4, 4:w - 4].astype(np.float64) - hr_u8[4:h - 4, 4:w - 4].astype(np.float64)
    assert challenge_psnr(sr, hr) == pytest.approx(10 * math.log10(255**2 / np.mean(diff**2)), abs=1e-9)


def test_border_pixels_do_not_count():
    hr = torch.rand(3, 24, 28)
    sr = hr.clone()
    sr[:, :4] = 1 - sr[:, :4]
    sr[:, :, -4:] = 1 - sr[:, :, -4:]
    assert challenge_psnr(sr, hr) == math.inf
    assert challenge_psnr(sr, hr, border=0) < 20
    sr[:, 4, 4] = 1 - sr[:, 4, 4]
    assert challenge_psnr(sr, hr) < math.inf


def test_hr_is_cropped_to_a_multiple_of_the_scale():
    hr = torch.rand(3, 35, 42)
    cropped_sr = hr[:, :32, :40].clone()
    assert challenge_psnr(cropped_sr, hr) == math.inf
    full_sr = hr.clone()
    full_sr[:, 32:] = 0
    full_sr[:, :, 40:] = 0
    assert challenge_psnr(full_sr, hr) == math.inf


def test_scale_two_keeps_more_rows():
    hr = torch.rand(3, 35, 42)
    with pytest.raises(ValueError):
        challenge_psnr(hr[:, :32, :40], hr, scale=2)
    assert challenge_psnr(hr[:, :34, :42].clone(), hr, scale=2) == math.inf


def test_mismatched_shapes_raise_naming_both():
    with pytest.raises(ValueError, match=r"\(3, 28, 32\).*\(3, 35, 42\)"):
        challenge_psnr(torch.rand(3, 28, 32), torch.rand(3, 35, 42))
    with pytest.raises(ValueError):
        challenge_psnr(torch.rand(3, 40, 44), torch.rand(3, 35, 42))


def test_batched_single_image_is_accepted():
    hr, sr = torch.rand(3, 16, 16), torch.rand(3, 16, 16)
    assert challenge_psnr(sr[None], hr[None]) == challenge_psnr(sr, hr)


def test_border_too_large_raises():
    with pytest.raises(ValueError, match="border"):
        challenge_psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 8))


def test_mean_psnr_averages_per_image_values():
    pairs = [(constant(101), constant(100)), (constant(110), constant(100))]
    assert mean_psnr(pairs) == pytest.approx((20 * math.log10(255) + 20 * math.log10(25.5)) / 2)
    assert mean_psnr(iter(pairs), border=2) == pytest.approx(mean_psnr(pairs))
    with pytest.raises(ValueError):
        mean_psnr([])


def test_ssim_uses_the_same_crops():
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 37, 45, generator=generator)
    sr = (hr + 0.1 * torch.randn(3, 37, 45, generator=generator))[:, :36, :44]
    expected = structural_similarity(challenge_crop(sr), challenge_crop(hr), channel_axis=2, data_range=255)
    assert challenge_ssim(sr, hr) == pytest.approx(expected)
    assert challenge_ssim(sr, hr) < 1
    assert challenge_ssim(hr.clone(), hr) == 1.0


def test_to_uint8_image_layout_and_values():
    t = torch.zeros(1, 3, 2, 5)
    t[0, 0] = 1.0
    t[0, 1] = 0.5
    t[0, 2] = -3.0
    image = to_uint8_image(t)
    assert image.shape == (2, 5, 3) and image.dtype == np.uint8
    assert (image[..., 0] == 255).all() and (image[..., 1] == 128).all() and (image[..., 2] == 0).all()


def test_to_uint8_image_rejects_nan_and_non_rgb():
    with pytest.raises(ValueError, match="NaN"):
        to_uint8_image(torch.full((3, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="RGB"):
        to_uint8_image(torch.rand(1, 4, 4))
    with pytest.raises(ValueError, match="RGB"):
        to_uint8_image(torch.rand(2, 3, 4, 4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_exact_integer_error_gives_the_float64_mse_psnr_bit_for_bit(seed):
    """Scoring on the device (integer error sums) reproduces the numpy float64 figure exactly, not approximately."""
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, size=(3, 61, 83), dtype=np.uint8)
    sr = torch.from_numpy(np.clip(hr / 255.0 + rng.normal(0, 0.03, size=hr.shape), -0.1, 1.1)).float()
    sr_u8 = sr.clamp(0, 1).mul(255.0).round().to(torch.uint8).numpy()[:, 4:60 - 4, 4:80 - 4]
    mse = np.mean((sr_u8.astype(np.float64) - hr[:, 4:60 - 4, 4:80 - 4].astype(np.float64)) ** 2)
    expected = 20 * math.log10(255.0 / math.sqrt(mse))
    total, count = squared_error(quantize(sr), torch.from_numpy(hr))
    assert total.dtype == torch.int64 and count == 3 * 52 * 72
    assert psnr_from_squared_error(int(total), count) == expected
