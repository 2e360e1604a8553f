//! One study through one model: read the instances, prepare them (models/MANIFEST.md), run the
//! model in batches, combine slice probabilities into the study's findings (the maximum over
//! slices, whose slice is the finding's location) and explain the top finding with Grad-CAM.
//!
//! The pipeline calls [`analyze_series`] from a blocking thread; `argus analyze` calls
//! [`load_input`] and [`analyze_study`] for DICOM, NIfTI and pictures alike. Locations are in
//! source pixel coordinates (PS3.3 C.18.6.1.1) and, with a plane position, in the patient (PS3.3
//! C.7.6.2.1.1).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array2, Array3, ArrayD, Axis};

use crate::explain::gradcam::{self, GradcamError};
use crate::findings::{Analysis, Finding, Heatmap, Location, ModelRef, SourceImage};
use crate::infer::{Outputs, SessionError};
use crate::model::manifest::{Activation, Kind, Manifest};
use crate::model::{LoadedModel, Registry, choose_model};
use crate::prepare::decode::{self, DecodeError, ImageMeta};
use crate::prepare::files::{self, FileError};
use crate::prepare::{self, Frame, volume};

/// The notice every result carries.
pub const NOTICE: &str = "AI-generated, unverified; not for clinical use";

/// Why a study could not be analysed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    #[error(transparent)]
    Decode(#[from] DecodeError),

    #[error(transparent)]
    File(#[from] FileError),

    #[error("cannot list series folder {path}: {source}")]
    List { path: PathBuf, source: std::io::Error },

    #[error("no image to analyse in {path}")]
    Empty { path: PathBuf },

    #[error("no loaded model serves modality `{modality}` (SOP Class {sop_class}); use --model")]
    NoModel { modality: String, sop_class: String },

    #[error(
        "the input names no Modality (NIfTI files and pictures do not); choose a model with --model"
    )]
    NoModality,

    #[error("no model with id `{id}` is loaded")]
    UnknownModel { id: String },

    #[error("series {series_uid}: slices have different sizes ({first:?} and {other:?})")]
    SliceSizes { series_uid: String, first: (usize, usize), other: (usize, usize) },

    #[error(transparent)]
    Session(#[from] SessionError),

    #[error("model {model}: {source}")]
    Gradcam { model: String, source: GradcamError },

    #[error("model {model} returned {got} scores per image for {labels} labels")]
    Scores { model: String, got: usize, labels: usize },
}

/// What is read from the inputs of one study before a model sees it.
#[derive(Debug, Clone)]
pub struct Study {
    pub study_uid: String,
    /// Modality of the first instance; empty for NIfTI and pictures.
    pub modality: String,
    pub sop_class_uid: String,
    /// Frames in slice order (by position along the normal when the instances have one).
    pub frames: Vec<Frame>,
    pub sources: Vec<SourceImage>,
}

/// Analyses the instances of one series with `model`: the pipeline's entry point. Blocking
/// (decoding and inference); call it from a blocking thread.
pub fn analyze_series(model: &LoadedModel, files: &[PathBuf]) -> Result<Analysis, AnalysisError> {
    let study = load_series(files, model.manifest.preparation.rescale)?;
    analyze_study(model, &study)
}

