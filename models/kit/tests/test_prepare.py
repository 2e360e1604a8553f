"""The preparation of models/MANIFEST.md: resize against torch, VOI and MONOCHROME1 on real CR."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
import torch.nn.functional as F

from argus_kit import io, prepare
from argus_kit.manifest import Preparation

CR_DIR = Path("/work/shared/testdata/dicom/cr_dx")
CR_SMALL = CR_DIR / "study_pcir_cr_3series_16px" / "CR1_6154"


@pytest.mark.parametrize("shape_in,shape_out", [
    ((192, 192), (128, 128)), ((256, 208), (128, 128)), ((16, 16), (128, 128)),
    ((97, 301), (64, 50)), ((50, 40), (73, 121)), ((128, 128), (128, 128)),
])
def test_resize_equals_torch_antialiased_bilinear(shape_in, shape_out):
    x = np.random.default_rng(0).random(shape_in, dtype=np.float32)
    ours = prepare.resize(x, *shape_out)
    ref = F.interpolate(torch.from_numpy(x)[None, None], size=shape_out, mode="bilinear",
                        antialias=True, align_corners=False)[0, 0].numpy()
    assert np.abs(ours - ref).max() < 1e-5


def test_triangle_weights_follow_the_spec():
    w = prepare.triangle_weights(4, 2)  # scale 2, support 2, centres 1.0 and 3.0
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    raw = np.maximum(0, 1 - np.abs((np.arange(4) + 0.5 - 1.0) / 2))
    np.testing.assert_allclose(w[0], raw / raw.sum())


def _prep(**kw) -> Preparation:
    return Preparation(height=16, width=16, **kw)


@pytest.mark.skipif(not CR_SMALL.exists(), reason="shared test data not mounted")
def test_file_window_and_monochrome1_on_real_cr():
    ds = pydicom.dcmread(CR_SMALL)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    image = io.read_dicom(CR_SMALL)[0]
    assert image.monochrome1 and image.window is not None
    center, width = image.window
    stored = ds.pixel_array.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1)) + float(
        getattr(ds, "RescaleIntercept", 0))
    expected = 1 - np.clip((stored - (center - width / 2)) / width, 0, 1)
    got = prepare.prepare_frame(image, _prep(voi="file"))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    plain = prepare.prepare_frame(image, _prep(voi="file", invert_monochrome1=False))
    np.testing.assert_allclose(plain, 1 - expected, atol=1e-6)


@pytest.mark.skipif(not (CR_DIR / "DX_dog_highdicom.dcm").exists(), reason="no test data")
def test_percentiles_and_normalisation_on_real_dx():
    image = io.read_dicom(CR_DIR / "DX_dog_highdicom.dcm")[0]
    prep = Preparation(height=64, width=64, percentiles=(1.0, 99.0), mean=[0.5], std=[0.5])
    x = prepare.prepare_slice(image, prep)
    assert x.shape == (1, 64, 64) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0


def test_empty_window_gives_zeros():
    image = prepare.Image(np.full((8, 8), 5.0, np.float32))
    assert not prepare.apply_voi(image, _prep(voi="minmax")).any()


def test_volume_is_ordered_by_position_not_by_list_order():
    frames = [prepare.Image(np.full((4, 4), v, np.float32), position=p)
              for v, p in [(3, 30.0), (1, 10.0), (2, 20.0)]]
    prep = Preparation(height=4, width=4, depth=3, window=(2.0, 2.0), mean=[0.0], std=[1.0])
    v = prepare.prepare_volume(frames, prep)
    np.testing.assert_allclose(v[0, :, 0, 0], [0.0, 0.5, 1.0])
