"""Writes a tiny volume model package for tests (no weights of any value; not for any use).

Usage: make_volume_model.py OUT_DIR

OUT_DIR/vol-test/model.onnx: image (N, 1, 8, 16, 16) -> Conv3d(1->4, 3x3x3, pad 1) -> ReLU =
`features`; global average pooling and a linear layer give `logits` (N, 2); `head_weights` is
the linear layer's weight (2, 4), as models/MANIFEST.md's [gradcam] needs. Built with the onnx
helper API only, from a fixed seed. OUT_DIR/vol-test/model.toml is its manifest.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)
conv_w = rng.normal(0, 0.5, (4, 1, 3, 3, 3)).astype(np.float32)
conv_b = rng.normal(0, 0.1, (4,)).astype(np.float32)
head_w = rng.normal(0, 1.0, (2, 4)).astype(np.float32)
head_b = np.array([0.1, -0.1], np.float32)

nodes = [
    helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], pads=[1] * 6),
    helper.make_node("Relu", ["conv"], ["features"]),
    helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
    helper.make_node("Flatten", ["pooled"], ["flat"]),
    helper.make_node("Gemm", ["flat", "head_w", "head_b"], ["logits"], transB=1),
    helper.make_node("Identity", ["head_w"], ["head_weights"]),
]
graph = helper.make_graph(
    nodes,
    "vol_test",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 8, 16, 16])],
    [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2]),
        helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4, 8, 16, 16]),
        helper.make_tensor_value_info("head_weights", TensorProto.FLOAT, [2, 4]),
    ],
    [numpy_helper.from_array(a, n) for a, n in
     [(conv_w, "conv_w"), (conv_b, "conv_b"), (head_w, "head_w"), (head_b, "head_b")]],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)

out = Path(sys.argv[1]) / "vol-test"
out.mkdir(parents=True, exist_ok=True)
onnx.save(model, out / "model.onnx")
(out / "model.toml").write_text('''[model]
id = "vol-test"
version = "0.0.1"
name = "Volume test model (random weights)"
description = "A random 3D network for tests."
intended_use = "Tests of Argus only; random weights; not for any clinical use."
modalities = ["CT"]
kind = "volume"

[input]
name = "image"
layout = "NCDHW"
channels = 1
height = 16
width = 16
depth = 8
dtype = "float32"

[preparation]
rescale = true
window = { center = 40.0, width = 400.0 }
invert_monochrome1 = true
mean = [0.5]
std = [0.5]

[output]
name = "logits"
activation = "softmax"

[[labels]]
name = "normal"
finding = false
code = { scheme = "SCT", value = "17621005", meaning = "Normal" }

[[labels]]
name = "lesion"
finding = true
code = { scheme = "SCT", value = "52988006", meaning = "Lesion" }

[thresholds]
positive = 0.5
priority = 0.9

[gradcam]
activations = "features"
weights = "head_weights"
''')