/// Reads DICOM instances of one series and orders their frames along the slice normal. The
/// caller passes one series; instances of other series are not filtered out here.
pub fn load_series(files: &[PathBuf], rescale: bool) -> Result<Study, AnalysisError> {
    let mut images = files
        .iter()
        .map(|path| decode::read_dicom(path, rescale))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = images.first() else {
        return Err(AnalysisError::Empty { path: files.first().cloned().unwrap_or_default() });
    };
    let (study_uid, modality) = (first.meta.study_uid.clone(), first.meta.modality.clone());
    let sop_class_uid = first.meta.sop_class_uid.clone();

    let orientation = first.meta.orientation;
    let series_uid = first.meta.series_uid.clone();
    let sources: Vec<SourceImage> =
        images.iter().map(|i| source_of(&i.meta, i.frames.len())).collect();

    // Frames, not instances, are ordered: enhanced objects carry a position per frame.
    let frames: Vec<Frame> = images.drain(..).flat_map(Frame::from_dicom).collect();
    let positions: Vec<_> = frames.iter().map(|f| f.position).collect();
    let (order, check) = volume::order_by_position(&positions, orientation);
    log_stack_check(&series_uid, &check, frames.len());
    let mut slots: Vec<_> = frames.into_iter().map(Some).collect();
    let frames: Vec<Frame> = order.iter().filter_map(|&i| slots[i].take()).collect();
    let sources = in_frame_order(sources, &frames);
    Ok(Study { study_uid, modality, sop_class_uid, frames, sources })
}

/// Reads one input of `argus analyze`: a DICOM file, a folder holding a series, a NIfTI file
/// (.nii, .nii.gz) or a PNG/JPEG picture.
pub fn load_input(path: &Path, rescale: bool) -> Result<Study, AnalysisError> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    if path.is_dir() {
        return load_series(&series_files(path)?, rescale);
    }
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        let frames = files::read_nifti(path)?.into_iter().map(Frame::bare).collect();
        return Ok(bare_study(frames));
    }
    if [".png", ".jpg", ".jpeg"].iter().any(|e| name.ends_with(e)) {
        return Ok(bare_study(vec![Frame::bare(files::read_picture(path)?)]));
    }
    load_series(&[path.to_path_buf()], rescale)
}

/// One study for `argus analyze`: a NIfTI or picture file, the DICOM files among the arguments
/// and in the folders among them that share a Series Instance UID, or a path that cannot be
/// read as either (its error comes when it is loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Path(PathBuf),
    Series(Vec<PathBuf>),
}

impl Input {
    /// The path that stands for the input in messages and for choosing a model.
    pub fn first(&self) -> &Path {
        match self {
            Input::Path(path) => path,
            Input::Series(files) => &files[0],
        }
    }

    /// Reads the input (see [`load_input`] and [`load_series`]).
    pub fn load(&self, rescale: bool) -> Result<Study, AnalysisError> {
        match self {
            Input::Path(path) => load_input(path, rescale),
            Input::Series(files) => load_series(files, rescale),
        }
    }
}

/// Groups command-line paths into studies: DICOM files of one series, given as arguments or
/// found in a folder, become one input, in the order their series first appear, so a folder
/// holding several series gives one input per series; anything else, or a file whose header
/// cannot be read (its error comes when it is loaded), stays an input of its own.
pub fn group_inputs(paths: &[PathBuf]) -> Vec<Input> {
    let mut inputs: Vec<Input> = Vec::new();
    let mut series: Vec<(String, usize)> = Vec::new();
    for path in paths.iter().flat_map(|p| folder_files(p)) {
        let path = &path;
        let Some(uid) = dicom_series_uid(path) else {
            inputs.push(Input::Path(path.clone()));
            continue;
        };
        match series.iter().find(|(s, _)| *s == uid) {
            Some(&(_, index)) => {
                if let Input::Series(files) = &mut inputs[index] {
                    files.push(path.clone());
                }
            }
            None => {
                series.push((uid, inputs.len()));
                inputs.push(Input::Series(vec![path.clone()]));
            }
        }
    }
    inputs
}

/// The files a folder argument holds, or the argument itself when it is a file or a folder
/// without readable DICOM files (whose error then comes when it is loaded).
fn folder_files(path: &Path) -> Vec<PathBuf> {
    match path.is_dir().then(|| series_files(path)) {
        Some(Ok(files)) if !files.is_empty() => files,
        _ => vec![path.to_path_buf()],
    }
}

