#!/usr/bin/env bash
# Creates (once) the Python environment of the model kit, outside the repository.
#
# The venv lives at ${ARGUS_VENV:-$HOME/.cache/argus/venv}. A stamp file inside it holds the
# sha256 of models/kit/requirements.txt; when the hash matches, the script does nothing, so a
# second run is instant. The last line printed is the venv path.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$repo/models/kit/requirements.txt"
venv="${ARGUS_VENV:-$HOME/.cache/argus/venv}"
stamp="$venv/.argus-requirements.sha256"
python="${ARGUS_PYTHON:-python3.11}"

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$venv"
    exit 0
fi

# The interpreter must be 3.11: the pins are chosen and verified for it.
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "python-env: $python is not Python 3.11 (set ARGUS_PYTHON)" >&2
    exit 1
fi

mkdir -p "$(dirname "$venv")"
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$requirements"

# Written last, so an interrupted install is retried on the next run.
echo "$want" > "$stamp"
echo "$venv"
