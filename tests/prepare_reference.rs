//! Argus's preparation equals a pydicom + numpy reference (tests/reference/prepare_reference.py)
//! on real CT, MR, PET, MG, CR and DX files of the shared corpus, to within 1e-4 absolute in
//! the [0, 1] units of steps 2-5 of models/MANIFEST.md.

mod common;

use std::path::PathBuf;

use argus::analysis::load_series;
use argus::model::manifest::{Preparation, Voi};
use argus::prepare::{self, Frame, read_dicom};
use serde_json::Value;

/// Largest absolute difference allowed, after the VOI maps values to [0, 1].
const TOLERANCE: f32 = 1e-4;

fn voi_of(case: &Value) -> Voi {
    match &case["voi"] {
        Value::String(s) if s == "file" => Voi::File,
        Value::String(s) if s == "minmax" => Voi::MinMax,
        Value::Object(o) if o.contains_key("window") => Voi::Window {
            center: o["window"][0].as_f64().unwrap(),
            width: o["window"][1].as_f64().unwrap(),
        },
        Value::Object(o) => Voi::Percentiles {
            low: o["percentiles"][0].as_f64().unwrap(),
            high: o["percentiles"][1].as_f64().unwrap(),
        },
        other => panic!("unknown VOI {other}"),
    }
}

fn preparation(case: &Value) -> Preparation {
    Preparation {
        rescale: true,
        voi: voi_of(case),
        invert_monochrome1: true,
        channels: 1,
        height: case["height"].as_u64().unwrap() as usize,
        width: case["width"].as_u64().unwrap() as usize,
        depth: case["depth"].as_u64().map(|d| d as usize),
        mean: vec![0.0],
        std: vec![1.0],
    }
}

fn argus_tensor(case: &Value, data: &std::path::Path) -> Vec<f32> {
    let prep = preparation(case);
    let files: Vec<PathBuf> =
        case["files"].as_array().unwrap().iter().map(|f| data.join(f.as_str().unwrap())).collect();
    if case["volume"].as_bool().unwrap_or(false) {
        let study = load_series(&files, true).unwrap();
        return prepare::volume_tensor(&study.frames, &prep).iter().copied().collect();
    }
    let frames = Frame::from_dicom(read_dicom(&files[0], true).unwrap());
    prepare::prepare_frame(&frames[0], &prep).iter().copied().collect()
}

#[test]
fn preparation_matches_pydicom_and_numpy() {
    let data = common::testdata();
    let out = tempfile::tempdir().unwrap();
    common::run_python("prepare_reference.py", &[&data, out.path()]);
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("cases.json")).unwrap())
            .unwrap();

    let mut report = Vec::new();
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let expected = common::read_f32(&out.path().join(format!("{name}.f32")));
        let actual = argus_tensor(case, &data);
        assert_eq!(actual.len(), expected.len(), "{name}: size");
        let worst = actual.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        report.push(format!("{name}: max |diff| {worst:.2e}"));
        assert!(worst <= TOLERANCE, "{name}: max |diff| {worst} > {TOLERANCE}\n{report:#?}");
    }
    println!("{report:#?}");
}
