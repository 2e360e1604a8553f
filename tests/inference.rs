//! Inference through ONNX Runtime: outputs equal onnxruntime's Python binding on the same
//! tensor, broken packages give clear errors, and whole studies are analysed with slice and
//! volume models.

mod common;

use std::path::{Path, PathBuf};

use argus::analysis::{analyze_series, load_series};
use argus::config::{InferenceSettings, Provider};
use argus::infer::Runtime;
use argus::model::{LoadedModel, Registry, RegistryError};
use ndarray::{ArrayD, IxDyn};

fn settings(models_dir: &Path) -> InferenceSettings {
    InferenceSettings {
        models_dir: models_dir.to_path_buf(),
        ort_library: Some(common::ort_library()),
        providers: vec![Provider::TensorRt, Provider::Cuda, Provider::Cpu],
        intra_threads: 1,
        inter_threads: 1,
        batch_size: 2,
        priority_from_unvalidated: false,
    }
}

fn open(dir: &Path) -> Result<LoadedModel, RegistryError> {
    let settings = settings(dir.parent().unwrap());
    let runtime = Runtime::init(settings.ort_library.as_deref())?;
    LoadedModel::open(runtime, dir, &settings, &dir.join("trt-cache-unused"))
}

fn cr_package() -> PathBuf {
    common::repo().join("models/cr-chest-nodule")
}

/// The volume test package written by tests/reference/make_volume_model.py.
fn volume_package(out: &Path) -> PathBuf {
    common::run_python("make_volume_model.py", &[out]);
    out.join("vol-test")
}

/// A copy of a package in a temporary folder, to break it.
fn copy_package(from: &Path, to: &Path) -> PathBuf {
    let dir = to.join(from.file_name().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["model.onnx", "model.toml"] {
        std::fs::copy(from.join(name), dir.join(name)).unwrap();
    }
    dir
}

/// A fixed pseudo-random tensor (a linear congruential sequence), reproducible everywhere.
fn tensor(shape: &[usize]) -> ArrayD<f32> {
    let mut state = 12345u64;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
    })
}

fn assert_same_as_python(model: &LoadedModel, input: ArrayD<f32>) {
    let out = tempfile::tempdir().unwrap();
    let input_path = out.path().join("input.f32");
    common::write_f32(&input_path, input.as_slice().unwrap());
    let shape: Vec<String> = input.shape().iter().map(|d| d.to_string()).collect();
    let model_path = model.dir.join("model.onnx");
    let name = PathBuf::from(&model.manifest.input_name);
    let shape = PathBuf::from(shape.join(","));
    common::run_python(
        "ort_reference.py",
        &[&model_path, &name, &input_path, &shape, out.path(), Path::new("1")],
    );

    let outputs = model.session.run(input).unwrap();
    let compare = |name: &str, actual: Vec<f32>| {
        let expected = common::read_f32(&out.path().join(format!("{name}.f32")));
        assert_eq!(actual.len(), expected.len(), "{name}");
        let worst = actual.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst <= 1e-5, "{name}: max |diff| {worst}");
    };
    compare(&model.manifest.output_name, outputs.scores.iter().copied().collect());
    compare("features", outputs.features.unwrap().iter().copied().collect());
    compare("head_weights", outputs.head_weights.unwrap().iter().copied().collect());
}

#[test]
fn slice_model_outputs_equal_onnxruntime_python() {
    let model = open(&cr_package()).unwrap();
    assert_eq!(model.provider(), Provider::Cpu);
    assert_same_as_python(&model, tensor(&[3, 1, 128, 128]));
}

#[test]
fn volume_model_outputs_equal_onnxruntime_python() {
    let out = tempfile::tempdir().unwrap();
    let model = open(&volume_package(out.path())).unwrap();
    assert_same_as_python(&model, tensor(&[2, 1, 8, 16, 16]));
}

#[test]
fn corrupt_model_file_is_a_clear_error() {
    let out = tempfile::tempdir().unwrap();
    let dir = copy_package(&cr_package(), out.path());
    std::fs::write(dir.join("model.onnx"), b"this is not an ONNX protobuf").unwrap();

    let err = open(&dir).unwrap_err().to_string();
    assert!(err.contains("cannot be loaded") && err.contains("model.onnx"), "{err}");
}

#[test]
fn manifest_shape_disagreeing_with_the_model_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let dir = copy_package(&cr_package(), out.path());
    let toml = std::fs::read_to_string(dir.join("model.toml")).unwrap();
    std::fs::write(dir.join("model.toml"), toml.replace("height = 128", "height = 96")).unwrap();

    let err = open(&dir).unwrap_err().to_string();
    assert!(err.contains("input") && err.contains("96") && err.contains("model.onnx"), "{err}");
}

#[test]
fn manifest_naming_a_missing_output_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let dir = copy_package(&cr_package(), out.path());
    let toml = std::fs::read_to_string(dir.join("model.toml")).unwrap();
    std::fs::write(dir.join("model.toml"), toml.replace("\"head_weights\"", "\"head\"")).unwrap();

    let err = open(&dir).unwrap_err().to_string();
    assert!(err.contains("gradcam.weights") && err.contains("`head`"), "{err}");
}

