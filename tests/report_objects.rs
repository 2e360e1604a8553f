//! Writes the SR and heatmap capture for real CT, MR, PET, MG, CR, multi-frame and volume
//! sources from the shared test corpus (`common::testdata`, see its MANIFEST.md), then checks every object with dcmtk's `dcmdump` and `dsrdump`, with
//! dicom3tools' `dciodvfy`, and with highdicom and pydicom (tests/python/test_sr_highdicom.py).
//!
//! The objects go to `$ARGUS_REPORT_OUT` when set (kept for inspection), else a temporary
//! folder. Analyses are made by hand: fixed probabilities and a Gaussian heatmap. Sources with a
//! non-ASCII patient name are made in memory from real files, since the corpus has none.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use argus::findings::{Analysis, Code, Finding, Heatmap, Location, ModelRef, SourceImage};
use argus::report::{self, PredecessorRef, ReportSettings};
use common::{require_tool, testdata};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use ndarray::{Array2, Array3};
use serde_json::{Value, json};

const UID_ROOT: &str = "2.25";

fn load(relative: &str) -> InMemDicomObject {
    let path = testdata().join("dicom").join(relative);
    dicom_object::open_file(&path)
        .unwrap_or_else(|e| panic!("cannot read test file {}: {e}", path.display()))
        .into_inner()
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    argus::store::tags::text_of(obj, tag)
}

fn number(obj: &InMemDicomObject, tag: dicom_core::Tag, default: usize) -> usize {
    text(obj, tag).parse().unwrap_or(default)
}

fn source_image(obj: &InMemDicomObject) -> SourceImage {
    SourceImage {
        sop_class_uid: text(obj, tags::SOP_CLASS_UID),
        sop_instance_uid: text(obj, tags::SOP_INSTANCE_UID),
        series_uid: text(obj, tags::SERIES_INSTANCE_UID),
        frames: number(obj, tags::NUMBER_OF_FRAMES, 1) as u32,
    }
}

fn size(obj: &InMemDicomObject) -> (usize, usize) {
    (number(obj, tags::ROWS, 0), number(obj, tags::COLUMNS, 0))
}

fn model() -> ModelRef {
    ModelRef {
        id: "argus-demo-classifier".into(),
        version: "1.2.0".into(),
        name: "Demo classifier".into(),
        intended_use: "Research demonstration on public test images; not for clinical use.".into(),
        provider: "cpu".into(),
    }
}

fn nodule() -> Code {
    Code { scheme: "SCT".into(), value: "27925004".into(), meaning: "Nodule".into() }
}

/// A finding at (column, row) of frame `frame` of `image`, with a box when `boxed`.
fn finding(p: f32, image: &SourceImage, frame: u32, at: [f32; 2], boxed: bool) -> Finding {
    let half = 6.0f32;
    let location = Location {
        sop_instance_uid: image.sop_instance_uid.clone(),
        sop_class_uid: image.sop_class_uid.clone(),
        frame,
        point: at,
        bbox: boxed.then_some([at[0] - half, at[1] - half, at[0] + half, at[1] + half]),
        patient_xyz: None,
    };
    Finding {
        label: "nodule".into(),
        code: nodule(),
        probability: p,
        present: p >= 0.5,
        priority: p >= 0.9,
        location: Some(location),
    }
}

/// A Gaussian blob at `at` over a grey ramp, on `slices` planes of `rows` x `cols`.
fn heatmap(
    source: &SourceImage,
    frame: u32,
    slices: usize,
    (rows, cols): (usize, usize),
    at: [f32; 2],
) -> Heatmap {
    let sigma = (rows.min(cols) as f32 / 8.0).max(2.0);
    let blob = |r: usize, c: usize| {
        let (dr, dc) = (r as f32 - at[1], c as f32 - at[0]);
        (-(dr * dr + dc * dc) / (2.0 * sigma * sigma)).exp()
    };
    let windowed = Array3::from_shape_fn((slices, rows, cols), |(_, r, c)| {
        (r + c) as f32 / (rows + cols) as f32
    });
    let maps = Array3::from_shape_fn((slices, rows, cols), |(_, r, c)| blob(r, c));
    Heatmap { source: source.clone(), frame, windowed, maps, raw: Array2::from_elem((7, 7), 0.5) }
}

