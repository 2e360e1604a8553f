"""Times onnxruntime's Python binding on one ONNX file at batch 1 and 8.

Warm-up runs are excluded; the figure is the median of N timed runs, printed as JSON with
images per second. The input is random float32 of the model's shape (a dynamic batch axis is
set to the batch size; other dynamic axes must be given with --shape).
Usage: python bench/ort_python_bench.py MODEL.onnx --threads 2 --runs 20
"""

import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort


def session(path: str, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def input_shape(sess: ort.InferenceSession, batch: int, shape: list[int] | None) -> list[int]:
    """The first input's shape with the batch filled in (or --shape without the batch)."""
    if shape:
        return [batch, *shape]
    dims = sess.get_inputs()[0].shape
    if any(not isinstance(d, int) for d in dims[1:]):
        raise SystemExit(f"input has dynamic axes {dims}; pass --shape")
    return [batch, *dims[1:]]


def time_batch(sess, batch: int, shape, warmup: int, runs: int) -> dict:
    """Median seconds per run and images per second at one batch size."""
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal(input_shape(sess, batch, shape)).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"batch": batch, "median_s": median, "images_per_s": batch / median, "runs": runs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=1, help="intra_op_num_threads")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--shape", type=int, nargs="*", help="input shape without the batch axis")
    a = p.parse_args()
    sess = session(a.model, a.threads)
    results = [time_batch(sess, b, a.shape, a.warmup, a.runs) for b in (1, 8)]
    print(json.dumps({"model": a.model, "onnxruntime": ort.__version__, "threads": a.threads,
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