#[test]
fn registry_loads_every_package_and_skips_other_folders() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::load(&settings(&common::repo().join("models")), data.path()).unwrap();
    assert!(registry.get("cr-chest-nodule").is_some());
    assert!(argus::model::choose_model(&registry, "DX", "").is_some());
    assert!(argus::model::choose_model(&registry, "US", "").is_none());
    assert!(data.path().join("trt-cache").is_dir());
}

#[test]
fn slice_study_takes_the_maximum_over_slices_in_batches() {
    let model = open(&cr_package()).unwrap();
    let folder = common::testdata().join("dicom/cr_dx/study_pcir_cr_3series_16px");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();

    let analysis = analyze_series(&model, &files).unwrap();
    assert_eq!(analysis.sources.len(), 3);
    let top = analysis.top().unwrap();
    let location = top.location.as_ref().unwrap();
    assert!(analysis.sources.iter().any(|s| s.sop_instance_uid == location.sop_instance_uid));

    // The study's probability is the largest of the slices' own.
    let single: Vec<f32> = files
        .iter()
        .map(|f| {
            analyze_series(&model, std::slice::from_ref(f)).unwrap().top().unwrap().probability
        })
        .collect();
    let max = single.iter().copied().fold(0.0, f32::max);
    assert!((top.probability - max).abs() < 1e-6, "{} vs {single:?}", top.probability);

    let heatmap = analysis.heatmap.as_ref().unwrap();
    assert_eq!(heatmap.maps.dim(), (1, 16, 16));
    assert_eq!(heatmap.windowed.dim(), heatmap.maps.dim());
    let bbox = location.bbox.unwrap();
    assert!(bbox[0] <= location.point[0] && location.point[0] <= bbox[2]);
}

#[test]
fn volume_study_is_sorted_and_explained() {
    let out = tempfile::tempdir().unwrap();
    let model = open(&volume_package(out.path())).unwrap();
    let folder = common::testdata().join("dicom/ct/series_liver_ct_3slice");
    let files: Vec<PathBuf> =
        ["03.dcm", "01.dcm", "02.dcm"].iter().map(|f| folder.join(f)).collect();

    let study = load_series(&files, true).unwrap();
    let analysis = argus::analysis::analyze_study(&model, &study).unwrap();
    let heatmap = analysis.heatmap.unwrap();
    assert_eq!(heatmap.maps.dim(), (3, 512, 512));
    assert!(heatmap.maps.iter().all(|v| (0.0..=1.0).contains(v)));
    let location = analysis.findings[0].location.as_ref().unwrap();
    assert!(location.patient_xyz.is_some());

    // Sorted along the normal: positions increase through the study's sources.
    let positions: Vec<f64> =
        study.frames.iter().map(|f| f.source.as_ref().unwrap().position.unwrap()[2]).collect();
    assert!(
        positions.windows(2).all(|w| w[0] <= w[1]) || positions.windows(2).all(|w| w[0] >= w[1])
    );
}

#[test]
fn heatmap_equals_pytorch_grad_cam_scaling() {
    let model = open(&cr_package()).unwrap();
    let file = common::testdata().join("dicom/cr_dx/DX_dog_highdicom.dcm");
    let study = argus::analysis::load_input(&file, true).unwrap();
    let analysis = argus::analysis::analyze_study(&model, &study).unwrap();
    let heatmap = analysis.heatmap.unwrap();
    let class = model.manifest.labels.iter().position(|l| l.name == analysis.findings[0].label);

    let out = tempfile::tempdir().unwrap();
    let input = argus::prepare::slice_tensor(&study.frames[0], &model.manifest.preparation);
    let input_path = out.path().join("input.f32");
    common::write_f32(&input_path, input.as_slice().unwrap());
    let (rows, cols) = study.frames[0].pixels.dim();
    let expected_path = out.path().join("cam.f32");
    let args = [
        model.dir.join("model.onnx"),
        input_path,
        PathBuf::from("128,128"),
        PathBuf::from(class.unwrap().to_string()),
        PathBuf::from(rows.to_string()),
        PathBuf::from(cols.to_string()),
        expected_path.clone(),
    ];
    let args: Vec<&Path> = args.iter().map(PathBuf::as_path).collect();
    common::run_python("gradcam_reference.py", &args);

    let expected = common::read_f32(&expected_path);
    let actual: Vec<f32> = heatmap.maps.iter().copied().collect();
    assert_eq!(actual.len(), expected.len());
    let worst = actual.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst <= 1e-4, "max |diff| {worst} against pytorch-grad-cam");
}

#[test]
fn enhanced_multiframe_frames_are_ordered_by_their_own_positions() {
    let file = common::testdata().join("dicom/multiframe/philips_enhanced_fmri_32fr.dcm");
    let study = load_series(&[file], true).unwrap();
    assert_eq!(study.frames.len(), 32);
    assert!(study.frames.iter().all(|f| f.position.is_some()));

    let meta = study.frames[0].source.as_ref().unwrap();
    let normal = argus::prepare::volume::normal_of(meta.orientation.unwrap());
    let along: Vec<f64> = study
        .frames
        .iter()
        .map(|f| f.position.unwrap().iter().zip(normal).map(|(p, n)| p * n).sum())
        .collect();
    assert!(along.windows(2).all(|w| w[0] <= w[1]), "{along:?}");
}
