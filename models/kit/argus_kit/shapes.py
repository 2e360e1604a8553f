"""Small numpy drawing helpers for phantoms: ellipses, soft discs, smooth noise, blur."""

from __future__ import annotations

import numpy as np


def grid(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Index grids (float) for an array of `shape`."""
    return list(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))


def ellipse(shape, centre, radii) -> np.ndarray:
    """Boolean ellipse (2D) or ellipsoid (3D); centre and radii in voxel units."""
    g = grid(shape)
    r = sum(((gi - c) / max(rad, 1e-6)) ** 2 for gi, c, rad in zip(g, centre, radii))
    return r <= 1.0


def soft_ball(shape, centre, radius, scale=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Partial-volume ball in [0, 1]: 1 inside, a one-voxel linear edge. `scale` is mm/voxel."""
    g = grid(shape)
    d = np.sqrt(sum(((gi - c) * s) ** 2 for gi, c, s in zip(g, centre, scale)))
    return np.clip(radius - d + 0.5, 0.0, 1.0)


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur by FFT (periodic edges are harmless for smooth textures)."""
    if sigma <= 0:
        return x
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in x.shape], indexing="ij")
    kernel = np.exp(-2 * (np.pi * sigma) ** 2 * sum(f**2 for f in freqs))
    return np.real(np.fft.ifftn(np.fft.fftn(x) * kernel))


def smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random texture."""
    x = blur(rng.standard_normal(shape), sigma)
    return (x - x.mean()) / (x.std() + 1e-9)


def spikes(shape, centre, radius, rng: np.random.Generator, count: int) -> np.ndarray:
    """Thin radial lines (spiculation) around a 2D lesion, as a boolean mask."""
    out = np.zeros(shape, bool)
    for angle in rng.uniform(0, 2 * np.pi, count):
        for t in np.linspace(radius * 0.8, radius * rng.uniform(1.6, 2.4), 24):
            r, c = int(round(centre[0] + t * np.sin(angle))), int(round(centre[1] + t * np.cos(angle)))
            if 0 <= r < shape[0] and 0 <= c < shape[1]:
                out[r, c] = True
    return out
