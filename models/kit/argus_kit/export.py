"""ONNX export with the three outputs Argus expects, and its check against PyTorch.

Outputs: `logits` (N, classes), `features` (the last convolutional activations) and
`head_weights` (classes, K), the linear head's weights as a constant. Opset 17, float32, a
dynamic batch axis. `verify` runs the file with onnxruntime and compares with PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .nets import head_weights

OPSET = 17


class ExportWrapper(nn.Module):
    """Adds the head weights as a third output (an Identity of the constant)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        logits, features = self.model(image)
        return logits, features, head_weights(self.model) * 1.0


def export(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Writes `path` from an eval-mode copy of `model` on the CPU."""
    model = model.cpu().eval().float()
    spatial = {0: "batch"}
    torch.onnx.export(
        ExportWrapper(model), (example.cpu().float(),), str(path), dynamo=False,
        input_names=["image"], output_names=["logits", "features", "head_weights"],
        dynamic_axes={"image": spatial, "logits": spatial, "features": spatial},
        opset_version=OPSET, do_constant_folding=True,
    )
    _name_head_output(path)
    _check(path)
    return Path(path)


def _name_head_output(path: Path) -> None:
    """Constant folding turns the third output into a bare constant with a generated name;
    an Identity node gives it the name `head_weights` again."""
    import onnx

    m = onnx.load(str(path))
    out = m.graph.output[2]
    if out.name != "head_weights":
        m.graph.node.append(onnx.helper.make_node("Identity", [out.name], ["head_weights"]))
        out.name = "head_weights"
        onnx.save(m, str(path))


def _check(path: Path) -> None:
    """onnx's checker, plus the output names Argus looks for."""
    import onnx

    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    names = [o.name for o in m.graph.output]
    if names != ["logits", "features", "head_weights"]:
        raise ValueError(f"unexpected ONNX outputs {names}")


def verify(model: nn.Module, path: Path, x: np.ndarray, tol: float = 1e-4) -> float:
    """Largest |logit difference| between onnxruntime and PyTorch on `x`; raises above `tol`."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, features, weights = sess.run(None, {"image": x.astype(np.float32)})
    model = model.cpu().eval()
    with torch.no_grad():
        ref, ref_features = model(torch.from_numpy(x))
    diff = float(np.abs(logits - ref.numpy()).max())
    if diff > tol or not np.allclose(weights, head_weights(model).detach().numpy()):
        raise AssertionError(f"ONNX differs from PyTorch: max |logit diff| {diff:.3g}")
    if features.shape != tuple(ref_features.shape):
        raise AssertionError(f"features shape {features.shape} != {tuple(ref_features.shape)}")
    return diff


def cam_from_outputs(features: np.ndarray, weights: np.ndarray, label: int) -> np.ndarray:
    """Argus's Grad-CAM: ReLU(sum_k w[label, k] * A_k) for each sample, at feature resolution."""
    return np.maximum(np.tensordot(weights[label], features, axes=([0], [1])), 0.0)
