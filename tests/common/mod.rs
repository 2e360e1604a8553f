//! Helpers shared by the integration tests: where the shared test corpus is, the Python of the
//! model kit, and the provisioned ONNX Runtime library.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared corpus (shared/testdata/MANIFEST.md): `ARGUS_TESTDATA`, else `../shared/testdata`
/// beside the clone.
pub fn testdata() -> PathBuf {
    let path = std::env::var_os("ARGUS_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/testdata"));
    assert!(path.join("MANIFEST.md").is_file(), "test corpus not found at {}", path.display());
    path
}

/// The kit's Python: `ARGUS_PYTHON` if it has numpy, pydicom and onnxruntime, else the venv of
/// scripts/python-env.sh, which is run once (idempotent) when the venv is missing.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(find_python).clone()
}

fn find_python() -> PathBuf {
    let venv = std::env::var_os("ARGUS_VENV").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/argus/venv")
    });
    let configured = std::env::var_os("ARGUS_PYTHON").map(PathBuf::from);
    if let Some(found) = configured.iter().chain([&venv.join("bin/python")]).find(|p| usable(p)) {
        return found.clone();
    }

    let status = Command::new("bash").arg(repo().join("scripts/python-env.sh")).status();
    let python = venv.join("bin/python");
    assert!(
        status.map(|s| s.success()).unwrap_or(false) && usable(&python),
        "no Python with numpy, pydicom and onnxruntime: run `scripts/python-env.sh` (venv at {})",
        venv.display()
    );
    python
}

fn usable(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import numpy, pydicom, onnxruntime"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `scripts/provision-onnxruntime.sh` (idempotent) and returns the path it prints.
pub fn ort_library() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("scripts/provision-onnxruntime.sh"))
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "provisioning failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("a path");
    PathBuf::from(stdout.lines().last().expect("the script prints the path").trim())
}

/// Runs a Python script of tests/reference with arguments; panics with its stderr on failure.
pub fn run_python(script: &str, args: &[&Path]) {
    let out = Command::new(python())
        .arg(repo().join("tests/reference").join(script))
        .args(args)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Reads a raw little-endian float32 file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Writes a raw little-endian float32 file.
pub fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}
