#!/usr/bin/env bash
# Argus against onnxruntime's Python binding, and Argus's preparation against pydicom + numpy.
#
# Inference: ResNet50 and DenseNet121 from torchvision with random weights at 224x224
# (bench/export_reference_nets.py), the same ONNX file, the same intra-op threads, batch 1 and 8,
# warm-up excluded, each side in a fresh process, alternated ROUNDS times; the figure is the
# median images/s of each side and their ratio Argus / Python (target >= 0.97).
# Preparation: the CT and MR series of shared/testdata (uncompressed), Argus's median time
# against pydicom + numpy's (target: Python / Argus >= 3).
# Read shared/BENCH_NOTES.md before quoting figures. Work files go to bench/.work (ignored).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
work="$repo/bench/.work"
threads="${THREADS:-2}"
rounds="${ROUNDS:-3}"
runs="${RUNS:-10}"
data="${ARGUS_TESTDATA:-$repo/../shared/testdata}"
mkdir -p "$work"

python="$(bash scripts/python-env.sh | tail -n 1)/bin/python"
export ORT_DYLIB_PATH="$(bash scripts/provision-onnxruntime.sh | tail -n 1)"
cargo build --quiet --release --bin argus-bench
bench="$repo/target/release/argus-bench"

for net in resnet50 densenet121; do
    [[ -s "$work/$net.onnx" ]] || "$python" bench/export_reference_nets.py "$work" >&2
done

# The tensors ort_python_bench.py feeds (numpy's default_rng(0) normal), so both sides see the
# same input.
"$python" - "$work" <<'PY'
import sys
import numpy as np
for batch in (1, 8):
    x = np.random.default_rng(0).standard_normal([batch, 3, 224, 224]).astype("<f4")
    x.tofile(f"{sys.argv[1]}/input-b{batch}.f32")
PY

for net in resnet50 densenet121; do
    for round in $(seq "$rounds"); do
        "$python" bench/ort_python_bench.py "$work/$net.onnx" --threads "$threads" --runs "$runs" \
            > "$work/$net.python.$round.json"
        "$bench" infer "$work/$net.onnx" --threads "$threads" --runs "$runs" --inputs "$work" \
            > "$work/$net.argus.$round.json"
    done
done

ct="$data/dicom/ct/series_liver_ct_3slice $data/dicom/ct/series_gantry_tilt_4slice"
mr="$data/dicom/mr/series_dcm4che_mr_16slice $data/dicom/mr/series_philips_768px_8inst"
for round in $(seq "$rounds"); do
    # shellcheck disable=SC2086
    "$python" bench/prepare_python.py --runs 5 $ct $mr > "$work/prepare.python.$round.jsonl"
    # shellcheck disable=SC2086
    "$bench" prepare --runs 5 $ct $mr > "$work/prepare.argus.$round.jsonl"
done

"$python" - "$work" "$rounds" "$threads" <<'PY'
import json, statistics, sys
from pathlib import Path

work, rounds, threads = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
print(f"inference, intra-op threads {threads}, {rounds} alternated rounds, median images/s")
for net in ("resnet50", "densenet121"):
    for batch_index, batch in enumerate((1, 8)):
        speed = {}
        for side in ("python", "argus"):
            values = [json.loads((work / f"{net}.{side}.{r}.json").read_text())["results"]
                      [batch_index]["images_per_s"] for r in range(1, rounds + 1)]
            speed[side] = statistics.median(values)
        ratio = speed["argus"] / speed["python"]
        print(f"  {net:12} batch {batch}: python {speed['python']:7.2f}  argus "
              f"{speed['argus']:7.2f}  ratio {ratio:.3f} (target >= 0.97)")

print("preparation, median seconds per series (read, decode, order, prepare)")
def load(side):
    out = {}
    for r in range(1, rounds + 1):
        for line in (work / f"prepare.{side}.{r}.jsonl").read_text().splitlines():
            doc = json.loads(line)
            out.setdefault(doc["folder"], []).append(doc["median_s"])
    return {k: statistics.median(v) for k, v in out.items()}
python, argus = load("python"), load("argus")
for folder in python:
    name = Path(folder).name
    print(f"  {name:32} python {python[folder]:.4f}  argus {argus[folder]:.4f}  "
          f"speed-up {python[folder] / argus[folder]:.1f}x (target >= 3)")
PY
