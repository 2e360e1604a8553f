//! The model kit's promises, checked through Argus rather than in PyTorch: a packaged model
//! separates held-out phantoms (AUC at least 0.95), Argus's probabilities equal PyTorch's on
//! the same files within 1e-4, Argus's Grad-CAM matches pytorch-grad-cam's GradCAM (Pearson
//! at least 0.99, same peak cell), and on true positives the heatmap's peak lies inside the
//! lesion mask at least 90 percent of the time.
//!
//! tests/reference/kit_reference.py makes the phantoms, trains a small model with the kit and
//! writes PyTorch's numbers; this test runs Argus on the same files.

mod common;

use std::path::{Path, PathBuf};

use argus::analysis::analyze_series;
use argus::config::{InferenceSettings, Provider};
use argus::findings::Analysis;
use argus::model::{LoadedModel, Registry};
use serde_json::Value;

/// Pixels per model cell along each axis: a 128-pixel input over a 32-cell feature map.
const CELL: usize = 4;

fn registry(models_dir: &Path, data_dir: &Path) -> Registry {
    let settings = InferenceSettings {
        models_dir: models_dir.to_path_buf(),
        ort_library: Some(common::ort_library()),
        providers: vec![Provider::Cpu],
        intra_threads: 1,
        inter_threads: 1,
        batch_size: 8,
        priority_from_unvalidated: false,
    };
    Registry::load(&settings, data_dir).unwrap()
}

fn series_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    files.sort();
    files
}

/// Reads a little-endian .npy array of uint8 or float32 as f32 values, with its shape.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{} is not a .npy file", path.display());
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = shape_text.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let data = &bytes[start + header_len..];
    let values = if header.contains("'<f4'") {
        data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    } else {
        assert!(header.contains("'|u1'") || header.contains("'|b1'"), "dtype in {header}");
        data.iter().map(|&b| f32::from(b)).collect()
    };
    (shape, values)
}

/// The area under the ROC curve: the chance that a positive outscores a negative.
fn auc(scores: &[(f32, bool)]) -> f64 {
    let positives: Vec<f32> = scores.iter().filter(|s| s.1).map(|s| s.0).collect();
    let negatives: Vec<f32> = scores.iter().filter(|s| !s.1).map(|s| s.0).collect();
    let mut wins = 0.0;
    for p in &positives {
        for n in &negatives {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (positives.len() * negatives.len()) as f64
}

fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}

/// Averages a (rows, cols) map over blocks of `factor` pixels.
fn pool(map: &[f32], rows: usize, cols: usize, factor: usize) -> Vec<f32> {
    let (r, c) = (rows / factor, cols / factor);
    let mut out = vec![0.0; r * c];
    for y in 0..r * factor {
        for x in 0..c * factor {
            out[(y / factor) * c + x / factor] += map[y * cols + x] / (factor * factor) as f32;
        }
    }
    out
}

fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0
}

/// The finding probability of an analysis (the highest finding label).
fn finding_probability(analysis: &Analysis) -> f32 {
    analysis.findings[0].probability
}

/// Whether the analysis's located peak lies inside the case's lesion mask.
fn peak_in_mask(analysis: &Analysis, mask_path: &Path) -> bool {
    let location = analysis.findings[0].location.as_ref().expect("a present finding is located");
    let (shape, mask) = read_npy(mask_path);
    let slice =
        analysis.sources.iter().position(|s| s.sop_instance_uid == location.sop_instance_uid);
    let (rows, cols) = (shape[1], shape[2]);
    let (x, y) = (location.point[0].round() as usize, location.point[1].round() as usize);
    let offset = slice.unwrap_or(0) * rows * cols + y.min(rows - 1) * cols + x.min(cols - 1);
    mask[offset] > 0.0
}

/// Compares Argus's heatmap with pytorch-grad-cam's map of the same model and class.
fn check_gradcam(analysis: &Analysis, cam_path: &Path, case: &str) {
    let heatmap = analysis.heatmap.as_ref().expect("a heatmap");
    let (_, rows, cols) = heatmap.maps.dim();
    let ours: Vec<f32> = heatmap.maps.iter().copied().collect();
    let (shape, theirs) = read_npy(cam_path);
    let (size_r, size_c) = (shape[1], shape[2]);
    assert_eq!((rows % size_r, cols % size_c), (0, 0), "{case}: source not a multiple of input");

    // Bring Argus's source-size map to the model's input size, where pytorch-grad-cam works.
    let ours = pool(&ours, rows, cols, rows / size_r);
    let r = pearson(&ours, &theirs);
    assert!(r >= 0.99, "{case}: Pearson {r} against pytorch-grad-cam");

    let cell = |i: usize| ((i / size_c) / CELL, (i % size_c) / CELL);
    assert_eq!(cell(argmax(&ours)), cell(argmax(&theirs)), "{case}: peak cells differ");
}

fn case_probability_from_torch(case: &Value) -> f64 {
    case["torch_probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[1].as_f64().unwrap())
        .fold(f64::MIN, f64::max)
}

#[test]
fn kit_models_keep_their_promises_when_run_through_argus() {
    let out = tempfile::tempdir().unwrap();
    common::run_python("kit_reference.py", &[out.path()]);
    let cases: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("cases.json")).unwrap()).unwrap();
    let model_id = cases["model"].as_str().unwrap();

    let reference = registry(&common::repo().join("models"), out.path());
    let reference: &LoadedModel = reference.get(model_id).unwrap();
    let small = registry(&out.path().join("models"), out.path());
    let small = small.get(model_id).unwrap();

    let (mut scores, mut true_positives, mut peaks_inside, mut cams) = (Vec::new(), 0, 0, 0);
    for case in cases["cases"].as_array().unwrap() {
        let id = case["case_id"].as_str().unwrap();
        let files = series_files(case["series_dir"].as_str().unwrap());
        let positive = case["label_index"] == 1;

        let packaged = analyze_series(reference, &files).unwrap();
        scores.push((finding_probability(&packaged), positive));
        if positive && packaged.findings[0].present {
            true_positives += 1;
            peaks_inside +=
                usize::from(peak_in_mask(&packaged, Path::new(case["mask"].as_str().unwrap())));
        }

        let trained = analyze_series(small, &files).unwrap();
        let torch = case_probability_from_torch(case);
        let diff = (f64::from(finding_probability(&trained)) - torch).abs();
        assert!(diff <= 1e-4, "{id}: Argus {} vs PyTorch {torch}", finding_probability(&trained));
        if let Some(cam) = case["gradcam"].as_str() {
            check_gradcam(&trained, Path::new(cam), id);
            cams += 1;
        }
    }

    let area = auc(&scores);
    assert!(area >= 0.95, "held-out AUC through Argus is {area}");
    assert!(true_positives > 0 && cams > 0);
    let share = peaks_inside as f64 / true_positives as f64;
    assert!(
        share >= 0.9,
        "heatmap peak inside the lesion on {share} of {true_positives} true positives"
    );
    eprintln!(
        "held-out AUC {area:.4}; peak inside lesion on {peaks_inside}/{true_positives} true positives; {cams} Grad-CAM maps compared"
    );
}