fn analysis(
    study: &InMemDicomObject,
    sources: Vec<SourceImage>,
    findings: Vec<Finding>,
    heat: Option<Heatmap>,
) -> Analysis {
    Analysis {
        study_uid: text(study, tags::STUDY_INSTANCE_UID),
        model: model(),
        findings,
        sources,
        heatmap: heat,
    }
}

/// One case: its analysis, the source for patient and study, an optional predecessor, and
/// what the Python checks expect.
struct Case {
    name: &'static str,
    analysis: Analysis,
    source: InMemDicomObject,
    predecessor: Option<PredecessorRef>,
    expect: Value,
}

/// A single image with a finding present (box or point) or absent, and its heatmap.
fn single(name: &'static str, file: &str, p: f32, boxed: bool) -> Case {
    let obj = load(file);
    single_from(name, obj, p, boxed)
}

fn single_from(name: &'static str, obj: InMemDicomObject, p: f32, boxed: bool) -> Case {
    let image = source_image(&obj);
    let (rows, cols) = size(&obj);
    let at = [cols as f32 / 2.0, rows as f32 / 3.0];
    let heat = heatmap(&image, 1, 1, (rows, cols), at);
    let found = finding(p, &image, 1, at, boxed);
    let region = match (found.present, boxed) {
        (false, _) => Value::Null,
        (true, true) => json!("POLYLINE"),
        (true, false) => json!("POINT"),
    };
    Case {
        name,
        analysis: analysis(&obj, vec![image], vec![found], Some(heat)),
        expect: expectation(&obj, region, false, [1, rows, cols]),
        source: obj,
        predecessor: None,
    }
}

fn expectation(obj: &InMemDicomObject, region: Value, three_d: bool, sc: [usize; 3]) -> Value {
    json!({
        "region": region,
        "three_d": three_d,
        "sc_shape": sc,
        "patient_name": text(obj, tags::PATIENT_NAME),
        "patient_id": text(obj, tags::PATIENT_ID),
        "study_uid": text(obj, tags::STUDY_INSTANCE_UID),
    })
}

/// An Enhanced MR with a finding on frame 4.
fn multi_frame() -> Case {
    let obj = load("multiframe/emri_small.dcm");
    let image = source_image(&obj);
    let (rows, cols) = size(&obj);
    let at = [20.0, 30.0];
    let heat = heatmap(&image, 4, 1, (rows, cols), at);
    let mut expect = expectation(&obj, json!("POLYLINE"), false, [1, rows, cols]);
    expect["frame"] = json!(4);
    Case {
        name: "enhanced_mr_multiframe",
        analysis: analysis(
            &obj,
            vec![image.clone()],
            vec![finding(0.81, &image, 4, at, true)],
            Some(heat),
        ),
        expect,
        source: obj,
        predecessor: None,
    }
}

/// The 16-slice MR series as a volume: SCOORD3D point, multi-frame true colour capture.
fn volume() -> Case {
    let dir = testdata().join("dicom/mr/series_dcm4che_mr_16slice");
    let slices: Vec<InMemDicomObject> =
        (1..=16).map(|n| load(&format!("mr/series_dcm4che_mr_16slice/MR{n:02}.dcm"))).collect();
    assert!(dir.is_dir());
    let images: Vec<SourceImage> = slices.iter().map(source_image).collect();
    let peak = &slices[7];
    let (rows, cols) = size(peak);
    let at = [128.0, 100.0];
    let position = peak.element(tags::IMAGE_POSITION_PATIENT).unwrap().to_multi_float64().unwrap();
    let mut found = finding(0.93, &images[7], 1, at, true);
    if let Some(location) = found.location.as_mut() {
        location.patient_xyz = Some([position[0], position[1], position[2]]);
    }
    let heat = heatmap(&images[7], 1, slices.len(), (rows, cols), at);
    let source = peak.clone();
    Case {
        name: "mr_volume_16_slices",
        analysis: analysis(&source, images, vec![found], Some(heat)),
        expect: expectation(&source, json!("POINT3D"), true, [16, rows, cols]),
        source,
        predecessor: None,
    }
}

