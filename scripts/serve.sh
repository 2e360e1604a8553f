#!/usr/bin/env bash
# Runs the node on its embedded defaults (or the settings file given with --config), after
# provisioning ONNX Runtime's library on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/provision-onnxruntime.sh | tail -n 1)}"
exec cargo run --release --locked -- serve "$@"
