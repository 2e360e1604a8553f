"""Grad-CAM of a kit checkpoint on one file, with pytorch-grad-cam, for Argus's cross-check.

Saves pytorch-grad-cam's map (input resolution, scaled to [0, 1] per image) as `<out>.npy` and
the exact map at feature resolution, ReLU(sum_k w[c,k] A_k) as Argus computes it from the ONNX
outputs, as `<out>_features.npy`. For a slice model on a multi-slice input, one map per slice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import io, prepare
from .export import cam_from_outputs
from .nets import head_weights


class _LogitsOnly(nn.Module):
    """pytorch-grad-cam expects a model returning only the scores."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)[0]


def _target_layer(model: nn.Module) -> nn.Module:
    """The module whose output is the `features` output (the attention or last stage)."""
    return model.attention if hasattr(model, "attention") else model.body


def prepared_input(path: Path, prep) -> np.ndarray:
    """The model input for a file or series folder: (N, C, H, W) or (1, C, D, H, W)."""
    images = io.read_any(path, prep.rescale)
    if prep.is_volume:
        return prepare.prepare_volume(images, prep)[None]
    return np.stack([prepare.prepare_slice(im, prep) for im in images])


def run(model: nn.Module, prep, path: Path, label: int, out: Path) -> tuple[Path, Path]:
    """Computes both maps for class `label` and writes them beside `out` (a .npy path)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = model.cpu().eval()
    x = torch.from_numpy(prepared_input(path, prep))
    with GradCAM(model=_LogitsOnly(model), target_layers=[_target_layer(model)]) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(label)] * len(x))
    with torch.no_grad():
        _, features = model(x)
    exact = cam_from_outputs(features.numpy(), head_weights(model).detach().numpy(), label)
    out = Path(out).with_suffix(".npy")
    exact_path = out.with_name(out.stem + "_features.npy")
    np.save(out, maps.astype(np.float32))
    np.save(exact_path, exact.astype(np.float32))
    return out, exact_path
