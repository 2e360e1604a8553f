#!/usr/bin/env bash
# Benchmark, not a test: the time from a study's last instance to its results stored in Orthanc,
# split into quiet time, preparation and inference, writing, and sending, for 20 CT studies sent
# back to back; the throughput, and the overhead beyond inference.
#
# A real Orthanc is the PACS; storescu plays its forwarding (calling AE ORTHANC), so Argus sends
# the SR and secondary capture back to Orthanc. Everything runs in a network namespace of its
# own. Needs root, dcmtk, Orthanc and the ONNX Runtime library (scripts/test.sh installs them).
#
# Usage: bench/pipeline_latency.sh [STUDIES] [QUIET_SECS]     (defaults 20 and 2)
set -euo pipefail
cd "$(dirname "$0")/.."
studies="${1:-20}"
quiet="${2:-2}"

if [[ -z "${ARGUS_BENCH_NETNS:-}" ]]; then
    cargo build --release --locked --bin argus --example make_instances >&2
    export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/provision-onnxruntime.sh | tail -n 1)}"
    ns="argus-bench-$$"
    ip netns add "$ns"
    trap 'ip netns pids "$ns" | xargs -r kill -9; ip netns del "$ns"' EXIT
    ARGUS_BENCH_NETNS="$ns" ip netns exec "$ns" "$0" "$studies" "$quiet"
    exit
fi

ip link set lo up
work="$(mktemp -d /tmp/argus-bench.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export TCP_NODELAY=1
source bench/lib.sh

target/release/examples/make_instances ../shared/testdata/dicom/ct/WG04_CT1_UNC.dcm \
    "$work/in" $((studies * 5)) "$studies"

start_orthanc "$work/orthanc" >/dev/null

cat >"$work/argus.toml" <<TOML
[[peers]]
ae_title = "ORTHANC"
host = "127.0.0.1"
port = 4242
TOML
ARGUS__NODE__DATA_DIR="$work/argus" ARGUS__ASSEMBLY__QUIET_SECS="$quiet" RUST_LOG=warn \
    target/release/argus serve --config "$work/argus.toml" 2>"$work/argus.log" &
wait_port 11112

storescu -aet ORTHANC -aec ARGUS +sd 127.0.0.1 11112 "$work/in"

for _ in $(seq 1200); do
    done_count=$(curl -sf http://127.0.0.1:8080/jobs | python3 -c 'import json,sys; print(sum(j["stage"] in ("done","failed") for j in json.load(sys.stdin)))')
    [[ "$done_count" -ge "$studies" ]] && break
    sleep 0.5
done

curl -sf http://127.0.0.1:8080/jobs | python3 -c '
import json, statistics, sys
jobs = json.load(sys.stdin)
failed = [j for j in jobs if j["stage"] != "done"]
if failed:
    print("jobs not done:", [(j["stage"], j.get("error"), j.get("note")) for j in failed])
rows = []
for j in jobs:
    t = j["timings"]
    total = j["updated_ms"] - j["last_instance_ms"]
    rows.append(dict(total=total, quiet=t.get("quiet_ms", 0), infer=t.get("inference_ms", 0),
                     write=t.get("report_ms", 0), send=t.get("send_ms", 0)))
def med(k): return statistics.median(r[k] for r in rows)
def p90(k): return sorted(r[k] for r in rows)[int(0.9 * (len(rows) - 1))]
print(f"{len(rows)} studies; milliseconds from the last instance to results stored in Orthanc")
for k in ("total", "quiet", "infer", "write", "send"):
    print(f"  {k:6s} median {med(k):8.0f}   p90 {p90(k):8.0f}")
span = (max(j["updated_ms"] for j in jobs) - min(j["last_instance_ms"] for j in jobs)) / 1000
print(f"throughput: {len(rows) / span * 60:.1f} studies per minute over {span:.1f} s")
overhead = statistics.median(r["total"] - r["quiet"] - r["infer"] for r in rows)
print(f"overhead beyond quiet time and inference (writing, sending, scheduling): median {overhead:.0f} ms")
'
