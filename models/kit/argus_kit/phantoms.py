"""Labelled synthetic phantoms per modality, written as DICOM series with lesion masks.

Each generator draws one case from its own seeded random stream and returns the stored pixels,
the lesion mask and the lesion's parameters. `generate` writes a split of cases to
`<root>/<model id>/<split>/<case id>/` (DICOM files + `mask.npy`) and the split's labels as
`labels.csv` and `labels.json`. The same (model, split, seed, count) always gives the same files,
UIDs included, so a held-out set can be rebuilt anywhere.

The anatomy is schematic on purpose: it only has to make the task learnable and the headers
plausible. Nothing here resembles a patient's data in distribution.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import shapes
from .dicomwrite import Series, write_series


@dataclass
class Case:
    """One drawn phantom: stored pixels, lesion mask, label index and lesion parameters."""

    series: dict  # keyword arguments of dicomwrite.Series other than demographics and ids
    mask: np.ndarray  # (slices, rows, cols) uint8
    label: int
    lesion: dict = field(default_factory=dict)


def _inside(rng, region: np.ndarray, margin: int) -> tuple[int, ...]:
    """A random index of `region` at least `margin` voxels from its border (in-plane)."""
    eroded = region.copy()
    for axis in (-2, -1):
        for shift in (-margin, margin):
            eroded &= np.roll(region, shift, axis=axis)
    idx = np.argwhere(eroded if eroded.any() else region)
    return tuple(idx[rng.integers(len(idx))])


def ct_chest(rng: np.random.Generator, label: int) -> Case:
    """Chest CT, 3 axial slices of 192x192 in HU; label 1 adds a nodule (size, margin, density)."""
    n, spacing, thick = 192, 1.8, 5.0
    hu = np.full((3, n, n), -1000.0)
    body = shapes.ellipse((n, n), (96, 96), (62, 88))
    lungs = shapes.ellipse((n, n), (90, 58), (44, 30)) | shapes.ellipse((n, n), (90, 134), (44, 30))
    hu[:, body] = -100.0
    hu[:, shapes.ellipse((n, n), (96, 96), (56, 82))] = 40.0
    hu[:, lungs] = -850.0 + 30 * shapes.smooth_noise(rng, (n, n), 3)[lungs]
    hu[:, shapes.ellipse((n, n), (146, 96), (10, 10))] = 400.0
    for _ in range(rng.integers(8, 16)):
        r, c = _inside(rng, lungs, 4)
        vessel = shapes.soft_ball((n, n), (r, c), rng.uniform(0.6, 1.2))
        for k in range(3):
            hu[k] += vessel * (rng.uniform(0, 40) + 850) * lungs
    mask, lesion = np.zeros((3, n, n), np.uint8), {}
    if label:
        lesion = _draw_nodule(rng, hu, lungs, mask, spacing, thick)
    hu += rng.normal(0, 25, hu.shape)
    stored = np.clip(np.round(hu + 1024), 0, 4095).astype(np.uint16)
    series = dict(
        modality="CT", stored=stored, bits_stored=12, spacing=(spacing, spacing),
        slice_positions=[-thick, 0.0, thick], slice_thickness=thick,
        window=(-600.0, 1500.0), rescale=[(1.0, -1024.0)] * 3,
        extra=dict(KVP="120", ImageType=["ORIGINAL", "PRIMARY", "AXIAL"], BodyPartExamined="CHEST"),
    )
    return Case(series, mask, label, lesion)


def _draw_nodule(rng, hu, lungs, mask, spacing, thick) -> dict:
    """Adds a spherical nodule to a 3-slice HU stack; returns its parameters."""
    n = hu.shape[1]
    diameter = rng.uniform(8.0, 20.0)
    margin = str(rng.choice(["smooth", "spiculated"]))
    density = str(rng.choice(["solid", "ground-glass", "part-solid"]))
    value = {"solid": 30.0, "ground-glass": -450.0, "part-solid": -450.0}[density]
    r, c = _inside(rng, lungs, int(diameter / spacing / 2) + 2)
    for k, z in enumerate((-thick, 0.0, thick)):
        rad = np.sqrt(max((diameter / 2) ** 2 - z**2, 0.0)) / spacing
        if rad < 0.5:
            continue
        ball = shapes.soft_ball((n, n), (r, c), rad)
        if margin == "spiculated":
            ball = np.maximum(ball, shapes.spikes((n, n), (r, c), rad, rng, 6))
        hu[k] = hu[k] * (1 - ball) + value * ball
        if density == "part-solid":
            core = shapes.soft_ball((n, n), (r, c), rad / 2)
            hu[k] = hu[k] * (1 - core) + 30.0 * core
        mask[k] |= (ball > 0.5).astype(np.uint8)
    return dict(diameter_mm=round(float(diameter), 1), margin=margin, density=density)


def mr_brain(rng: np.random.Generator, label: int) -> Case:
    """FLAIR-like brain MR volume, 20 slices of 96x96; label 1 adds a hyperintense lesion."""
    d, n, spacing, thick = 20, 96, 2.4, 6.0
    shape = (d, n, n)
    head = shapes.ellipse(shape, (9.5, 48, 48), (11, 42, 35))
    brain = shapes.ellipse(shape, (9.5, 48, 48), (9.5, 37, 30))
    img = np.where(head, 300.0, 10.0)
    img[brain] = 380.0 + 40 * shapes.smooth_noise(rng, shape, 2)[brain]
    for side in (-1, 1):
        img[shapes.ellipse(shape, (9.5, 46, 48 + 6 * side), (4, 12, 4))] = 90.0
    mask, lesion = np.zeros(shape, np.uint8), {}
    if label:
        diameter = rng.uniform(18.0, 36.0)
        z, r, c = _inside(rng, brain & ~(img < 100), 5)
        ball = shapes.soft_ball(shape, (z, r, c), diameter / 2, (thick, spacing, spacing))
        img = img * (1 - ball) + rng.uniform(900, 1100) * ball
        mask = (ball > 0.5).astype(np.uint8)
        lesion = dict(diameter_mm=round(float(diameter), 1))
    bias = 1 + 0.12 * shapes.smooth_noise(rng, shape, 20)
    img = np.abs(img * bias + rng.normal(0, 20, shape))
    stored = np.clip(np.round(img), 0, 4095).astype(np.uint16)
    positions = [(k - d / 2) * thick for k in range(d)]
    series = dict(
        modality="MR", stored=stored, bits_stored=12, spacing=(spacing, spacing),
        slice_positions=positions, slice_thickness=thick,
        extra=dict(
            ScanningSequence="SE", SequenceVariant="SK", ScanOptions="IR", MRAcquisitionType="2D",
            RepetitionTime="9000", EchoTime="120", InversionTime="2500", MagneticFieldStrength="1.5",
            ImageType=["ORIGINAL", "PRIMARY", "M"], BodyPartExamined="HEAD",
            SeriesDescription="AX FLAIR (synthetic phantom)",
        ),
    )
    return Case(series, mask, label, lesion)


def pt_body(rng: np.random.Generator, label: int) -> Case:
    """Body PET, 3 slices of 128x128 in Bq/ml; label 1 adds a hot spot."""
    n, spacing, thick = 128, 3.5, 3.5
    shape2 = (n, n)
    body = shapes.ellipse(shape2, (64, 64), (45, 58))
    suv = np.where(body, 1.0, 0.02) * (1 + 0.15 * shapes.smooth_noise(rng, shape2, 4))
    suv[shapes.ellipse(shape2, (60, 40), (20, 18))] = 2.2
    if rng.random() < 0.5:
        ring = shapes.ellipse(shape2, (52, 76), (11, 11)) & ~shapes.ellipse(shape2, (52, 76), (6, 6))
        suv[ring] = rng.uniform(3.0, 5.0)
    stack = np.repeat(suv[None], 3, axis=0)
    mask, lesion = np.zeros((3, n, n), np.uint8), {}
    if label:
        diameter, uptake = rng.uniform(12.0, 28.0), rng.uniform(6.0, 14.0)
        r, c = _inside(rng, body, int(diameter / spacing / 2) + 2)
        ball = shapes.soft_ball((3, n, n), (1, r, c), diameter / 2, (thick, spacing, spacing))
        stack = stack * (1 - ball) + uptake * ball
        mask = (ball > 0.5).astype(np.uint8)
        lesion = dict(diameter_mm=round(float(diameter), 1), suv=round(float(uptake), 2))
    stack = np.stack([shapes.blur(s, 1.0) for s in stack])
    stack = np.maximum(stack + rng.normal(0, 0.08, stack.shape) * np.sqrt(stack), 0)
    return _pt_case(stack * 5000.0, mask, label, lesion, spacing, thick)


def _pt_case(bqml, mask, label, lesion, spacing, thick) -> Case:
    """Stores Bq/ml with a per-slice Rescale Slope, as PET scanners do."""
    slopes = [max(float(s.max()), 1.0) / 32000.0 for s in bqml]
    stored = np.stack([np.round(s / k) for s, k in zip(bqml, slopes)]).astype(np.uint16)
    series = dict(
        modality="PT", stored=stored, bits_stored=16, spacing=(spacing, spacing),
        slice_positions=[-thick, 0.0, thick], slice_thickness=thick,
        rescale=[(k, 0.0) for k in slopes],
        extra=dict(
            Units="BQML", DecayCorrection="START", CorrectedImage=["ATTN", "DECY"],
            ImageType=["ORIGINAL", "PRIMARY"], SeriesType=["STATIC", "IMAGE"],
            NumberOfSlices=3, BodyPartExamined="WHOLEBODY",
        ),
    )
    return Case(series, mask, label, lesion)


def mg_breast(rng: np.random.Generator, label: int) -> Case:
    """Mammogram 256x208; label 1 adds a mass, label 2 a cluster of calcifications."""
    rows, cols = 256, 208
    breast = shapes.ellipse((rows, cols), (128, 0), (115, 180))
    density = np.clip(shapes.smooth_noise(rng, (rows, cols), 6) * 0.5 + rng.uniform(-0.3, 0.3), 0, None)
    img = np.where(breast, 900.0 + 500 * density, 60.0)
    mask, lesion = np.zeros((1, rows, cols), np.uint8), {}
    if label == 1:
        lesion = _draw_mass(rng, img, breast, mask[0])
    elif label == 2:
        lesion = _draw_calcifications(rng, img, breast, mask[0])
    img += rng.normal(0, 25, img.shape)
    laterality = str(rng.choice(["L", "R"]))
    if laterality == "R":
        img, mask = img[:, ::-1], mask[:, :, ::-1]
    stored = np.clip(np.round(img), 0, 4095).astype(np.uint16)[None]
    series = dict(
        modality="MG", stored=stored, bits_stored=12, spacing=(0.85, 0.85),
        window=(float(rng.uniform(1900, 2200)), float(rng.uniform(3900, 4200))),
        extra=dict(
            PresentationIntentType="FOR PRESENTATION", ImageLaterality=laterality,
            ViewPosition=str(rng.choice(["CC", "MLO"])), BodyPartExamined="BREAST",
            ImageType=["ORIGINAL", "PRIMARY", ""], PatientOrientation=["A", "R" if laterality == "L" else "L"],
            ImagerPixelSpacing=["0.85", "0.85"], BurnedInAnnotation="NO",
        ),
    )
    return Case(series, np.ascontiguousarray(mask), label, lesion)


def _draw_mass(rng, img, breast, mask) -> dict:
    """A dense, sometimes spiculated, mass inside the breast."""
    radius = rng.uniform(7.0, 16.0)
    margin = str(rng.choice(["circumscribed", "spiculated"]))
    centre = _inside(rng, breast, int(radius) + 6)
    blob = shapes.soft_ball(img.shape, centre, radius)
    if margin == "spiculated":
        blob = np.maximum(blob, 0.8 * shapes.spikes(img.shape, centre, radius, rng, 10))
    img += rng.uniform(600, 900) * blob
    mask |= (blob > 0.5).astype(np.uint8)
    return dict(diameter_mm=round(float(2 * radius * 0.85), 1), margin=margin)


def _draw_calcifications(rng, img, breast, mask) -> dict:
    """A cluster of small, very bright dots."""
    count = int(rng.integers(8, 16))
    centre = np.array(_inside(rng, breast, 20), float)
    for _ in range(count):
        dot = shapes.soft_ball(img.shape, centre + rng.normal(0, 6, 2), rng.uniform(1.2, 2.0))
        img[:] = img * (1 - dot) + rng.uniform(3200, 3900) * dot
        mask |= (dot > 0.5).astype(np.uint8)
    return dict(count=count)


def cr_chest(rng: np.random.Generator, label: int) -> Case:
    """PA chest radiograph 256x256, MONOCHROME1; label 1 adds a nodule in a lung."""
    n = 256
    dens = np.full((n, n), 0.05)
    body = shapes.ellipse((n, n), (140, 128), (125, 110))
    lungs = shapes.ellipse((n, n), (120, 78), (80, 38)) | shapes.ellipse((n, n), (120, 178), (80, 38))
    dens[body] = 0.45
    dens[lungs] = 0.18 + 0.03 * shapes.smooth_noise(rng, (n, n), 4)[lungs]
    dens[shapes.ellipse((n, n), (170, 140), (40, 36))] = 0.6
    rr, _ = shapes.grid((n, n))
    for k in range(7):
        rib = np.abs(rr - 60 - 22 * k - 0.002 * (shapes.grid((n, n))[1] - 128) ** 2) < 3
        dens[rib & lungs] += 0.08
    mask, lesion = np.zeros((1, n, n), np.uint8), {}
    if label:
        radius = rng.uniform(5.0, 12.0)
        centre = _inside(rng, lungs, int(radius) + 3)
        blob = shapes.soft_ball((n, n), centre, radius)
        dens += rng.uniform(0.15, 0.3) * blob
        mask[0] = (blob > 0.5).astype(np.uint8)
        lesion = dict(diameter_mm=round(float(2 * radius * 1.4), 1))
    dens = shapes.blur(dens, 1.0) + rng.normal(0, 0.01, (n, n))
    stored = np.clip(np.round((1 - dens) * 3800 + 100), 0, 4095).astype(np.uint16)[None]
    series = dict(
        modality="CR", stored=stored, bits_stored=12, spacing=(1.4, 1.4), monochrome1=True,
        window=(float(rng.uniform(1950, 2150)), float(rng.uniform(3900, 4200))),
        extra=dict(
            BodyPartExamined="CHEST", ViewPosition="PA", ImagerPixelSpacing=["1.4", "1.4"],
            PatientOrientation=["L", "F"], ImageType=["ORIGINAL", "PRIMARY", ""],
        ),
    )
    return Case(series, mask, label, lesion)


@dataclass(frozen=True)
class PhantomKind:
    """How to draw the phantoms of one reference model."""

    draw: object
    labels: tuple[str, ...]
    female_only: bool = False


KINDS = {
    "ct-chest-nodule": PhantomKind(ct_chest, ("normal", "nodule")),
    "mr-brain-lesion": PhantomKind(mr_brain, ("normal", "lesion")),
    "pt-hotspot": PhantomKind(pt_body, ("normal", "hotspot")),
    "mg-mass": PhantomKind(mg_breast, ("normal", "mass", "calcification"), female_only=True),
    "cr-chest-nodule": PhantomKind(cr_chest, ("normal", "nodule")),
}


def _demographics(rng, kind: PhantomKind) -> tuple[str, int]:
    """Sex and age drawn independently of the label, so per-group metrics are meaningful."""
    sex = "F" if kind.female_only else str(rng.choice(["M", "F"]))
    low = 40 if kind.female_only else 20
    return sex, int(rng.integers(low, 90))


def _case_id(kind_id: str, split: str, seed: int, index: int) -> str:
    return f"{kind_id.split('-')[0]}-{split}-s{seed}-{index:04d}"


def write_case(out: Path, kind_id: str, split: str, seed: int, index: int) -> dict:
    """Draws and writes one case; returns its row for the labels file."""
    kind = KINDS[kind_id]
    # Per-case streams: a case does not depend on how many cases come before it.
    rng = np.random.default_rng([seed, index])
    label = index % len(kind.labels)
    sex, age = _demographics(rng, kind)
    case = kind.draw(rng, label)
    case_id = _case_id(kind_id, split, seed, index)
    folder = out / case_id
    s = Series(sex=sex, age=age, case_id=case_id, uid_seed=f"{kind_id}/{split}/{seed}/{index}",
               **case.series)
    write_series(folder, s)
    np.save(folder / "mask.npy", case.mask)
    return dict(
        case_id=case_id, label=kind.labels[label], label_index=label, sex=sex, age=age,
        modality=s.modality, series_dir=case_id, mask=f"{case_id}/mask.npy",
        slices=int(case.mask.shape[0]),
        positive_slices=[int(k) for k in np.flatnonzero(case.mask.reshape(len(case.mask), -1).any(1))],
        lesion=case.lesion,
    )


def generate(root: Path, kind_id: str, split: str, count: int, seed: int) -> Path:
    """Writes `count` cases of one split and its labels; returns the split folder."""
    out = Path(root) / kind_id / split
    out.mkdir(parents=True, exist_ok=True)
    rows = [write_case(out, kind_id, split, seed, i) for i in range(count)]
    (out / "labels.json").write_text(json.dumps(
        dict(model=kind_id, split=split, seed=seed, labels=list(KINDS[kind_id].labels), cases=rows),
        indent=1))
    _write_csv(out / "labels.csv", rows)
    return out


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = ["case_id", "label", "label_index", "sex", "age", "modality", "series_dir", "mask"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def load_labels(split_dir: Path) -> dict:
    """The labels.json of a split folder."""
    return json.loads((Path(split_dir) / "labels.json").read_text())
