"""Reference tensors for tests/prepare_reference.rs, computed with pydicom and numpy only.

Usage: prepare_reference.py TESTDATA OUT_DIR

Implements steps 1-5 of models/MANIFEST.md ("Preparation, step by step") independently of Argus:
pydicom's pixel_array and apply_modality_lut (step 1), the VOI bounds of the manifest (step 2),
MONOCHROME1 inversion (step 3), the triangle filter in float64 (step 4) and, for volumes, slices
sorted along the normal of Image Orientation (Patient) and resampled along the stack (step 5).
Writes OUT_DIR/cases.json and one raw little-endian float32 file per case, in [0, 1] (step 6 is a
plain affine map and is left out so the tolerance reads in display units).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

CASES = [
    {"name": "ct_wg04", "files": ["dicom/ct/WG04_CT1_UNC.dcm"],
     "voi": {"window": [-600.0, 1500.0]}, "height": 128, "width": 128},
    {"name": "ct_small_nonsquare", "files": ["dicom/ct/CT_small.dcm"],
     "voi": {"window": [40.0, 400.0]}, "height": 64, "width": 96},
    {"name": "mr_wg04_percentiles", "files": ["dicom/mr/WG04_MR1_UNC.dcm"],
     "voi": {"percentiles": [1.0, 99.0]}, "height": 128, "width": 128},
    {"name": "mr_small_enlarged", "files": ["dicom/mr/MR_small.dcm"],
     "voi": "minmax", "height": 100, "width": 100},
    {"name": "pt_acrin", "files": ["dicom/pt/ACRIN-FLT-Breast_029_PT.dcm"],
     "voi": "minmax", "height": 128, "width": 128},
    {"name": "pt_ge_jpeg_lossless", "files": ["dicom/pt/GE_PET_jpeg_lossless_GH184.dcm"],
     "voi": {"percentiles": [0.5, 99.5]}, "height": 64, "width": 64},
    {"name": "mg_presentation", "files": ["dicom/mg/MG_for_presentation_OutOfBoundsOverlay.dcm"],
     "voi": "file", "height": 128, "width": 128},
    {"name": "cr_rg3_monochrome1", "files": ["dicom/cr_dx/RG3_UNCR_large_uncompressed.dcm"],
     "voi": "file", "height": 128, "width": 128},
    {"name": "dx_dog_monochrome1", "files": ["dicom/cr_dx/DX_dog_highdicom.dcm"],
     "voi": "minmax", "height": 128, "width": 128},
    {"name": "ct_liver_volume", "volume": True, "depth": 8,
     "files": [f"dicom/ct/series_liver_ct_3slice/0{i}.dcm" for i in (3, 1, 2)],
     "voi": {"window": [40.0, 400.0]}, "height": 64, "width": 64},
]


def stored_frame(ds) -> np.ndarray:
    """Step 1: pixels as float32 after the Modality LUT (computed in float64)."""
    return apply_modality_lut(ds.pixel_array, ds).astype(np.float32)


def first_window(ds):
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    first = lambda v: float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v)
    return first(ds.WindowCenter), first(ds.WindowWidth)


def bounds(x: np.ndarray, voi, ds) -> tuple[float, float]:
    """Step 2's lo and hi."""
    window = None
    if isinstance(voi, dict) and "window" in voi:
        window = voi["window"]
    elif voi == "file":
        window = first_window(ds)
    if window is not None:
        center, width = window
        return center - width / 2, center + width / 2
    if isinstance(voi, dict) and "percentiles" in voi:
        lo, hi = np.percentile(x, voi["percentiles"])
        return float(lo), float(hi)
    return float(x.min()), float(x.max())


def windowed(ds, voi) -> np.ndarray:
    """Steps 1-3 of one single-frame image."""
    x = stored_frame(ds)
    lo, hi = bounds(x, voi, ds)
    if hi <= lo:
        y = np.zeros_like(x)
    else:
        y = np.clip((x - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32)
    if str(ds.PhotometricInterpretation) == "MONOCHROME1":
        y = np.float32(1.0) - y
    return y


def weights(n_in: int, n_out: int) -> np.ndarray:
    """Step 4's triangle filter as an (n_out, n_in) matrix."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centre = (np.arange(n_out) + 0.5) * scale
    j = np.arange(n_in) + 0.5
    w = np.maximum(0.0, 1.0 - np.abs((j[None, :] - centre[:, None]) / support))
    return w / w.sum(axis=1, keepdims=True)


def resize(y: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = weights(y.shape[0], height) @ y.astype(np.float64)
    return (rows @ weights(y.shape[1], width).T).astype(np.float32)


def position(ds) -> float:
    o = np.asarray(ds.ImageOrientationPatient, np.float64)
    return float(np.dot(np.cross(o[:3], o[3:]), np.asarray(ds.ImagePositionPatient, np.float64)))


def prepare(case, data: Path) -> np.ndarray:
    datasets = [pydicom.dcmread(data / f) for f in case["files"]]
    if not case.get("volume"):
        return resize(windowed(datasets[0], case["voi"]), case["height"], case["width"])
    datasets.sort(key=position)
    stack = np.stack([resize(windowed(ds, case["voi"]), case["height"], case["width"]) for ds in datasets])
    w = weights(stack.shape[0], case["depth"])
    return np.tensordot(w, stack.astype(np.float64), axes=(1, 0)).astype(np.float32)


if __name__ == "__main__":
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        tensor = prepare(case, data)
        case["shape"] = list(tensor.shape)
        tensor.astype("<f4").tofile(out / f"{case['name']}.f32")
    (out / "cases.json").write_text(json.dumps(CASES, indent=1))
