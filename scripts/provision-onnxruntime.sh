#!/usr/bin/env bash
# Provisions ONNX Runtime's shared library for Argus, idempotently.
#
# ort is built with `load-dynamic`, so Argus opens libonnxruntime.so at run time. The library is
# taken from PyPI's onnxruntime wheel (the only place these machines can download it from) and
# kept outside the repository, in ${ARGUS_CACHE:-$HOME/.cache/argus}/onnxruntime/<version>/.
# Prints the library's path on its last line.
set -euo pipefail

version="${ORT_VERSION:-1.31.1}"
cache="${ARGUS_CACHE:-$HOME/.cache/argus}"
dest="$cache/onnxruntime/$version"
lib="$dest/libonnxruntime.so.$version"

if [[ -s "$lib" ]]; then
    echo "$lib"
    exit 0
fi

mkdir -p "$dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$work" "onnxruntime==$version" >&2

wheel="$(ls "$work"/onnxruntime-"$version"-*.whl | head -n 1)"
python3 - "$wheel" "$dest" "$version" <<'PY'
import sys, zipfile, os
wheel, dest, version = sys.argv[1:]
name = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as z:
    data = z.read(name)
tmp = os.path.join(dest, f".libonnxruntime.so.{version}.tmp")
with open(tmp, "wb") as f:
    f.write(data)
os.replace(tmp, os.path.join(dest, f"libonnxruntime.so.{version}"))
PY
ln -sf "libonnxruntime.so.$version" "$dest/libonnxruntime.so"
echo "$lib"
