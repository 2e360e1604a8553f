//! A missing or wrong ONNX Runtime library is an error naming the provisioning script, never a
//! panic. One test in its own binary: ONNX Runtime loads once per process.

mod common;

use argus::infer::Runtime;

#[test]
fn missing_and_wrong_libraries_are_errors_then_the_provisioned_one_loads() {
    let err = Runtime::init(Some("/nonexistent/libonnxruntime.so".as_ref())).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("scripts/provision-onnxruntime.sh") && text.contains("/nonexistent"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared library").unwrap();
    let err = Runtime::init(Some(&fake)).unwrap_err().to_string();
    assert!(
        err.contains("scripts/provision-onnxruntime.sh") && err.contains("cannot load"),
        "{err}"
    );

    let runtime = Runtime::init(Some(&common::ort_library())).unwrap();
    assert!(runtime.library().ends_with("libonnxruntime.so.1.31.1"));
}
