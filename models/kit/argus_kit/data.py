"""Phantom splits as prepared tensors: one sample per slice (slice models) or per series (volumes).

Samples are prepared once by `prepare` (the manifest's steps) and kept in memory; augmentation
works on the prepared tensors. `case` maps each sample back to its series, so scores can be
aggregated per series the way Argus does (the maximum over slices).

Slice models also keep each slice's lesion mask (mask.npy) resized to the input like the image,
for the localization loss of `train`; volumes keep none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import io, prepare
from .manifest import Preparation
from .phantoms import load_labels


@dataclass
class Split:
    """Prepared samples of one phantom split."""

    x: np.ndarray  # (N, C, H, W) or (N, C, D, H, W) float32
    y: np.ndarray  # sample labels (slice labels for slice models)
    case: np.ndarray  # index into `cases` for each sample
    cases: list[dict]  # rows of labels.json
    masks: np.ndarray | None = None  # (N, 1, H, W) float32 lesion masks in [0, 1], slice models

    @property
    def case_labels(self) -> np.ndarray:
        return np.array([c["label_index"] for c in self.cases])


def _case_samples(folder: Path, row: dict, prep: Preparation) -> tuple[list, list, list]:
    """Prepared samples, their labels and (slice models) their resized lesion masks for one case."""
    images = io.read_series(folder, prep.rescale)
    if prep.is_volume:
        return [prepare.prepare_volume(images, prep)], [row["label_index"]], []
    positive = set(row["positive_slices"])
    xs = [prepare.prepare_slice(im, prep) for im in images]
    ys = [row["label_index"] if k in positive else 0 for k in range(len(images))]
    mask = np.load(folder / "mask.npy").astype(np.float32)
    ms = [prepare.resize(m, prep.height, prep.width).astype(np.float32)[None] for m in mask]
    return xs, ys, ms


def load_split(split_dir: Path, prep: Preparation) -> Split:
    """Reads and prepares every case listed in a split's labels.json."""
    split_dir = Path(split_dir)
    rows = load_labels(split_dir)["cases"]
    xs, ys, ms, case = [], [], [], []
    for i, row in enumerate(rows):
        cx, cy, cm = _case_samples(split_dir / row["series_dir"], row, prep)
        xs += cx
        ys += cy
        ms += cm
        case += [i] * len(cx)
    masks = np.stack(ms) if ms else None
    return Split(np.stack(xs), np.array(ys), np.array(case), rows, masks)


def case_scores(sample_probs: np.ndarray, split: Split) -> np.ndarray:
    """Per-case probabilities: for each label, the maximum over the case's samples."""
    out = np.zeros((len(split.cases), sample_probs.shape[1]), np.float32)
    for i in range(len(split.cases)):
        out[i] = sample_probs[split.case == i].max(axis=0)
    return out
