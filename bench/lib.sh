# Shell functions shared by the benchmarks (sourced, not run).

# Waits until something listens on 127.0.0.1:PORT, or gives up after 30 s.
wait_port() {
    for _ in $(seq 600); do
        (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return
        sleep 0.05
    done
    echo "port $1 never opened" >&2
    exit 1
}

# Starts Orthanc with its storage in DIR (DICOM 4242, HTTP 8042) and prints its process id.
start_orthanc() {
    local dir="$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    cat >"$dir.json" <<JSON
{ "Name": "BENCH", "StorageDirectory": "$dir", "IndexDirectory": "$dir",
  "HttpPort": 8042, "DicomPort": 4242, "DicomAet": "ORTHANC", "DicomCheckCalledAet": false,
  "RemoteAccessAllowed": true, "AuthenticationEnabled": false }
JSON
    Orthanc "$dir.json" >/dev/null 2>"$dir.log" &
    echo $!
    wait_port 4242 >&2
    wait_port 8042 >&2
}
