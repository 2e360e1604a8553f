"""Exports torchvision ResNet50 and DenseNet121 (random weights, seed 0) to ONNX for benchmarks.

Input 1x3x224x224 named `image`, output `logits`, dynamic batch axis, opset 17, float32.
Usage: python bench/export_reference_nets.py OUT_DIR   (writes resnet50.onnx, densenet121.onnx)
The files are benchmark inputs only and are not committed.
"""

import argparse
from pathlib import Path

import torch
import torchvision


def export(name: str, out_dir: Path) -> Path:
    """One network with fresh random weights from seed 0, in eval mode."""
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None).eval()
    path = out_dir / f"{name}.onnx"
    torch.onnx.export(
        net, (torch.randn(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17,
        input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    a = p.parse_args()
    a.out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("resnet50", "densenet121"):
        print(export(name, a.out_dir))


if __name__ == "__main__":
    main()
