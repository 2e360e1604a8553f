//! One model's ONNX Runtime session: built with the chosen execution provider and thread
//! counts, checked against its manifest, and run on batches of prepared tensors.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::{Array2, ArrayD, Ix2};
use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use super::runtime::{Runtime, apply_providers};
use crate::config::{InferenceSettings, Provider};
use crate::model::Manifest;

/// Why a model's session could not be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("model {path}: cannot configure the session: {reason}")]
    Configure { path: PathBuf, reason: String },

    #[error("model {path} cannot be loaded (corrupt or not ONNX?): {reason}")]
    Load { path: PathBuf, reason: String },

    #[error("model {path} has no input `{name}` (manifest key input.name); it has {available:?}")]
    InputMissing { path: PathBuf, name: String, available: Vec<String> },

    #[error(
        "model {path}: input `{name}` is declared {declared:?} in the ONNX file but the \
         manifest (input.*) says {manifest:?}"
    )]
    InputShape { path: PathBuf, name: String, declared: Vec<i64>, manifest: Vec<usize> },

    #[error("model {path} has no output `{name}` (manifest key {key}); it has {available:?}")]
    OutputMissing { path: PathBuf, name: String, key: &'static str, available: Vec<String> },

    #[error("model {model}: inference failed: {reason}")]
    Run { model: String, reason: String },

    #[error("model {model}: output `{name}` is not what the manifest describes: {reason}")]
    Output { model: String, name: String, reason: String },
}

/// What one run returns: scores (N, classes) and, when the manifest has `[gradcam]`, the
/// activations (N, K, ...) and head weights (classes, K).
#[derive(Debug, Clone)]
pub struct Outputs {
    pub scores: Array2<f32>,
    pub features: Option<ArrayD<f32>>,
    pub head_weights: Option<Array2<f32>>,
}

/// A loaded model session. Runs are serialised: ONNX Runtime parallelises inside a run.
#[derive(Debug)]
pub struct ModelSession {
    session: Mutex<Session>,
    provider: Provider,
    batch_dim: i64,
    model: String,
    input: String,
    scores: String,
    gradcam: Option<(String, String)>,
}

impl ModelSession {
    /// Builds the session for `model_path` and checks it against `manifest`.
    pub fn open(
        runtime: &Runtime,
        manifest: &Manifest,
        model_path: &Path,
        settings: &InferenceSettings,
        trt_cache: &Path,
    ) -> Result<ModelSession, SessionError> {
        let configure = |e: ort::Error| SessionError::Configure {
            path: model_path.into(),
            reason: e.to_string(),
        };
        // ONNX Runtime's own info lines (every graph transformer) would drown the operator's.
        let mut builder = Session::builder(runtime.environment())
            .map_err(configure)?
            .with_log_level(ort::logging::LogLevel::Warning)
            .map_err(|e| configure(e.into()))?;
        if settings.intra_threads > 0 {
            builder = builder
                .with_intra_threads(settings.intra_threads)
                .map_err(|e| configure(e.into()))?;
        }
        if settings.inter_threads > 0 {
            builder = builder
                .with_inter_threads(settings.inter_threads)
                .map_err(|e| configure(e.into()))?;
        }
        let (mut builder, provider) =
            apply_providers(builder, &settings.providers, trt_cache, &manifest.id);

        let session = builder
            .commit_from_file(model_path)
            .map_err(|e| SessionError::Load { path: model_path.into(), reason: e.to_string() })?;
        let batch_dim = check_input(&session, manifest, model_path)?;
        check_outputs(&session, manifest, model_path)?;
        tracing::info!(model = %manifest.id, provider = provider.name(), "model session ready");

        Ok(ModelSession {
            session: Mutex::new(session),
            provider,
            batch_dim,
            model: manifest.id.clone(),
            input: manifest.input_name.clone(),
            scores: manifest.output_name.clone(),
            gradcam: manifest.gradcam.as_ref().map(|g| (g.activations.clone(), g.weights.clone())),
        })
    }

