//! `argus analyze` and `argus models` as a user runs them: JSON per study, the heatmap PNG,
//! every input kind, and clear errors with a non-zero exit instead of panics.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn argus(args: &[&str], data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .env("ARGUS__INFERENCE__MODELS_DIR", common::repo().join("models"))
        .env("ARGUS__INFERENCE__ORT_LIBRARY", common::ort_library())
        .env("ARGUS__NODE__DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("argus runs")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON document per line")).collect()
}

fn assert_failed_cleanly(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(expected) && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn cr_file_gives_json_and_a_heatmap() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::testdata().join("dicom/cr_dx/RG3_UNCR_large_uncompressed.dcm");
    let png = dir.path().join("map.png");
    let out = argus(&["analyze", path(&file), "--heatmap", path(&png)], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let docs = json_lines(&out);
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    assert_eq!(doc["model"]["id"], "cr-chest-nodule");
    assert_eq!(doc["provider"], "cpu");
    assert!(doc["notice"].as_str().unwrap().contains("not for clinical use"));
    assert!(doc["confidence"].as_f64().unwrap() <= 1.0);
    assert_eq!(doc["location"]["coordinates"].as_array().unwrap().len(), 3);
    assert!(!doc["location"]["sop_instance_uid"].as_str().unwrap().is_empty());

    let image = image::open(&png).unwrap();
    assert_eq!((image.width(), image.height()), (1760, 1760));
}

#[test]
fn folder_nifti_and_png_inputs_are_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::testdata();
    let png = dir.path().join("input.png");
    image::GrayImage::from_fn(40, 30, |x, y| image::Luma([(x * 5 + y) as u8])).save(&png).unwrap();

    let folder = data.join("dicom/cr_dx/study_pcir_cr_3series_16px");
    let nifti = data.join("nifti/standard.nii.gz");
    let big_endian = data.join("nifti/anatomical.nii");
    let args = [
        "analyze",
        "--model",
        "cr-chest-nodule",
        path(&folder),
        path(&nifti),
        path(&big_endian),
        path(&png),
    ];
    let out = argus(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The folder holds a study of three series: one document each, then the three files.
    assert_eq!(json_lines(&out).len(), 6);
}

#[test]
fn modality_without_a_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::testdata().join("dicom/other/US1_UNCR.dcm");
    let out = argus(&["analyze", path(&file)], dir.path());
    assert_failed_cleanly(&out, "no loaded model serves modality `US`");
}

#[test]
fn unreadable_or_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.dcm");
    std::fs::write(&junk, b"not DICOM at all").unwrap();
    assert_failed_cleanly(&argus(&["analyze", path(&junk)], dir.path()), "junk.dcm");

    let missing = dir.path().join("missing.dcm");
    let out = argus(&["analyze", "--model", "cr-chest-nodule", path(&missing)], dir.path());
    assert_failed_cleanly(&out, "missing.dcm");

    let out = argus(&["analyze", "--model", "nope", path(&junk)], dir.path());
    assert_failed_cleanly(&out, "no model with id `nope`");
}

#[test]
fn missing_library_names_the_provisioning_script() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .arg("models")
        .env("ARGUS__INFERENCE__ORT_LIBRARY", dir.path().join("libonnxruntime.so"))
        .env("ARGUS__NODE__DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert_failed_cleanly(&out, "scripts/provision-onnxruntime.sh");
}

#[test]
fn models_lists_id_provider_and_intended_use() {
    let dir = tempfile::tempdir().unwrap();
    let out = argus(&["models"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let line = stdout.lines().find(|l| l.starts_with("cr-chest-nodule")).expect("listed");
    assert!(line.contains("CR,DX") && line.contains("1x128x128") && line.contains("cpu"), "{line}");
    assert!(line.contains("not validated"), "{line}");
}

#[test]
fn files_of_one_series_give_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::testdata().join("dicom/ct/series_pcir_ct_5slice_16px");
    let mut files: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let cr = common::testdata().join("dicom/cr_dx/DX_dog_highdicom.dcm");
    files.push(path(&cr).to_string());

    let mut args = vec!["analyze", "--model", "cr-chest-nodule"];
    args.extend(files.iter().map(String::as_str));
    let out = argus(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["characteristics"]["images"], 5);
}

#[test]
fn a_folder_holding_two_series_gives_one_document_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("mixed");
    std::fs::create_dir(&folder).unwrap();
    let ct = common::testdata().join("dicom/ct");
    for (prefix, series) in [("a", "series_liver_ct_3slice"), ("b", "series_gantry_tilt_4slice")] {
        for entry in std::fs::read_dir(ct.join(series)).unwrap() {
            let source = entry.unwrap().path();
            let name = format!("{prefix}_{}", source.file_name().unwrap().to_string_lossy());
            std::os::unix::fs::symlink(&source, folder.join(name)).unwrap();
        }
    }

    let out = argus(&["analyze", "--model", "ct-chest-nodule", path(&folder)], dir.path());

    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert_eq!(docs[0]["characteristics"]["images"], 3);
    assert_eq!(docs[1]["characteristics"]["images"], 4);
}

/// A model not validated for clinical use never raises priority, however high its score,
/// unless the deployment allows it for testing.
#[test]
fn unvalidated_models_raise_priority_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let models = common::models_with_thresholds(dir.path(), "ct-chest-nodule", 0.0);
    let file = common::testdata().join("dicom/ct/CT_small.dcm");

    let priority = |allowed: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_argus"))
            .args(["analyze", path(&file)])
            .env("ARGUS__INFERENCE__MODELS_DIR", &models)
            .env("ARGUS__INFERENCE__ORT_LIBRARY", common::ort_library())
            .env("ARGUS__INFERENCE__PRIORITY_FROM_UNVALIDATED", allowed)
            .env("ARGUS__NODE__DATA_DIR", dir.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        json_lines(&out)[0]["characteristics"]["priority"].clone()
    };

    assert_eq!(priority("false"), serde_json::Value::Bool(false));
    assert_eq!(priority("true"), serde_json::Value::Bool(true));
}
