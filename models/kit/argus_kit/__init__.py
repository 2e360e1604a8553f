"""Argus model kit: phantoms, training, evaluation and ONNX export for Argus model packages.

The preparation in `prepare` follows models/MANIFEST.md step by step, so a tensor built here for
training equals the tensor Argus builds from the same file at run time.
"""

__version__ = "0.2.0"