/// The Series Instance UID of a DICOM file argument; `None` for anything else.
fn dicom_series_uid(path: &Path) -> Option<String> {
    let name = path.to_string_lossy().to_lowercase();
    let other = [".nii", ".nii.gz", ".png", ".jpg", ".jpeg"].iter().any(|e| name.ends_with(e));
    if path.is_dir() || other {
        return None;
    }
    let (_, meta) = decode::read_header(path).ok()?;
    (!meta.series_uid.is_empty()).then_some(meta.series_uid)
}

/// The modality and SOP Class of an input without decoding its pixels: empty for NIfTI and
/// pictures, the first file's for a folder.
pub fn input_modality(path: &Path) -> Result<(String, String), AnalysisError> {
    let name = path.to_string_lossy().to_lowercase();
    let file = if path.is_dir() {
        series_files(path)?
            .into_iter()
            .next()
            .ok_or_else(|| AnalysisError::Empty { path: path.into() })?
    } else if [".nii", ".nii.gz", ".png", ".jpg", ".jpeg"].iter().any(|e| name.ends_with(e)) {
        return Ok((String::new(), String::new()));
    } else {
        path.to_path_buf()
    };
    let (_, meta) = decode::read_header(&file)?;
    Ok((meta.modality, meta.sop_class_uid))
}

/// The model for an input: the one named, else the one serving its modality.
pub fn model_for<'r>(
    registry: &'r Registry,
    id: Option<&str>,
    modality: &str,
    sop_class: &str,
) -> Result<&'r LoadedModel, AnalysisError> {
    if let Some(id) = id {
        return registry.get(id).ok_or_else(|| AnalysisError::UnknownModel { id: id.into() });
    }
    if modality.trim().is_empty() {
        return Err(AnalysisError::NoModality);
    }
    choose_model(registry, modality, sop_class).ok_or_else(|| AnalysisError::NoModel {
        modality: modality.into(),
        sop_class: sop_class.into(),
    })
}

/// Runs `model` on a study already read.
pub fn analyze_study(model: &LoadedModel, study: &Study) -> Result<Analysis, AnalysisError> {
    let started = Instant::now();
    let m = &model.manifest;
    if study.frames.is_empty() {
        return Err(AnalysisError::Empty { path: PathBuf::from(&study.study_uid) });
    }

    let (mut findings, heatmap) = match m.kind {
        Kind::Slice => analyze_slices(model, study)?,
        Kind::Volume => analyze_volume(model, study)?,
    };
    if !model.raises_priority {
        findings.iter_mut().for_each(|f| f.priority = false);
    }
    tracing::debug!(
        model = %m.id,
        study_uid = %study.study_uid,
        frames = study.frames.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "study analysed"
    );

    Ok(Analysis {
        study_uid: study.study_uid.clone(),
        model: model_ref(model),
        findings,
        sources: study.sources.clone(),
        heatmap,
    })
}

type Explained = (Vec<Finding>, Option<Heatmap>);

fn analyze_slices(model: &LoadedModel, study: &Study) -> Result<Explained, AnalysisError> {
    let m = &model.manifest;
    let mut probabilities = Vec::with_capacity(study.frames.len());
    for chunk in study.frames.chunks(model.batch_size.max(1)) {
        let tensors: Vec<_> =
            chunk.iter().map(|f| prepare::slice_tensor(f, &m.preparation)).collect();
        let views: Vec<_> = tensors.iter().map(|t| t.view()).collect();
        let batch = ndarray::stack(Axis(0), &views).expect("slices share the input size");
        let outputs = model.session.run(batch.into_dyn())?;
        probabilities.extend(probabilities_of(m, &outputs)?);
    }

    let mut findings = combine(m, &probabilities, study);
    let Some((class, slice)) = top_class(m, &findings, &probabilities) else {
        return Ok((findings, None));
    };
    let frame = &study.frames[slice];
    let heatmap = match &m.gradcam {
        Some(_) => Some(slice_heatmap(model, frame, class, study)?),
        None => None,
    };
    if let (Some(top), Some(map)) = (findings.first_mut(), &heatmap) {
        top.location = Some(location_from_map(frame, slice, map));
    }
    Ok((findings, heatmap))
}

