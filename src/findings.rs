//! What a model concluded about a study, in the terms the report writers need: findings with
//! coded concepts (PS3.16 TID 1500 measurement groups), their probabilities, where on which
//! source image they are, and the class activation map behind them.
//!
//! Inference produces an [`Analysis`]; the SR and secondary capture writers consume it. Neither
//! side needs to know how the other works.

use ndarray::{Array2, Array3};
use serde::Serialize;

/// A coded concept (PS3.3 8.8): scheme designator, code value and meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Code {
    pub scheme: String,
    pub value: String,
    pub meaning: String,
}

/// The model that produced an analysis (PS3.16 TID 4019 Algorithm Identification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelRef {
    pub id: String,
    pub version: String,
    pub name: String,
    /// What the weights were trained on and what they may be used for, shown in every report.
    pub intended_use: String,
    /// The ONNX Runtime execution provider that ran it: "tensorrt", "cuda" or "cpu".
    pub provider: String,
}

/// One source image Argus read, for the Image Library and the evidence sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceImage {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub series_uid: String,
    /// Number of frames, 1 for single-frame images.
    pub frames: u32,
}

/// Where a finding is: a point or box on one frame of one source image, in that image's pixel
/// coordinates (column, row; PS3.3 C.18.6.1.1), and, for volumes, its position in the patient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Location {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    /// 1-based frame number.
    pub frame: u32,
    /// The peak of the activation map: (column, row).
    pub point: [f32; 2],
    /// The region around the peak: (left column, top row, right column, bottom row).
    pub bbox: Option<[f32; 4]>,
    /// The point in patient coordinates (mm), when the source has a plane position.
    pub patient_xyz: Option<[f64; 3]>,
}

/// One label the model reports on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub label: String,
    pub code: Code,
    pub probability: f32,
    /// At or above the model's positive threshold.
    pub present: bool,
    /// At or above the model's priority threshold.
    pub priority: bool,
    pub location: Option<Location>,
}

/// A class activation map for the predicted finding, with the source pixels it explains.
#[derive(Debug, Clone)]
pub struct Heatmap {
    pub source: SourceImage,
    /// 1-based frame for a single image; for a volume, every slice is in `maps`.
    pub frame: u32,
    /// The source image after its VOI window, in [0, 1], one (rows, columns) plane per slice.
    pub windowed: Array3<f32>,
    /// The activation map resampled to the source size, in [0, 1], one plane per slice.
    pub maps: Array3<f32>,
    /// The activation map at the model's resolution for the first plane, before resampling.
    pub raw: Array2<f32>,
}

/// Everything a model concluded about one study.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub study_uid: String,
    pub model: ModelRef,
    /// Every label of the model that marks a finding, most probable first.
    pub findings: Vec<Finding>,
    /// The images that went into the analysis.
    pub sources: Vec<SourceImage>,
    pub heatmap: Option<Heatmap>,
}

impl Analysis {
    /// The most probable finding, if the model has any finding label.
    pub fn top(&self) -> Option<&Finding> {
        self.findings.first()
    }

    /// Whether any finding reached the priority threshold.
    pub fn is_priority(&self) -> bool {
        self.findings.iter().any(|f| f.priority)
    }
}
