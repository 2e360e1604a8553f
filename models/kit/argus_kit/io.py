"""Reading images into `prepare.Image`s: DICOM (pydicom), NIfTI (nibabel), PNG/JPEG (Pillow).

Step 1 of the preparation (stored values to float32, Rescale Slope/Intercept or Modality LUT) and
the conversion of colour to grey happen here, so `prepare` starts from float32 grey frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .prepare import Image

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601


def _grey(frame: np.ndarray) -> np.ndarray:
    """Colour (..., 3) to grey with BT.601 luma; grey frames pass unchanged."""
    if frame.ndim == 3 and frame.shape[-1] == 3:
        return (frame.astype(np.float32) @ LUMA).astype(np.float32)
    return frame.astype(np.float32)


def _first_window(ds) -> tuple[float, float] | None:
    """The first Window Center/Width pair of a data set, if both are present."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    return _first_value(ds.WindowCenter), _first_value(ds.WindowWidth)


def _first_value(v) -> float:
    """The first value of a possibly multi-valued DS element."""
    if hasattr(v, "__len__") and not isinstance(v, str):
        return float(v[0])
    return float(v)


def _slice_position(ds) -> float:
    """Position along the normal of Image Orientation (Patient); 0 when absent."""
    if "ImageOrientationPatient" not in ds or "ImagePositionPatient" not in ds:
        return 0.0
    o = np.asarray(ds.ImageOrientationPatient, np.float64)
    normal = np.cross(o[:3], o[3:])
    return float(np.dot(normal, np.asarray(ds.ImagePositionPatient, np.float64)))


def _frames(ds, rescale: bool) -> np.ndarray:
    """Pixel data as float32 (frames, rows, cols), rescaled when asked."""
    from pydicom.pixels import apply_modality_lut

    arr = ds.pixel_array
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    colour = int(getattr(ds, "SamplesPerPixel", 1)) == 3
    if frames == 1:
        arr = arr[None]
    if rescale and not colour:
        arr = apply_modality_lut(arr, ds)
    return np.stack([_grey(f) for f in arr])


def read_dicom(path: Path, rescale: bool = True) -> list[Image]:
    """One `Image` per frame of a DICOM file."""
    import pydicom

    ds = pydicom.dcmread(str(path))
    mono1 = str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1"
    window, position = _first_window(ds), _slice_position(ds)
    return [Image(f, mono1, window, position) for f in _frames(ds, rescale)]


def read_series(folder: Path, rescale: bool = True) -> list[Image]:
    """All frames of the DICOM files in a folder (`*.dcm`), in file-name order."""
    files = sorted(Path(folder).glob("*.dcm"))
    return [im for f in files for im in read_dicom(f, rescale)]


def read_nifti(path: Path) -> list[Image]:
    """A NIfTI volume as axial frames (third voxel axis), scaled by scl_slope/inter."""
    import nibabel as nib

    data = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    if data.ndim == 2:
        data = data[..., None]
    return [Image(data[..., k].T.copy(), position=float(k)) for k in range(data.shape[2])]


def read_picture(path: Path) -> list[Image]:
    """A PNG or JPEG file as one grey frame."""
    from PIL import Image as Pil

    with Pil.open(path) as im:
        arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "I", "I;16", "F") else im)
    return [Image(_grey(arr))]


def read_any(path: Path, rescale: bool = True) -> list[Image]:
    """Dispatches on the path: a folder is a DICOM series; otherwise by extension."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        return read_series(path, rescale)
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti(path)
    if name.endswith((".png", ".jpg", ".jpeg")):
        return read_picture(path)
    return read_dicom(path, rescale)