fn analyze_volume(model: &LoadedModel, study: &Study) -> Result<Explained, AnalysisError> {
    let m = &model.manifest;
    check_sizes(study)?;
    let tensor = prepare::volume_tensor(&study.frames, &m.preparation);
    let outputs = model.session.run(tensor.insert_axis(Axis(0)).into_dyn())?;
    let probabilities = probabilities_of(m, &outputs)?;
    let mut findings = combine_volume(m, &probabilities[0]);

    let Some(top) = findings.first() else { return Ok((findings, None)) };
    let class = m.labels.iter().position(|l| l.name == top.label).expect("a label of the model");
    let Some((features, weights)) = gradcam_outputs(&outputs) else {
        return Ok((findings, None));
    };
    let map = gradcam::class_map(features.index_axis(Axis(0), 0), weights.row(class))
        .map_err(|source| AnalysisError::Gradcam { model: m.id.clone(), source })?;
    let heatmap = volume_heatmap(study, &map, &m.preparation);
    let (plane, _, _) = gradcam::peak(&heatmap.maps);
    findings[0].location = Some(location_from_map(&study.frames[plane], plane, &heatmap));
    Ok((findings, Some(heatmap)))
}

fn check_sizes(study: &Study) -> Result<(), AnalysisError> {
    let first = study.frames[0].pixels.dim();
    match study.frames.iter().find(|f| f.pixels.dim() != first) {
        Some(other) => Err(AnalysisError::SliceSizes {
            series_uid: series_of(&study.frames[0]),
            first,
            other: other.pixels.dim(),
        }),
        None => Ok(()),
    }
}

/// Scores to probabilities, one row per image.
fn probabilities_of(m: &Manifest, outputs: &Outputs) -> Result<Vec<Vec<f32>>, AnalysisError> {
    let classes = outputs.scores.ncols();
    if classes != m.labels.len() {
        return Err(AnalysisError::Scores {
            model: m.id.clone(),
            got: classes,
            labels: m.labels.len(),
        });
    }
    Ok(outputs
        .scores
        .rows()
        .into_iter()
        .map(|r| activate(m.activation, r.as_slice().unwrap_or(&r.to_vec())))
        .collect())
}

/// Softmax over classes or sigmoid per class.
pub fn activate(activation: Activation, scores: &[f32]) -> Vec<f32> {
    match activation {
        Activation::Sigmoid => scores.iter().map(|s| 1.0 / (1.0 + (-s).exp())).collect(),
        Activation::Softmax => {
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exp: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f32 = exp.iter().sum();
            exp.into_iter().map(|e| e / sum).collect()
        }
    }
}

/// Each finding label's probability is its maximum over slices (MANIFEST.md); most probable
/// first.
fn combine(m: &Manifest, probabilities: &[Vec<f32>], study: &Study) -> Vec<Finding> {
    let mut findings: Vec<Finding> = m
        .labels
        .iter()
        .enumerate()
        .filter(|(_, l)| l.finding)
        .map(|(c, label)| {
            let (slice, p) = argmax(probabilities.iter().map(|row| row[c]));
            let mut finding = finding(m, label, p);
            finding.location = Some(slice_location(&study.frames[slice]));
            finding
        })
        .collect();
    findings.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    findings
}

fn combine_volume(m: &Manifest, probabilities: &[f32]) -> Vec<Finding> {
    let mut findings: Vec<Finding> = m
        .labels
        .iter()
        .zip(probabilities)
        .filter(|(l, _)| l.finding)
        .map(|(label, p)| finding(m, label, *p))
        .collect();
    findings.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    findings
}