    /// The execution provider the session was built with.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The largest batch the model accepts: its fixed batch size, or `preferred` when dynamic.
    pub fn max_batch(&self, preferred: usize) -> usize {
        if self.batch_dim > 0 { self.batch_dim as usize } else { preferred.max(1) }
    }

    /// Runs one batch, shaped (N, C, H, W) or (N, C, D, H, W).
    pub fn run(&self, batch: ArrayD<f32>) -> Result<Outputs, SessionError> {
        let run_error =
            |e: ort::Error| SessionError::Run { model: self.model.clone(), reason: e.to_string() };
        let tensor = ort::value::Tensor::from_array(batch).map_err(run_error)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs =
            session.run(ort::inputs![self.input.as_str() => tensor]).map_err(run_error)?;

        let extract = |name: &str| -> Result<ArrayD<f32>, SessionError> {
            let value = outputs.get(name).ok_or_else(|| self.output_error(name, "missing"))?;
            let array = value.try_extract_array::<f32>().map_err(|e| self.output_error(name, e))?;
            Ok(array.to_owned())
        };
        let scores =
            to_2d(extract(&self.scores)?).map_err(|e| self.output_error(&self.scores, e))?;
        let (features, head_weights) = match &self.gradcam {
            Some((a, w)) => {
                let weights = to_2d(extract(w)?).map_err(|e| self.output_error(w, e))?;
                (Some(extract(a)?), Some(weights))
            }
            None => (None, None),
        };
        Ok(Outputs { scores, features, head_weights })
    }

    fn output_error(&self, name: &str, reason: impl ToString) -> SessionError {
        SessionError::Output {
            model: self.model.clone(),
            name: name.into(),
            reason: reason.to_string(),
        }
    }
}

fn to_2d(array: ArrayD<f32>) -> Result<Array2<f32>, String> {
    let shape = array.shape().to_vec();
    array.into_dimensionality::<Ix2>().map_err(|_| format!("shape {shape:?} is not 2-D"))
}

/// Checks the ONNX input against the manifest; returns the batch dimension (-1 when dynamic).
fn check_input(session: &Session, manifest: &Manifest, path: &Path) -> Result<i64, SessionError> {
    let name = &manifest.input_name;
    let Some(input) = session.inputs().iter().find(|i| i.name() == name) else {
        let available = session.inputs().iter().map(|i| i.name().to_string()).collect();
        return Err(SessionError::InputMissing {
            path: path.into(),
            name: name.clone(),
            available,
        });
    };

    let expected = manifest.input_shape();
    let shape_error = |declared: Vec<i64>| SessionError::InputShape {
        path: path.into(),
        name: name.clone(),
        declared,
        manifest: expected.clone(),
    };
    let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
        return Err(shape_error(Vec::new()));
    };
    let declared: Vec<i64> = shape.to_vec();
    let agrees = *ty == TensorElementType::Float32
        && declared.len() == expected.len() + 1
        && declared[1..].iter().zip(&expected).all(|(d, e)| *d < 0 || *d as usize == *e);
    if !agrees {
        return Err(shape_error(declared));
    }
    Ok(declared[0])
}

fn check_outputs(session: &Session, manifest: &Manifest, path: &Path) -> Result<(), SessionError> {
    let mut wanted = vec![("output.name", manifest.output_name.clone())];
    if let Some(g) = &manifest.gradcam {
        wanted.push(("gradcam.activations", g.activations.clone()));
        wanted.push(("gradcam.weights", g.weights.clone()));
    }
    let available: Vec<String> = session.outputs().iter().map(|o| o.name().to_string()).collect();
    match wanted.into_iter().find(|(_, name)| !available.contains(name)) {
        Some((key, name)) => {
            Err(SessionError::OutputMissing { path: path.into(), name, key, available })
        }
        None => Ok(()),
    }
}
