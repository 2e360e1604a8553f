"""Reference results of the model kit, for tests/kit_acceptance.rs.

Usage: kit_reference.py OUT_DIR

Writes into OUT_DIR, with the kit's own code (models/kit):
- a held-out split of chest radiograph phantoms (seeded), with lesion masks;
- a small model trained by the kit for two epochs, exported as a package in OUT_DIR/models;
- for each held-out case, that model's PyTorch probabilities per image;
- for the first positive cases, pytorch-grad-cam's GradCAM of the finding class;
- OUT_DIR/cases.json describing all of it.
"""

import json
import os
import sys
from pathlib import Path

OUT = Path(sys.argv[1]).resolve()
os.environ["ARGUS_CACHE"] = str(OUT / "cache")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "kit"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from argus_kit import defaults, gradcam, manifest, phantoms, pipeline, train  # noqa: E402

MODEL = "cr-chest-nodule"
HELDOUT_CASES, HELDOUT_SEED = 60, 1001
GRADCAM_CASES = 4

torch.set_num_threads(1)


def small_model() -> tuple:
    """Trains a small model on a few phantoms and exports it; returns (model, table)."""
    table = defaults.manifest_table(defaults.SPECS[MODEL])
    train_dir = phantoms.generate(OUT / "ph", MODEL, "train", 24, 1)
    val_dir = phantoms.generate(OUT / "ph", MODEL, "val", 8, 2)
    checkpoint = OUT / "run" / "model.pt"
    pipeline.train_model(table, "compact", 4, train_dir, val_dir,
                         train.TrainConfig(epochs=2, batch_size=8), checkpoint)
    model, table, _ = pipeline.load_checkpoint(checkpoint)
    pipeline.export_package(model, table, OUT / "models" / MODEL, {"seed": 1, "epochs": 2})
    return model, table


def probabilities(model, prep, series: Path) -> list:
    """PyTorch softmax probabilities, one row per image of the series."""
    x = torch.from_numpy(gradcam.prepared_input(series, prep))
    with torch.no_grad():
        logits, _ = model(x)
    return torch.softmax(logits.double(), dim=1).tolist()


def main() -> None:
    model, table = small_model()
    prep = manifest.preparation_from_table(table)
    heldout = phantoms.generate(OUT / "ph", MODEL, "heldout", HELDOUT_CASES, HELDOUT_SEED)

    cases, cams = [], 0
    for row in phantoms.load_labels(heldout)["cases"]:
        series = heldout / row["series_dir"]
        cam = None
        if row["label_index"] == 1 and cams < GRADCAM_CASES:
            cam = str(gradcam.run(model, prep, series, 1, OUT / f"cam_{row['case_id']}.npy")[0])
            cams += 1
        cases.append({
            "case_id": row["case_id"],
            "series_dir": str(series),
            "mask": str(heldout / row["mask"]),
            "label_index": int(row["label_index"]),
            "torch_probabilities": probabilities(model, prep, series),
            "gradcam": cam,
        })

    (OUT / "cases.json").write_text(json.dumps({"model": MODEL, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