/// The Enhanced MR as a volume of its frames: SCOORD3D point, one multi-frame source.
fn multi_frame_volume() -> Case {
    let obj = load("multiframe/emri_small.dcm");
    let image = source_image(&obj);
    let (rows, cols) = size(&obj);
    let at = [20.0, 30.0];
    let mut found = finding(0.88, &image, 5, at, true);
    if let Some(location) = found.location.as_mut() {
        location.patient_xyz = Some([-10.5, 20.25, 31.0]);
    }
    let heat = heatmap(&image, 1, image.frames as usize, (rows, cols), at);
    let frames = image.frames as usize;
    Case {
        name: "enhanced_mr_volume",
        analysis: analysis(&obj, vec![image], vec![found], Some(heat)),
        expect: expectation(&obj, json!("POINT3D"), true, [frames, rows, cols]),
        source: obj,
        predecessor: None,
    }
}

/// A CR with two labels: one present with a box, one absent.
fn two_labels() -> Case {
    let mut case = single("cr_two_labels", "cr_dx/study_pcir_cr_3series_16px/CR1_6154", 0.7, true);
    let image = case.analysis.sources[0].clone();
    let mut absent = finding(0.05, &image, 1, [4.0, 4.0], false);
    absent.label = "pneumothorax".into();
    absent.code =
        Code { scheme: "SCT".into(), value: "36118008".into(), meaning: "Pneumothorax".into() };
    case.analysis.findings.push(absent);
    case
}

/// A real file with its patient name replaced by a non-ASCII one, with or without a declared
/// character set.
fn renamed(
    name: &'static str,
    file: &str,
    patient: &str,
    charset: Option<&str>,
    expected: &str,
) -> Case {
    let mut obj = load(file);
    obj.put(DataElement::new(tags::PATIENT_NAME, VR::PN, patient));
    match charset {
        Some(cs) => obj.put(DataElement::new(tags::SPECIFIC_CHARACTER_SET, VR::CS, cs)),
        None => obj.take_element(tags::SPECIFIC_CHARACTER_SET).ok(),
    };
    let mut case = single_from(name, obj, 0.77, true);
    case.expect["charset"] = json!(expected);
    case
}

/// A CT report amending an earlier one.
fn amendment() -> Case {
    let mut case = single("ct_amendment", "ct/CT_small.dcm", 0.66, true);
    let predecessor = PredecessorRef {
        study_uid: case.analysis.study_uid.clone(),
        series_uid: "2.25.1001".into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.88.33".into(),
        sop_instance_uid: "2.25.1002".into(),
    };
    case.expect["predecessor"] = json!(predecessor.sop_instance_uid);
    case.predecessor = Some(predecessor);
    case
}

fn cases() -> Vec<Case> {
    vec![
        single("ct_box", "ct/CT_small.dcm", 0.87, true),
        single("mr_point", "mr/MR_small.dcm", 0.72, false),
        single("pet_absent", "pt/ACRIN-FLT-Breast_029_PT.dcm", 0.12, true),
        single("mg_box", "mg/CBIS-DDSM_P00820_RIGHT_CC_1-282.dcm", 0.91, true),
        single("cr_box", "cr_dx/RG3_UNCR_large_uncompressed.dcm", 0.64, true),
        multi_frame(),
        multi_frame_volume(),
        volume(),
        two_labels(),
        renamed(
            "ct_latin1_name",
            "ct/CT_small.dcm",
            "Müller^Jürgen",
            Some("ISO_IR 100"),
            "ISO_IR 100",
        ),
        renamed("mr_undeclared_utf8_name", "mr/MR_small.dcm", "Åström^Zoë", None, "ISO_IR 192"),
        amendment(),
    ]
}

fn out_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("ARGUS_REPORT_OUT") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).unwrap();
            (None, dir)
        }
        None => {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().to_path_buf();
            (Some(tmp), dir)
        }
    }
}

