#!/usr/bin/env bash
# Benchmark, not a test: C-STORE throughput of Argus against dcmtk's storescp and Orthanc.
#
# storescu sends 1,000 real-size CT instances (fresh UIDs, ten studies) over loopback, in one
# association, to each receiver in turn; the receivers alternate over several rounds and the
# medians are compared. Argus and Orthanc sync every instance before answering; storescp does
# not. Studies are not analysed during the run (the quiet time is an hour). Everything runs in a network namespace of its own (Orthanc 1.10 listens on all
# addresses). Needs root, dcmtk and Orthanc (scripts/install-system-deps.sh).
#
# Usage: bench/store_throughput.sh [ROUNDS]    (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"

if [[ -z "${ARGUS_BENCH_NETNS:-}" ]]; then
    cargo build --release --locked --bin argus --example make_instances >&2
    ns="argus-bench-$$"
    ip netns add "$ns"
    trap 'ip netns pids "$ns" | xargs -r kill -9; ip netns del "$ns"' EXIT
    ARGUS_BENCH_NETNS="$ns" ip netns exec "$ns" "$0" "$rounds"
    exit
fi

ip link set lo up
work="$(mktemp -d /tmp/argus-bench.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export TCP_NODELAY=1

target/release/examples/make_instances ../shared/testdata/dicom/ct/WG04_CT1_UNC.dcm \
    "$work/in" 1000 10
count=$(ls "$work/in" | wc -l)

source bench/lib.sh

send() { # port called-ae -> seconds
    local start end
    start=$(date +%s.%N)
    storescu -aec "$2" +sd 127.0.0.1 "$1" "$work/in" 2>"$work/storescu.err"
    end=$(date +%s.%N)
    if grep -q "^E:" "$work/storescu.err"; then cat "$work/storescu.err" >&2; exit 1; fi
    echo "$end - $start" | bc -l
}

run_argus() { # [data dir]
    local data="${1:-$work/argus}"
    rm -rf "$data"
    ARGUS__NODE__DATA_DIR="$data" ARGUS__DICOM__PORT=11112 ARGUS__HTTP__PORT=8080 \
        ARGUS__ASSEMBLY__QUIET_SECS=3600 RUST_LOG=warn \
        target/release/argus serve 2>"$work/argus.log" &
    local pid=$!
    wait_port 11112
    send 11112 ARGUS
    kill $pid; wait $pid 2>/dev/null || true
    rm -rf "$data"
}

# Argus with its data directory in memory, where a sync returns at once: what Argus costs
# without the durability it promises. A diagnostic, not a configuration to run.
run_argus_tmpfs() {
    run_argus "/dev/shm/argus-bench-$$"
}

run_storescp() {
    rm -rf "$work/storescp"; mkdir -p "$work/storescp"
    storescp -od "$work/storescp" 11113 &
    local pid=$!
    wait_port 11113
    send 11113 STORESCP
    kill $pid; wait $pid 2>/dev/null || true
}

run_orthanc() {
    local pid
    pid=$(start_orthanc "$work/orthanc")
    send 4242 ORTHANC
    kill $pid; wait $pid 2>/dev/null || true
}

declare -A times
for round in $(seq "$rounds"); do
    for who in argus storescp orthanc argus_tmpfs; do
        t=$(run_$who)
        times[$who]+="$t "
        printf 'round %d %-11s %6.2f s  %7.1f instances/s\n' "$round" "$who" "$t" "$(echo "$count / $t" | bc -l)" >&2
    done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
a=$(median "${times[argus]}"); s=$(median "${times[storescp]}"); o=$(median "${times[orthanc]}")
m=$(median "${times[argus_tmpfs]}")
printf '\n%d instances, median of %d rounds (sync: argus yes, orthanc yes, storescp no)\n' "$count" "$rounds"
printf 'argus     %7.1f instances/s\n' "$(echo "$count / $a" | bc -l)"
printf 'storescp  %7.1f instances/s\n' "$(echo "$count / $s" | bc -l)"
printf 'orthanc   %7.1f instances/s\n' "$(echo "$count / $o" | bc -l)"
printf 'argus / storescp = %.2f   argus / orthanc = %.2f\n' "$(echo "$s / $a" | bc -l)" "$(echo "$o / $a" | bc -l)"
printf '\ndiagnostic, not a target: argus with its data directory on tmpfs (syncs return at once)\n'
printf 'argus-tmpfs %5.1f instances/s   argus-tmpfs / storescp = %.2f\n' "$(echo "$count / $m" | bc -l)" "$(echo "$s / $m" | bc -l)"
