"""The kit's steps wired together: phantoms, train, evaluate, export, and the reference build.

A checkpoint (`.pt`) holds the architecture, the manifest table and the weights, so every later
step (evaluate, export, gradcam) needs nothing else.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from . import data, defaults, export, localization, manifest, metrics, nets, phantoms, train

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """`${ARGUS_CACHE:-$HOME/.cache/argus}`: phantoms and checkpoints, never the repository."""
    return Path(os.environ.get("ARGUS_CACHE", Path.home() / ".cache" / "argus"))


def phantom_dir(model_id: str, split: str) -> Path:
    return cache_root() / "phantoms" / model_id / split


SPLITS = {"train": defaults.TRAIN_SEED, "val": defaults.TRAIN_SEED + 1, "heldout": defaults.HELDOUT_SEED}


def make_phantoms(spec: defaults.ModelSpec, splits=("train", "val", "heldout")) -> dict:
    """Writes the standard splits of a reference model (seeded; same files every time)."""
    counts = {"train": spec.train_cases, "val": spec.val_cases, "heldout": spec.heldout_cases}
    root = cache_root() / "phantoms"
    return {s: phantoms.generate(root, spec.id, s, counts[s], SPLITS[s]) for s in splits}


def finding_mask(table: dict) -> np.ndarray:
    return np.array([bool(label["finding"]) for label in table["labels"]])


def load_checkpoint(path: Path):
    """(model, manifest table, checkpoint dict) from a kit checkpoint."""
    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    model = nets.build(ckpt["arch"], ckpt["classes"], ckpt["channels"], ckpt["width"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt["manifest"], ckpt


def train_model(table: dict, arch: str, width: int, train_dir: Path, val_dir: Path,
                cfg: train.TrainConfig, out: Path) -> dict:
    """Trains on prepared phantoms and saves a checkpoint; returns the training summary."""
    train.seed_everything(cfg.seed)
    prep = manifest.preparation_from_table(table)
    tr, va = data.load_split(train_dir, prep), data.load_split(val_dir, prep)
    model = nets.build(arch, len(table["labels"]), prep.channels, width)
    summary = train.fit(model, tr, va, finding_mask(table), cfg)
    summary.update(train_cases=len(tr.cases), train_samples=len(tr.x), seed=cfg.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(arch=arch, width=width, classes=len(table["labels"]), channels=prep.channels,
                    manifest=table, summary=summary,
                    state_dict=model.cpu().state_dict()), str(out))
    return summary


def evaluate(model, table: dict, split_dir: Path, runner=None) -> dict:
    """Per-case metrics (slices aggregated by maximum, as Argus does) on a phantom split.

    `runner(x) -> probabilities` defaults to the PyTorch model; pass an onnxruntime one to
    evaluate an exported package.
    """
    prep = manifest.preparation_from_table(table)
    split = data.load_split(split_dir, prep)
    probs = runner(split.x) if runner else train.predict(model, split.x)
    case_probs = data.case_scores(probs, split)
    rows = split.cases
    out = metrics.report(split.case_labels, case_probs, finding_mask(table),
                         [r["sex"] for r in rows], [r["age"] for r in rows],
                         float(table["thresholds"]["positive"]))
    out["data"] = str(split_dir)
    return out


def onnx_runner(package: Path):
    """A runner for `evaluate` that uses a package's model.onnx through onnxruntime."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(Path(package) / "model.onnx"), providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        logits = np.concatenate([sess.run(["logits"], {"image": x[i : i + 64]})[0]
                                 for i in range(0, len(x), 64)])
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return run


def export_package(model, table: dict, out_dir: Path, training: dict | None = None) -> Path:
    """Writes model.onnx (checked against PyTorch) and model.toml into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prep = manifest.preparation_from_table(table)
    shape = (2, prep.channels) + ((prep.depth,) if prep.is_volume else ()) + (prep.height, prep.width)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    onnx_path = export.export(model, torch.from_numpy(x), out_dir / "model.onnx")
    diff = export.verify(model, onnx_path, x)
    log.info("exported %s, max |logit diff| vs PyTorch %.2e", onnx_path, diff)
    full = dict(table)
    if training:
        full["training"] = training
    manifest.write_manifest(out_dir / "model.toml", full)
    return out_dir


LOCALIZATION_LOSS = (
    "training also minimised the cross-entropy between each positive slice's lesion mask "
    "(from the phantoms, area per feature cell) and the spatial softmax of the class map "
    "sum_k w[c,k] A_k, weighted by mask_weight; the masks move with the image augmentation"
)


def _localization_entries(spec: defaults.ModelSpec, package: Path, heldout: Path,
                          cfg: train.TrainConfig) -> dict:
    """[training] keys on the lesion-mask loss and the held-out peak-in-mask rate (slice models)."""
    if spec.depth is not None:
        return {}
    peaks = localization.peak_in_mask(package, heldout)
    return {"localization_loss": LOCALIZATION_LOSS, "mask_weight": cfg.mask_weight,
            "heldout_true_positives": peaks["true_positives"],
            "heldout_peak_in_mask": round(peaks["rate"], 4) if peaks["rate"] is not None else 0.0}


def build_reference(spec: defaults.ModelSpec, models_dir: Path) -> dict:
    """Phantoms, training, held-out evaluation (through the exported ONNX) and the package."""
    splits = make_phantoms(spec)
    table = defaults.manifest_table(spec)
    arch = "compact3d" if spec.depth else "compact"
    ckpt = cache_root() / "runs" / spec.id / "model.pt"
    cfg = train.TrainConfig(epochs=spec.epochs, seed=defaults.TRAIN_SEED)
    summary = train_model(table, arch, spec.width, splits["train"], splits["val"], cfg, ckpt)
    model, _, _ = load_checkpoint(ckpt)
    package = export_package(model, table, models_dir / spec.id)
    result = evaluate(None, table, splits["heldout"], onnx_runner(package))
    training = {
        "data": f"synthetic phantoms from models/kit (kit.py phantoms --model {spec.id})",
        "arch": f"{arch} width {spec.width}", "seed": defaults.TRAIN_SEED,
        "train_cases": spec.train_cases, "val_cases": spec.val_cases,
        "heldout_cases": spec.heldout_cases, "heldout_seed": defaults.HELDOUT_SEED,
        "heldout_auc": round(result["overall"]["auc_roc"], 4), "epochs": summary["epochs"],
        **_localization_entries(spec, package, splits["heldout"], cfg),
        # Float reductions depend on the thread count: a rebuild is byte-identical with the same.
        "threads": torch.get_num_threads(),
    }
    export_package(model, table, package, training)
    (ckpt.parent / "heldout.json").write_text(json.dumps(result, indent=1))
    return training