/// Writes one case's objects and returns its manifest entry.
fn write_case(case: &Case, dir: &Path, settings: &ReportSettings) -> Value {
    let sr = report::structured_report(
        &case.analysis,
        &case.source,
        case.predecessor.as_ref(),
        settings,
    )
    .unwrap_or_else(|e| panic!("{}: no SR: {e}", case.name));
    let sr_path = dir.join(format!("{}_sr.dcm", case.name));
    sr.write_to_file(&sr_path).unwrap();

    let sc = report::heatmap_capture(&case.analysis, &case.source, settings)
        .unwrap_or_else(|e| panic!("{}: no capture: {e}", case.name))
        .expect("every case has a heatmap");
    let sc_path = dir.join(format!("{}_sc.dcm", case.name));
    sc.write_to_file(&sc_path).unwrap();

    let findings: Vec<Value> = case
        .analysis
        .findings
        .iter()
        .map(|f| json!({"value": f.code.value, "scheme": f.code.scheme, "probability": f.probability, "present": f.present}))
        .collect();
    let sources: Vec<&str> =
        case.analysis.sources.iter().map(|s| s.sop_instance_uid.as_str()).collect();
    let mut entry = case.expect.clone();
    entry["name"] = json!(case.name);
    entry["sr"] = json!(sr_path.file_name().unwrap().to_str());
    entry["sc"] = json!(sc_path.file_name().unwrap().to_str());
    entry["findings"] = json!(findings);
    entry["sources"] = json!(sources);
    entry["location_sop"] =
        json!(case.analysis.findings[0].location.as_ref().map(|l| l.sop_instance_uid.clone()));
    entry["model"] = json!({"name": case.analysis.model.name, "version": case.analysis.model.version, "intended_use": case.analysis.model.intended_use});
    entry
}

/// Runs a tool and returns its combined output, failing when it is missing or exits non-zero.
fn run_tool(tool: &str, args: &[&str], path: &Path) -> String {
    let output = Command::new(tool)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} (install dcmtk and dicom3tools): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{tool} failed on {}:\n{text}", path.display());
    text
}

/// dcmtk reports problems on lines starting "E:" or "W:".
fn dcmtk_problems(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("E: ") || l.starts_with("W: ")).collect()
}

/// dcmtk 3.6.7's VR checker cannot check UTF-8 text and says so on every ISO_IR 192 file,
/// the dcmjs reference SR in the corpus included; that line is the tool's limit, not ours.
fn dcmtk_utf8_limit(line: &str) -> bool {
    line == "W: The VR checker does not support this Specific Character Set: ISO_IR 192"
}

fn check_with_tools(path: &Path, is_sr: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let dump = run_tool("dcmdump", &["-q"], path);
    problems.extend(dcmtk_problems(&dump).iter().map(|l| format!("dcmdump: {l}")));
    if is_sr {
        let dump = run_tool("dsrdump", &[], path);
        let problems_here = dcmtk_problems(&dump).into_iter().filter(|l| !dcmtk_utf8_limit(l));
        problems.extend(problems_here.map(|l| format!("dsrdump: {l}")));
    }

    // dciodvfy exits non-zero on errors too; read its lines rather than its status.
    let output = Command::new("dciodvfy")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run dciodvfy (install dicom3tools): {e}"));
    let report = String::from_utf8_lossy(&output.stderr).to_string();
    for line in report.lines() {
        if line.starts_with("Error") {
            problems.push(format!("dciodvfy: {line}"));
        } else if line.starts_with("Warning") {
            eprintln!("{}: dciodvfy {line}", path.display());
        }
    }
    problems.into_iter().map(|p| format!("{}: {p}", path.display())).collect()
}

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("ARGUS_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = std::env::var_os("ARGUS_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME is set");
        PathBuf::from(home).join(".cache/argus/venv")
    });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no Python at {}: run scripts/python-env.sh (or set ARGUS_PYTHON)",
        python.display()
    );
    python
}

#[test]
fn reports_pass_dcmtk_dciodvfy_and_highdicom() {
    ["dcmdump", "dsrdump", "dciodvfy"].into_iter().for_each(require_tool);
    let (_keep, dir) = out_dir();
    let settings = ReportSettings::new(UID_ROOT);

    let manifest: Vec<Value> =
        cases().iter().map(|case| write_case(case, &dir, &settings)).collect();
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap())
        .unwrap();

    let mut problems = Vec::new();
    for entry in &manifest {
        problems.extend(check_with_tools(&dir.join(entry["sr"].as_str().unwrap()), true));
        problems.extend(check_with_tools(&dir.join(entry["sc"].as_str().unwrap()), false));
    }
    assert!(problems.is_empty(), "validators found problems:\n{}", problems.join("\n"));

    let status = Command::new(python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/python/test_sr_highdicom.py"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ARGUS_REPORT_DIR", &dir)
        .status()
        .expect("pytest runs");
    assert!(status.success(), "highdicom/pydicom checks failed (objects in {})", dir.display());
}
