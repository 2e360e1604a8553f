#!/usr/bin/env bash
# Installs, idempotently, the system packages Argus's tests talk to: dcmtk (real DICOM peers and
# SR checker), dicom3tools (dciodvfy), Orthanc with its DICOMweb plugin (the PACS of the
# integration tests), cmake (to build CharLS for JPEG-LS) and iproute2 (network namespaces).
set -euo pipefail

need=()
command -v storescu >/dev/null || need+=(dcmtk)
command -v dciodvfy >/dev/null || need+=(dicom3tools)
command -v Orthanc >/dev/null || need+=(orthanc)
[[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]] || need+=(orthanc-dicomweb)
command -v cmake >/dev/null || need+=(cmake)
command -v ip >/dev/null || need+=(iproute2)

if ((${#need[@]} == 0)); then
    exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
    sudo="sudo"
fi
echo "installing: ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
