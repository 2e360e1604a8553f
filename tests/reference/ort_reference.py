"""Runs a model with onnxruntime's Python binding on a given input, for tests/ort_reference.rs.

Usage: ort_reference.py MODEL.onnx INPUT_NAME INPUT.f32 SHAPE OUT_DIR THREADS

INPUT.f32 is raw little-endian float32 of SHAPE (comma-separated). Every output is written as
OUT_DIR/<name>.f32 and its shape into OUT_DIR/shapes.json. Same thread count as Argus.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

model, input_name, input_path, shape, out, threads = sys.argv[1:7]
options = ort.SessionOptions()
options.intra_op_num_threads = int(threads)
options.inter_op_num_threads = 1
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

x = np.fromfile(input_path, dtype="<f4").reshape([int(d) for d in shape.split(",")])
names = [o.name for o in session.get_outputs()]
outputs = session.run(names, {input_name: x})

out = Path(out)
out.mkdir(parents=True, exist_ok=True)
shapes = {}
for name, value in zip(names, outputs):
    value = np.asarray(value, dtype="<f4")
    value.tofile(out / f"{name}.f32")
    shapes[name] = list(value.shape)
(out / "shapes.json").write_text(json.dumps(shapes))