fn finding(m: &Manifest, label: &crate::model::manifest::Label, p: f32) -> Finding {
    Finding {
        label: label.name.clone(),
        code: label.code.clone(),
        probability: p,
        present: p >= m.thresholds.positive,
        priority: p >= m.thresholds.priority,
        location: None,
    }
}

/// The class of the top finding and the slice that decided it.
fn top_class(
    m: &Manifest,
    findings: &[Finding],
    probabilities: &[Vec<f32>],
) -> Option<(usize, usize)> {
    let top = findings.first()?;
    let class = m.labels.iter().position(|l| l.name == top.label)?;
    let (slice, _) = argmax(probabilities.iter().map(|row| row[class]));
    Some((class, slice))
}

fn argmax(values: impl Iterator<Item = f32>) -> (usize, f32) {
    values
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| if v > best.1 { (i, v) } else { best })
}

/// Runs the deciding slice again for its activations, and maps class `class` onto it.
fn slice_heatmap(
    model: &LoadedModel,
    frame: &Frame,
    class: usize,
    study: &Study,
) -> Result<Heatmap, AnalysisError> {
    let m = &model.manifest;
    let input = prepare::slice_tensor(frame, &m.preparation).insert_axis(Axis(0));
    let outputs = model.session.run(input.into_dyn())?;
    let gradcam_error = |source| AnalysisError::Gradcam { model: m.id.clone(), source };
    let (features, weights) = gradcam_outputs(&outputs).expect("manifest has [gradcam]");
    let map = gradcam::class_map(features.index_axis(Axis(0), 0), weights.row(class))
        .map_err(gradcam_error)?;

    let (rows, cols) = frame.pixels.dim();
    Ok(Heatmap {
        source: source_for(frame, study),
        frame: frame.frame_number,
        windowed: prepare::windowed(frame, &m.preparation).insert_axis(Axis(0)),
        maps: gradcam::upsample(&map, 1, rows, cols),
        raw: map.index_axis(Axis(0), 0).to_owned(),
    })
}

fn volume_heatmap(
    study: &Study,
    map: &Array3<f32>,
    prep: &crate::model::manifest::Preparation,
) -> Heatmap {
    // TODO(#3): Keep only the planes near the peak for long series; every slice at source size costs memory.
    let (rows, cols) = study.frames[0].pixels.dim();
    let planes: Vec<Array2<f32>> =
        study.frames.iter().map(|f| prepare::windowed(f, prep)).collect();
    let views: Vec<_> = planes.iter().map(|p| p.view()).collect();
    Heatmap {
        source: source_for(&study.frames[0], study),
        frame: 1,
        windowed: ndarray::stack(Axis(0), &views).expect("sizes checked"),
        maps: gradcam::upsample(map, study.frames.len(), rows, cols),
        raw: map.index_axis(Axis(0), 0).to_owned(),
    }
}

fn gradcam_outputs(outputs: &Outputs) -> Option<(&ArrayD<f32>, &Array2<f32>)> {
    Some((outputs.features.as_ref()?, outputs.head_weights.as_ref()?))
}

/// A slice's location without a map: its centre.
fn slice_location(frame: &Frame) -> Location {
    let (rows, cols) = frame.pixels.dim();
    let point = [cols as f32 / 2.0, rows as f32 / 2.0];
    location(frame, point, None)
}

/// The peak of the map on its plane, and the region around it.
fn location_from_map(frame: &Frame, slice: usize, heatmap: &Heatmap) -> Location {
    let plane_index = if heatmap.maps.dim().0 > 1 { slice } else { 0 };
    let plane = heatmap.maps.index_axis(Axis(0), plane_index).to_owned();
    let (_, row, col) = gradcam::peak(&plane.clone().insert_axis(Axis(0)));
    let bbox = gradcam::region(&plane, (row, col));
    location(frame, [col as f32, row as f32], Some(bbox))
}

