"""MATLAB-compatible bicubic resizing: how DIV2K's and the challenge's LR images were made.

This reproduces MATLAB's `imresize(img, 1/s, 'bicubic')` for an integer factor s: Keys' cubic
kernel (a = -0.5) widened by s (antialiasing), symmetric border padding, output pixel x sampling
input position x*s + 0.5*(s - 1) in 0-based coordinates, rows resized before columns, and on uint8
input each pass rounded back to uint8 (MATLAB keeps the input's class between passes). The same
code enlarges by s (no widening), which gives the bicubic baseline of SR papers.
"""

from __future__ import annotations

import math

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, as MATLAB's imresize defines it."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = 1.5 * ax3 - 2.5 * ax2 + 1.0
    far = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    return np.where(ax <= 1, near, np.where(ax <= 2, far, 0.0))


def resize_taps(in_length: int, out_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights and source indices, each (out_length, taps), of one axis resized from in_length to out_length.

    Output x samples input position (x + 0.5) * in/out - 0.5 (0-based); when shrinking, the kernel is
    widened by in/out. Each row of weights sums to 1; the indices fold the symmetric padding in.
    """
    ratio = in_length / out_length  # the downscale factor s (< 1 when enlarging)
    stretch = max(ratio, 1.0)  # antialiasing: only a shrinking kernel is widened
    width = 4.0 * stretch  # support of the cubic (4 input pixels), widened
    centre = (np.arange(out_length, dtype=np.float64) + 0.5) * ratio - 0.5
    taps = np.floor(centre - width / 2)[:, None].astype(np.int64) + np.arange(math.ceil(width) + 2)
    weights = cubic((centre[:, None] - taps) / stretch) / stretch
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])  # 0 1 .. n-1 n-1 .. 1 0
    return weights, mirror[np.mod(taps, 2 * in_length)]


def crop_to_multiple(image: np.ndarray, *, multiple: int) -> np.ndarray:
    """The top-left part of `image` whose height and width are multiples of `multiple` (a view)."""
    height, width = image.shape[:2]
    return image[: height - height % multiple, : width - width % multiple]


def bicubic_downscale(image: np.ndarray, *, scale: int = 4) -> np.ndarray:
    """MATLAB's `imresize(image, 1/scale, 'bicubic')` of an (H, W) or (H, W, C) image.

    H and W must be multiples of `scale` (see `crop_to_multiple`). uint8 input gives uint8 output,
    rounded after each pass as MATLAB does; float input gives float64 output, unrounded.
    """
    height, width = image.shape[:2]
    if height % scale or width % scale:
        raise ValueError(f"image {height}x{width} is not a multiple of {scale}; crop it first (crop_to_multiple)")
    return _resize(image, (height // scale, width // scale))


def bicubic_upscale(image: np.ndarray, *, scale: int = 4) -> np.ndarray:
    """MATLAB's `imresize(image, scale, 'bicubic')`: the classic "Bicubic" row of SR result tables."""
    return _resize(image, (image.shape[0] * scale, image.shape[1] * scale))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Separable resize, rows then columns (MATLAB's order for equal factors)."""
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    is_uint8 = image.dtype == np.uint8
    out = image
    for axis in (0, 1):
        weights, indices = resize_taps(out.shape[axis], size[axis])
        source = out.astype(np.float64)
        shape = list(source.shape)
        shape[axis] = size[axis]
        acc = np.zeros(shape)
        expand = (slice(None),) + (None,) * (source.ndim - 1 - axis)
        # One vectorised multiply-add per kernel tap (4 * scale + 2 when shrinking), never per pixel.
        for tap in range(weights.shape[1]):
            acc += weights[:, tap][expand] * np.take(source, indices[:, tap], axis=axis)
        out = _round_uint8(acc) if is_uint8 else acc
    return out


def _round_uint8(values: np.ndarray) -> np.ndarray:
    """MATLAB's conversion to uint8: saturate, round half away from zero."""
    return np.floor(np.clip(values, 0.0, 255.0) + 0.5).astype(np.uint8)
