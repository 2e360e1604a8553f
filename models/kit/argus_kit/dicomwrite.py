"""Writing phantom series as real DICOM Part 10 files with pydicom (PS3.10 file meta, PS3.3 IODs).

Only the modules a receiver looks at are filled: Patient, General Study, General Series, Frame of
Reference, General Equipment, General Image, Image Plane, Image Pixel, and the modality's own
attributes (CT Image, MR Image, PET Image, DX/Mammography, CR). Phantoms are labelled as such in
Patient Name, Study Description and Manufacturer so they are never mistaken for patients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import zlib

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "PT": "1.2.840.10008.5.1.4.1.1.128",  # Positron Emission Tomography Image Storage
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image - For Presentation
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
}
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


@dataclass
class Series:
    """A phantom series: stored pixels (slices, rows, cols) and the header values that vary."""

    modality: str
    stored: np.ndarray  # uint16
    bits_stored: int
    spacing: tuple[float, float]  # row, column spacing in mm
    sex: str
    age: int
    case_id: str
    uid_seed: str  # makes the UIDs reproducible for one (model, split, seed, case)
    slice_positions: list[float] = field(default_factory=lambda: [0.0])
    slice_thickness: float | None = None
    monochrome1: bool = False
    window: tuple[float, float] | None = None
    rescale: list[tuple[float, float]] | None = None  # (slope, intercept) per slice
    extra: dict = field(default_factory=dict)  # modality attributes, same in every slice


def _uid(series: Series, *parts) -> str:
    """A UID from pydicom's generator, deterministic for the given parts."""
    return generate_uid(entropy_srcs=[series.uid_seed, *map(str, parts)])


def _patient_study(ds: Dataset, s: Series) -> None:
    ds.PatientName = f"PHANTOM^{s.case_id}"
    ds.PatientID = f"PH-{s.case_id}"
    ds.PatientSex = s.sex
    ds.PatientAge = f"{s.age:03d}Y"
    ds.PatientBirthDate = ""
    ds.StudyInstanceUID = _uid(s, "study")
    ds.StudyDate, ds.StudyTime = "20240101", "120000"
    ds.StudyID, ds.AccessionNumber = "1", f"ACC{zlib.crc32(s.uid_seed.encode()) % 10**8:08d}"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = f"Argus kit phantom {s.modality} (synthetic)"
    ds.SeriesInstanceUID = _uid(s, "series")
    ds.SeriesNumber, ds.Modality = 1, s.modality
    ds.SeriesDescription = "synthetic phantom"
    ds.FrameOfReferenceUID = _uid(s, "frame")
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "Argus model kit (synthetic phantom)"


def _pixels(ds: Dataset, s: Series, k: int) -> None:
    rows, cols = s.stored.shape[1:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if s.monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, s.bits_stored, s.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [f"{s.spacing[0]:.4g}", f"{s.spacing[1]:.4g}"]
    ds.PixelData = np.ascontiguousarray(s.stored[k].astype("<u2")).tobytes()
    if s.window is not None:
        ds.WindowCenter, ds.WindowWidth = f"{s.window[0]:.6g}", f"{s.window[1]:.6g}"
    if s.rescale is not None:
        slope, intercept = s.rescale[k]
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.8g}", f"{intercept:.8g}"
        ds.RescaleType = "HU" if s.modality == "CT" else "US"


def _plane(ds: Dataset, s: Series, k: int) -> None:
    rows, cols = s.stored.shape[1:]
    z = s.slice_positions[k]
    ds.ImageOrientationPatient = [f"{v:g}" for v in AXIAL]
    x0, y0 = -cols * s.spacing[1] / 2, -rows * s.spacing[0] / 2
    ds.ImagePositionPatient = [f"{x0:.3f}", f"{y0:.3f}", f"{z:.3f}"]
    ds.SliceLocation = f"{z:.3f}"
    if s.slice_thickness is not None:
        ds.SliceThickness = f"{s.slice_thickness:g}"


def _instance(s: Series, k: int) -> Dataset:
    """One slice's data set with its file meta."""
    sop_class, sop_uid = SOP_CLASSES[s.modality], _uid(s, "sop", k)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    _patient_study(ds, s)
    # Volumes number their instances from the head down: Instance Number falls as z rises,
    # so a reader that orders by Instance Number instead of position gets the stack reversed.
    ds.InstanceNumber = len(s.slice_positions) - k if len(s.slice_positions) > 1 else 1
    ds.ContentDate, ds.ContentTime = "20240101", "120000"
    if s.modality in ("CT", "MR", "PT"):
        _plane(ds, s, k)
    _pixels(ds, s, k)
    for key, value in s.extra.items():
        setattr(ds, key, value)
    return ds


def write_series(folder: Path, s: Series) -> list[Path]:
    """Writes one file per slice, `slice_000.dcm`..., and returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(s.stored.shape[0]):
        path = folder / f"slice_{k:03d}.dcm"
        _instance(s, k).save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