fn location(frame: &Frame, point: [f32; 2], bbox: Option<[f32; 4]>) -> Location {
    let meta = frame.source.as_deref();
    Location {
        sop_instance_uid: meta.map(|m| m.sop_instance_uid.clone()).unwrap_or_default(),
        sop_class_uid: meta.map(|m| m.sop_class_uid.clone()).unwrap_or_default(),
        frame: frame.frame_number,
        point,
        bbox,
        patient_xyz: meta.and_then(|m| patient_point(m, frame.position, point)),
    }
}

/// PS3.3 C.7.6.2.1.1: position + column·Δc·row direction + row·Δr·column direction.
fn patient_point(
    meta: &ImageMeta,
    position: Option<[f64; 3]>,
    point: [f32; 2],
) -> Option<[f64; 3]> {
    let (p, o, s) = (position?, meta.orientation?, meta.pixel_spacing?);
    let (col, row) = (point[0] as f64, point[1] as f64);
    Some(std::array::from_fn(|i| p[i] + col * s[1] * o[i] + row * s[0] * o[3 + i]))
}

/// The sources in the order their first frame appears in the ordered frames.
fn in_frame_order(mut sources: Vec<SourceImage>, frames: &[Frame]) -> Vec<SourceImage> {
    let first_frame = |s: &SourceImage| {
        frames.iter().position(|f| {
            f.source.as_ref().is_some_and(|m| m.sop_instance_uid == s.sop_instance_uid)
        })
    };
    sources.sort_by_key(|s| first_frame(s).unwrap_or(usize::MAX));
    sources
}

fn source_of(meta: &ImageMeta, frames: usize) -> SourceImage {
    SourceImage {
        sop_class_uid: meta.sop_class_uid.clone(),
        sop_instance_uid: meta.sop_instance_uid.clone(),
        series_uid: meta.series_uid.clone(),
        frames: frames as u32,
    }
}

fn source_for(frame: &Frame, study: &Study) -> SourceImage {
    let uid = frame.source.as_ref().map(|m| m.sop_instance_uid.as_str()).unwrap_or_default();
    study.sources.iter().find(|s| s.sop_instance_uid == uid).cloned().unwrap_or(SourceImage {
        sop_class_uid: String::new(),
        sop_instance_uid: String::new(),
        series_uid: String::new(),
        frames: 1,
    })
}

fn series_of(frame: &Frame) -> String {
    frame.source.as_ref().map(|m| m.series_uid.clone()).unwrap_or_default()
}

fn model_ref(model: &LoadedModel) -> ModelRef {
    let m = &model.manifest;
    ModelRef {
        id: m.id.clone(),
        version: m.version.clone(),
        name: m.name.clone(),
        intended_use: m.intended_use.clone(),
        provider: model.provider().name().to_string(),
    }
}

fn bare_study(frames: Vec<Frame>) -> Study {
    Study {
        study_uid: String::new(),
        modality: String::new(),
        sop_class_uid: String::new(),
        frames,
        sources: Vec::new(),
    }
}

/// Files of a series folder, sorted by name. Hidden files and files that are plainly not DICOM
/// (no PS3.10 preamble and an extension other than `.dcm`, such as a mask or a DICOMDIR's
/// companions) are skipped.
fn series_files(dir: &Path) -> Result<Vec<PathBuf>, AnalysisError> {
    let list_error = |source| AnalysisError::List { path: dir.to_path_buf(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let path = entry.map_err(list_error)?.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if path.is_file() && !hidden && may_be_dicom(&path) {
            files.push(path);
        } else {
            tracing::debug!(path = %path.display(), "not a DICOM file: skipped");
        }
    }
    files.sort();
    Ok(files)
}

/// A file with the PS3.10 preamble, or without one but named like a DICOM file (no extension
/// or `.dcm`), which may be a bare data set.
fn may_be_dicom(path: &Path) -> bool {
    let mut head = [0u8; 132];
    let preamble = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| &head[128..] == b"DICM");
    let extension = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    preamble || matches!(extension.as_deref(), None | Some("dcm"))
}

