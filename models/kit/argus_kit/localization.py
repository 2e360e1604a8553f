"""Does the Grad-CAM peak land on the lesion? Measured on a package's ONNX, the way Argus does it.

For every positive case that the package reports as present (finding probability at or above
`[thresholds] positive`), the finding's slice is the one of highest probability, the map is
ReLU(sum_k w[c,k] A_k) of the finding label c of highest probability, resized to the source
image with the preparation's triangle filter (bilinear when enlarging, as Argus upsamples), and
its peak pixel is looked up in the case's mask.npy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import io, manifest, prepare
from .export import cam_from_outputs
from .phantoms import load_labels


def _session(package: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(Path(package) / "model.onnx"), providers=["CPUExecutionProvider"])


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def case_peak(sess, prep, finding: np.ndarray, images: list) -> tuple[float, int, tuple]:
    """(finding probability, slice, (row, col) of the map's peak at source size) for a slice model."""
    x = np.stack([prepare.prepare_slice(im, prep) for im in images])
    logits, features, weights = sess.run(["logits", "features", "head_weights"], {"image": x})
    probs = _softmax(logits)
    labels = np.flatnonzero(finding)
    scores = probs[:, labels].max(axis=1)
    k = int(scores.argmax())
    label = int(labels[probs[k, labels].argmax()])
    cam = cam_from_outputs(features[k : k + 1], weights, label)[0]
    rows, cols = np.asarray(images[k].pixels).shape[-2:]
    up = prepare.resize(cam.astype(np.float64), rows, cols)
    return float(scores[k]), k, np.unravel_index(int(up.argmax()), up.shape)


def peak_in_mask(package: Path, split_dir: Path) -> dict:
    """Share of reported positives whose map peak lies inside the lesion mask (slice models)."""
    table = manifest.read_manifest(Path(package) / "model.toml")
    prep = manifest.preparation_from_table(table)
    if prep.is_volume:
        raise ValueError("peak_in_mask measures slice models only")
    finding = np.array([bool(label["finding"]) for label in table["labels"]])
    threshold = float(table["thresholds"]["positive"])
    sess, split_dir = _session(package), Path(split_dir)
    hits, cases = 0, []
    for row in load_labels(split_dir)["cases"]:
        if not finding[row["label_index"]]:
            continue
        images = io.read_series(split_dir / row["series_dir"], prep.rescale)
        score, k, (r, c) = case_peak(sess, prep, finding, images)
        if score < threshold:
            continue
        inside = bool(np.load(split_dir / row["mask"])[k, r, c])
        hits += inside
        cases.append({"case_id": row["case_id"], "slice": k, "peak": [int(r), int(c)], "inside": inside})
    return {"true_positives": len(cases), "peak_inside": hits,
            "rate": hits / len(cases) if cases else None, "cases": cases}
