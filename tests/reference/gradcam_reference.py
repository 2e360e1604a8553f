"""Grad-CAM of a slice model as pytorch-grad-cam scales it, for tests/inference.rs.

Usage: gradcam_reference.py MODEL.onnx INPUT.f32 HEIGHT,WIDTH CLASS ROWS COLS OUT.f32

Runs onnxruntime's Python binding on one (1, 1, HEIGHT, WIDTH) input, forms the map
ReLU(sum_k w[c, k] A_k) from the `features` and `head_weights` outputs, and scales and resizes it
to ROWS x COLS with pytorch-grad-cam's own `scale_cam_image` (min-max, then cv2.resize).
"""

import sys

import numpy as np
import onnxruntime as ort
from pytorch_grad_cam.utils.image import scale_cam_image

model, input_path, size, label, rows, cols, out = sys.argv[1:8]
height, width = (int(v) for v in size.split(","))
x = np.fromfile(input_path, dtype="<f4").reshape(1, 1, height, width)
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
features, weights = session.run(["features", "head_weights"], {"image": x})

cam = np.maximum(np.tensordot(weights[int(label)], features[0], axes=(0, 0)), 0)
scaled = scale_cam_image(cam[None], target_size=(int(cols), int(rows)))[0]
scaled.astype("<f4").tofile(out)
