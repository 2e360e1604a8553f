#!/usr/bin/env bash
# Runs every check of the project from a fresh clone: installs what the tests need (system
# packages, ONNX Runtime's library, the Python environment), then formatting, lints, the Rust
# tests (unit, integration against dcmtk and Orthanc), and the Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-system-deps.sh
export ORT_DYLIB_PATH="$(scripts/provision-onnxruntime.sh | tail -n 1)"
if [[ -x scripts/python-env.sh ]]; then
    venv="$(scripts/python-env.sh | tail -n 1)"
    export ARGUS_PYTHON="$venv/bin/python"
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked --no-fail-fast

if [[ -n "${ARGUS_PYTHON:-}" && -d models/kit/tests ]]; then
    "$ARGUS_PYTHON" -m pytest -q models/kit/tests
fi
