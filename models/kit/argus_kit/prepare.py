"""The preparation of models/MANIFEST.md ("Preparation, step by step"), in numpy.

Each numbered step of the manifest is one function here, named after it, so the Python and Rust
implementations can be compared line by line. Inputs are `Image`s from `argus_kit.io`: float32
frames already read from a file, plus the header facts the steps need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .manifest import Preparation


@dataclass
class Image:
    """One decoded 2D frame after step 1 (rescaled, grey), with what steps 2-3 need."""

    pixels: np.ndarray  # (rows, cols) float32
    monochrome1: bool = False
    window: tuple[float, float] | None = None  # first Window Center/Width of the file
    position: float = 0.0  # position along the slice normal, for volumes


def voi_bounds(x: np.ndarray, prep: Preparation, image: Image) -> tuple[float, float]:
    """Step 2, choosing `lo` and `hi` from the one VOI source of the manifest."""
    if prep.window is not None:
        center, width = prep.window
        return center - width / 2, center + width / 2
    if prep.percentiles is not None:
        lo, hi = np.percentile(x, prep.percentiles)
        return float(lo), float(hi)
    if prep.voi == "file" and image.window is not None:
        center, width = image.window
        return center - width / 2, center + width / 2
    if prep.voi in ("file", "minmax"):
        return float(x.min()), float(x.max())
    raise ValueError(f"unknown VOI source {prep.voi!r}")


def apply_voi(image: Image, prep: Preparation) -> np.ndarray:
    """Step 2: linear map of [lo, hi] onto [0, 1], clipped; all zeros when hi <= lo."""
    x = image.pixels.astype(np.float32)
    lo, hi = voi_bounds(x, prep, image)
    if hi <= lo:
        return np.zeros_like(x)
    return np.clip((x - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32)


def invert_monochrome1(y: np.ndarray, image: Image, prep: Preparation) -> np.ndarray:
    """Step 3: MONOCHROME1 is inverted so that bright means dense."""
    if prep.invert_monochrome1 and image.monochrome1:
        return (np.float32(1.0) - y).astype(np.float32)
    return y


def triangle_weights(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) matrix of step 4's triangle filter, rows normalised to sum 1."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centre = (np.arange(n_out) + 0.5) * scale
    j = np.arange(n_in) + 0.5
    w = np.maximum(0.0, 1.0 - np.abs((j[None, :] - centre[:, None]) / support))
    return w / w.sum(axis=1, keepdims=True)


def resize_axis(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Applies the triangle filter along one axis (float64 inside, float32 out)."""
    w = triangle_weights(x.shape[axis], n_out)
    moved = np.moveaxis(x.astype(np.float64), axis, -1)
    return np.moveaxis(moved @ w.T, -1, axis).astype(np.float32)


def resize(y: np.ndarray, height: int, width: int) -> np.ndarray:
    """Step 4: rows first (the vertical filter), then columns."""
    return resize_axis(resize_axis(y, height, axis=-2), width, axis=-1)


def prepare_frame(image: Image, prep: Preparation) -> np.ndarray:
    """Steps 2-4 for one frame: (height, width) float32 in [0, 1]."""
    y = apply_voi(image, prep)
    y = invert_monochrome1(y, image, prep)
    return resize(y, prep.height, prep.width)


def normalise(y: np.ndarray, prep: Preparation) -> np.ndarray:
    """Step 6: grey repeated into channels (axis 0 is added), then (y - mean) / std."""
    out = np.repeat(y[None], prep.channels, axis=0)
    mean = np.asarray(prep.mean, np.float32).reshape((-1,) + (1,) * y.ndim)
    std = np.asarray(prep.std, np.float32).reshape((-1,) + (1,) * y.ndim)
    return ((out - mean) / std).astype(np.float32)


def prepare_slice(image: Image, prep: Preparation) -> np.ndarray:
    """A slice model's input for one frame: (channels, height, width)."""
    return normalise(prepare_frame(image, prep), prep)


def prepare_volume(images: list[Image], prep: Preparation) -> np.ndarray:
    """Step 5: slices ordered by position along the normal, each prepared, stack resampled.

    Returns (channels, depth, height, width).
    """
    ordered = sorted(images, key=lambda im: im.position)
    stack = np.stack([prepare_frame(im, prep) for im in ordered])
    stack = resize_axis(stack, prep.depth, axis=0)
    return normalise(stack, prep)
