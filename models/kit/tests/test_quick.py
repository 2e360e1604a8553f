"""Quick end-to-end run on the CPU: a few phantoms, a tiny model, one epoch, export, ORT check.

Runs in well under two minutes on two cores. Everything is written under pytest's tmp_path.
"""

import json

import numpy as np
import pydicom
import pytest

from argus_kit import defaults, gradcam, manifest, phantoms, pipeline, train


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARGUS_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("model_id", list(defaults.SPECS))
def test_phantoms_are_real_dicom(cache, model_id):
    split = phantoms.generate(cache / "ph", model_id, "t", 2, 3)
    labels = phantoms.load_labels(split)
    row = labels["cases"][1]
    files = sorted((split / row["series_dir"]).glob("*.dcm"))
    ds = pydicom.dcmread(files[0])
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert ds.SOPClassUID.name.startswith(
        {"CT": "CT Image", "MR": "MR Image", "PT": "Positron", "MG": "Digital Mammography",
         "CR": "Computed Radiography"}[ds.Modality])
    assert ds.PatientAge.endswith("Y") and len(ds.PatientAge) == 4
    assert (ds.PhotometricInterpretation == "MONOCHROME1") == (ds.Modality == "CR")
    mask = np.load(split / row["mask"])
    assert mask.shape == (len(files), ds.Rows, ds.Columns) and mask.any()
    again = phantoms.generate(cache / "ph2", model_id, "t", 2, 3)
    assert pydicom.dcmread(again / files[0].relative_to(split)).SOPInstanceUID == ds.SOPInstanceUID


def _tiny(spec_id: str, cache) -> tuple[dict, dict]:
    spec = defaults.SPECS[spec_id]
    table = defaults.manifest_table(spec)
    root = cache / "ph"
    dirs = {s: phantoms.generate(root, spec_id, s, n, seed)
            for s, n, seed in [("train", 8, 1), ("val", 4, 2)]}
    return table, dirs


@pytest.mark.parametrize("model_id,arch", [("cr-chest-nodule", "compact"),
                                           ("mr-brain-lesion", "compact3d")])
def test_train_export_onnx_matches_torch(cache, model_id, arch):
    table, dirs = _tiny(model_id, cache)
    ckpt = cache / "run" / "model.pt"
    cfg = train.TrainConfig(epochs=1, batch_size=8)
    pipeline.train_model(table, arch, 4, dirs["train"], dirs["val"], cfg, ckpt)
    model, table, _ = pipeline.load_checkpoint(ckpt)
    package = pipeline.export_package(model, table, cache / "pkg", {"seed": 1, "epochs": 1})
    assert manifest.read_manifest(package)["training"]["epochs"] == 1
    result = pipeline.evaluate(None, table, dirs["val"], pipeline.onnx_runner(package))
    assert set(result) >= {"overall", "by_sex", "by_age"}
    assert set(result["overall"]) >= {"accuracy", "sensitivity", "specificity", "precision",
                                      "auc_roc", "fpr", "fnr"}
    json.dumps(result)


def test_gradcam_matches_head_weights_map(cache):
    table, dirs = _tiny("cr-chest-nodule", cache)
    ckpt = cache / "run" / "model.pt"
    pipeline.train_model(table, "compact", 4, dirs["train"], dirs["val"],
                         train.TrainConfig(epochs=1, batch_size=8), ckpt)
    model, table, _ = pipeline.load_checkpoint(ckpt)
    case = next(c for c in phantoms.load_labels(dirs["train"])["cases"] if c["label_index"] == 1)
    prep = manifest.preparation_from_table(table)
    cam_path, exact_path = gradcam.run(model, prep, dirs["train"] / case["series_dir"], 1,
                                       cache / "cam.npy")
    cam, exact = np.load(cam_path), np.load(exact_path)
    assert cam.shape == (1, 128, 128) and exact.shape == (1, 32, 32)
    # pytorch-grad-cam's map is the exact map, upsampled and rescaled: they agree in shape.
    if exact.max() > 0:
        pooled = cam[0].reshape(32, 4, 32, 4).mean(axis=(1, 3))
        assert np.corrcoef(pooled.ravel(), exact[0].ravel())[0, 1] > 0.8