fn log_stack_check(series_uid: &str, check: &volume::StackCheck, slices: usize) {
    if slices < 2 {
        return;
    }
    if check.irregular {
        tracing::warn!(series_uid, spacing = ?check.spacing, "irregular slice spacing");
    }
    if check.tilt_degrees > 0.5 {
        tracing::warn!(
            series_uid,
            tilt_degrees = check.tilt_degrees,
            "stack is tilted (gantry tilt?)"
        );
    }
    if check.unpositioned > 0 {
        tracing::warn!(series_uid, unpositioned = check.unpositioned, "slices without a position");
    }
}

/// The JSON `argus analyze` prints for one study.
pub fn summary_json(analysis: &Analysis) -> serde_json::Value {
    let top = analysis.top();
    let present = top.filter(|f| f.present);
    let (prediction, confidence) = match (present, top) {
        (Some(f), _) => (f.label.clone(), f.probability),
        (None, Some(f)) => ("no finding".to_string(), 1.0 - f.probability),
        (None, None) => ("no finding".to_string(), 1.0),
    };
    let location = top.and_then(|f| f.location.as_ref()).map(|l| location_json(l, analysis));
    let probabilities: serde_json::Map<String, serde_json::Value> =
        analysis.findings.iter().map(|f| (f.label.clone(), round(f.probability).into())).collect();

    serde_json::json!({
        "study_uid": analysis.study_uid,
        "prediction": prediction,
        "confidence": round(confidence),
        "model": { "id": analysis.model.id, "version": analysis.model.version, "name": analysis.model.name },
        "provider": analysis.model.provider,
        "location": location,
        "characteristics": {
            "probabilities": probabilities,
            "present": present.is_some(),
            "priority": analysis.is_priority(),
            "bbox": top.and_then(|f| f.location.as_ref()).and_then(|l| l.bbox),
            "patient_xyz": top.and_then(|f| f.location.as_ref()).and_then(|l| l.patient_xyz),
            "images": analysis.sources.len(),
        },
        "intended_use": analysis.model.intended_use,
        "notice": NOTICE,
    })
}

/// Location as (column, row, slice): the slice is the instance's place in the ordered series,
/// or the frame's place in a single multi-frame instance.
fn location_json(l: &Location, analysis: &Analysis) -> serde_json::Value {
    let instance = analysis.sources.iter().position(|s| s.sop_instance_uid == l.sop_instance_uid);
    let z = match instance {
        Some(index) if analysis.sources.len() > 1 => index as f32,
        _ => (l.frame - 1) as f32,
    };
    serde_json::json!({
        "sop_instance_uid": l.sop_instance_uid,
        "frame": l.frame,
        "coordinates": [l.point[0], l.point[1], z],
    })
}

fn round(p: f32) -> f64 {
    (p as f64 * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_sigmoid_is_per_class() {
        let p = activate(Activation::Softmax, &[1.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6 && p[2] > p[1]);
        let s = activate(Activation::Sigmoid, &[0.0, 100.0]);
        assert_eq!(s, [0.5, 1.0]);
    }

    #[test]
    fn argmax_keeps_the_first_maximum() {
        assert_eq!(argmax([0.1, 0.9, 0.9, 0.2].into_iter()), (1, 0.9));
    }

    #[test]
    fn patient_point_follows_orientation_and_spacing() {
        let meta = ImageMeta {
            position: Some([-100.0, -50.0, 20.0]),
            orientation: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            pixel_spacing: Some([0.5, 0.25]),
            ..ImageMeta::default()
        };
        assert_eq!(patient_point(&meta, meta.position, [4.0, 2.0]), Some([-99.0, -49.0, 20.0]));
    }
}
