"""Command line: phantoms, train, evaluate, export, gradcam, build-defaults.

Run as `python models/kit/kit.py <command> --help` (or `python -m argus_kit` from models/kit).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from . import defaults, manifest, pipeline, train

MODELS_DIR = Path(__file__).resolve().parents[2]  # models/


def _spec(model_id: str) -> defaults.ModelSpec:
    if model_id not in defaults.SPECS:
        sys.exit(f"unknown model {model_id!r}; one of {', '.join(defaults.SPECS)}")
    return defaults.SPECS[model_id]


def cmd_phantoms(a) -> None:
    """Standard splits (train, val, heldout) of a reference model, or one custom split."""
    ids = list(defaults.SPECS) if a.model == "all" else [a.model]
    for model_id in ids:
        spec = _spec(model_id)
        if a.count is None:
            out = pipeline.make_phantoms(spec, a.split or ("train", "val", "heldout"))
        else:
            root = pipeline.cache_root() / "phantoms"
            split = (a.split or ["custom"])[0]
            out = {split: pipeline.phantoms.generate(root, model_id, split, a.count, a.seed)}
        for split, path in out.items():
            print(f"{model_id} {split}: {path}")


def _table(a) -> dict:
    """The manifest a model is trained for: a package's model.toml or a reference spec."""
    if a.manifest:
        table = manifest.read_manifest(Path(a.manifest))
        table.pop("training", None)
        return table
    return defaults.manifest_table(_spec(a.model))


def cmd_train(a) -> None:
    table = _table(a)
    model_id = table["model"]["id"]
    cfg = train.TrainConfig(epochs=a.epochs, seed=a.seed, batch_size=a.batch_size,
                            mask_weight=a.mask_weight)
    tr = Path(a.train or pipeline.phantom_dir(model_id, "train"))
    va = Path(a.val or pipeline.phantom_dir(model_id, "val"))
    out = Path(a.out or pipeline.cache_root() / "runs" / model_id / "model.pt")
    summary = pipeline.train_model(table, a.arch, a.width, tr, va, cfg, out)
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    print(out)


def cmd_evaluate(a) -> None:
    """Held-out metrics of a checkpoint (PyTorch) or of a package (its ONNX, onnxruntime)."""
    if a.package:
        table = manifest.read_manifest(Path(a.package))
        model, runner = None, pipeline.onnx_runner(Path(a.package))
    else:
        model, table, _ = pipeline.load_checkpoint(Path(a.checkpoint))
        runner = None
    split = Path(a.data or pipeline.phantom_dir(table["model"]["id"], "heldout"))
    result = pipeline.evaluate(model, table, split, runner)
    text = json.dumps(result, indent=1)
    if a.json:
        Path(a.json).write_text(text)
    print(text)


def cmd_export(a) -> None:
    model, table, ckpt = pipeline.load_checkpoint(Path(a.checkpoint))
    summary = ckpt["summary"]
    training = {"data": "phantoms from models/kit", "train_cases": summary["train_cases"],
                "seed": summary["seed"], "epochs": summary["epochs"]}
    print(pipeline.export_package(model, table, Path(a.out), training))


def cmd_gradcam(a) -> None:
    from . import gradcam

    model, table, _ = pipeline.load_checkpoint(Path(a.checkpoint))
    prep = manifest.preparation_from_table(table)
    for path in gradcam.run(model, prep, Path(a.input), a.label, Path(a.out)):
        print(path)


def cmd_build_defaults(a) -> None:
    """Regenerates the reference packages (all, or those named) into models/<id>/."""
    results = {}
    for model_id in a.only or list(defaults.SPECS):
        results[model_id] = pipeline.build_reference(_spec(model_id), Path(a.models_dir))
        print(model_id, json.dumps(results[model_id]), flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kit.py", description=__doc__)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("phantoms", help="write labelled DICOM phantoms to the cache")
    s.add_argument("--model", default="all", help="reference model id, or 'all'")
    s.add_argument("--split", action="append", help="train, val, heldout (repeatable)")
    s.add_argument("--count", type=int, help="custom split size (with --seed)")
    s.add_argument("--seed", type=int, default=7)
    s.set_defaults(func=cmd_phantoms)

    s = sub.add_parser("train", help="train on phantom splits, save a checkpoint")
    s.add_argument("--model", default="ct-chest-nodule")
    s.add_argument("--manifest", help="train for this model.toml instead of a reference spec")
    s.add_argument("--arch", default="compact", choices=pipeline.nets.ARCHITECTURES)
    s.add_argument("--width", type=int, default=8)
    s.add_argument("--epochs", type=int, default=50)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--seed", type=int, default=defaults.TRAIN_SEED)
    s.add_argument("--mask-weight", type=float, default=train.TrainConfig.mask_weight,
                   help="weight of the lesion-mask localization loss (slice models; 0: off)")
    s.add_argument("--train")
    s.add_argument("--val")
    s.add_argument("--out")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="metrics JSON on a phantom split")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--checkpoint")
    g.add_argument("--package", help="a models/<id> folder: evaluates its ONNX")
    s.add_argument("--data", help="split folder (default: the model's heldout split)")
    s.add_argument("--json", help="also write the JSON here")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("export", help="checkpoint to model.onnx + model.toml")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("gradcam", help="pytorch-grad-cam map of a file, saved as .npy")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--input", required=True, help="DICOM file, series folder, NIfTI, PNG/JPEG")
    s.add_argument("--label", type=int, default=1)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_gradcam)

    s = sub.add_parser("build-defaults", help="rebuild the reference packages reproducibly")
    s.add_argument("--only", action="append", help="model id (repeatable)")
    s.add_argument("--models-dir", default=str(MODELS_DIR))
    s.set_defaults(func=cmd_build_defaults)
    return p


def main(argv=None) -> None:
    a = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(a.threads)
    a.func(a)
