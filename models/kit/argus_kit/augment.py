"""Augmentation that keeps images clinically plausible, and class-balanced batches.

Allowed: rotation within +-15 degrees, horizontal (left-right) flip, zoom within 10 %, brightness
and contrast. Never used: vertical flips (anatomy has an up), large rotations, colour shifts, and
elastic deformation (it invents shapes that look like lesions or hides real ones).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

MAX_ROTATION_DEG = 15.0
MAX_ZOOM = 0.10
MAX_BRIGHTNESS = 0.1  # in normalised units (the prepared range [0, 1] maps to [-1, 1])
MAX_CONTRAST = 0.1


def _affine(n: int, g: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) affine matrices: rotation, isotropic zoom and optional left-right flip."""
    u = lambda: torch.rand(n, generator=g) * 2 - 1
    angle = u() * math.radians(MAX_ROTATION_DEG)
    zoom = 1 + u() * MAX_ZOOM
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    return theta


def augment(x: torch.Tensor, g: torch.Generator, masks: torch.Tensor | None = None):
    """Random plausible variants of a batch (N, C, H, W) or (N, C, D, H, W).

    Volumes get one in-plane transform per sample, the same for all their slices. With `masks`
    (N, 1, H, W), returns `(images, masks)`, the masks moved by the same rotation, zoom and flip
    (and untouched by brightness and contrast).
    """
    shape = x.shape
    flat = x.reshape(shape[0], -1, shape[-2], shape[-1])
    grid = F.affine_grid(_affine(shape[0], g), list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, padding_mode="border", align_corners=False).reshape(shape)
    view = (-1,) + (1,) * (len(shape) - 1)
    contrast = 1 + (torch.rand(shape[0], generator=g) * 2 - 1) * MAX_CONTRAST
    brightness = (torch.rand(shape[0], generator=g) * 2 - 1) * MAX_BRIGHTNESS
    out = out * contrast.view(view) + brightness.view(view)
    if masks is None:
        return out
    return out, F.grid_sample(masks, grid, padding_mode="zeros", align_corners=False)


class BalancedBatchSampler(torch.utils.data.Sampler):
    """Batches with the same number of samples of every class (drawn with replacement).

    An epoch has as many batches as the data set needs at `batch_size`; seeded per epoch.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int):
        self.by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0
        self.batches = max(1, math.ceil(len(labels) / batch_size))

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        per_class = max(1, self.batch_size // len(self.by_class))
        for _ in range(self.batches):
            batch = np.concatenate([rng.choice(ix, per_class) for ix in self.by_class])
            yield rng.permutation(batch).tolist()
