//! The models Argus serves: every package folder under `inference.models_dir`, each manifest
//! checked and each model opened in ONNX Runtime at start-up, so that a broken package stops
//! the node before it accepts a study.

use std::path::{Path, PathBuf};

use super::manifest::{Manifest, ManifestError};
use crate::config::{InferenceSettings, Provider};
use crate::infer::{ModelSession, Runtime, RuntimeError, SessionError};

/// Why the models could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("cannot list models folder {path}: {source}")]
    List { path: PathBuf, source: std::io::Error },

    #[error(transparent)]
    Runtime(#[from] RuntimeError),

    #[error(transparent)]
    Manifest(#[from] ManifestError),

    #[error(transparent)]
    Session(#[from] SessionError),

    #[error("model package {path} has no model.onnx")]
    ModelFileMissing { path: PathBuf },

    #[error("model id `{id}` appears twice ({first} and {second})")]
    Duplicate { id: String, first: PathBuf, second: PathBuf },

    #[error("cannot create the TensorRT engine cache {path}: {source}")]
    TrtCache { path: PathBuf, source: std::io::Error },
}

/// A model ready to run: its manifest, its session and the folder it came from.
#[derive(Debug)]
pub struct LoadedModel {
    pub manifest: Manifest,
    pub session: ModelSession,
    pub dir: PathBuf,
    /// Slices per run for slice models (`inference.batch_size`, or the model's fixed batch).
    pub batch_size: usize,
    /// Whether its findings may raise priority: a validated model, or a deployment that
    /// allows unvalidated ones (`inference.priority_from_unvalidated`).
    pub raises_priority: bool,
}

impl LoadedModel {
    /// Opens one package folder.
    pub fn open(
        runtime: &Runtime,
        dir: &Path,
        settings: &InferenceSettings,
        trt_cache: &Path,
    ) -> Result<LoadedModel, RegistryError> {
        let manifest = Manifest::load(dir)?;
        let model_path = dir.join("model.onnx");
        if !model_path.is_file() {
            return Err(RegistryError::ModelFileMissing { path: dir.to_path_buf() });
        }
        let session = ModelSession::open(runtime, &manifest, &model_path, settings, trt_cache)?;
        let batch_size = session.max_batch(settings.batch_size);
        let raises_priority = manifest.validated || settings.priority_from_unvalidated;
        if !manifest.validated {
            tracing::info!(
                model = %manifest.id,
                raises_priority,
                "model is not validated for clinical use; its findings raise priority only if inference.priority_from_unvalidated allows"
            );
        }
        Ok(LoadedModel { manifest, session, dir: dir.to_path_buf(), batch_size, raises_priority })
    }

    /// The execution provider in use.
    pub fn provider(&self) -> Provider {
        self.session.provider()
    }
}

/// Every loaded model, in folder-name order.
#[derive(Debug, Default)]
pub struct Registry {
    models: Vec<LoadedModel>,
}

impl Registry {
    /// Loads ONNX Runtime and every package of `settings.models_dir`. The TensorRT engine
    /// cache lives in `<data_dir>/trt-cache`.
    pub fn load(settings: &InferenceSettings, data_dir: &Path) -> Result<Registry, RegistryError> {
        let runtime = Runtime::init(settings.ort_library.as_deref())?;
        let trt_cache = data_dir.join("trt-cache");
        if settings.providers.contains(&Provider::TensorRt) {
            std::fs::create_dir_all(&trt_cache)
                .map_err(|source| RegistryError::TrtCache { path: trt_cache.clone(), source })?;
        }

        let mut models: Vec<LoadedModel> = Vec::new();
        for dir in package_dirs(&settings.models_dir)? {
            let model = LoadedModel::open(runtime, &dir, settings, &trt_cache)?;
            if let Some(first) = models.iter().find(|m| m.manifest.id == model.manifest.id) {
                return Err(RegistryError::Duplicate {
                    id: model.manifest.id.clone(),
                    first: first.dir.clone(),
                    second: dir,
                });
            }
            models.push(model);
        }
        tracing::info!(models = models.len(), dir = %settings.models_dir.display(), "models loaded");
        Ok(Registry { models })
    }

    /// A registry of already opened models.
    pub fn from_models(models: Vec<LoadedModel>) -> Registry {
        Registry { models }
    }

    pub fn models(&self) -> &[LoadedModel] {
        &self.models
    }

    /// The model with this id.
    pub fn get(&self, id: &str) -> Option<&LoadedModel> {
        self.models.iter().find(|m| m.manifest.id == id)
    }
}

/// Sub-folders holding a `model.toml`, sorted by name; other folders (the kit) are skipped.
fn package_dirs(models_dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let list_error = |source| RegistryError::List { path: models_dir.to_path_buf(), source };
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(models_dir).map_err(list_error)? {
        let path = entry.map_err(list_error)?.path();
        if path.join("model.toml").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The model for an image of `modality` (PS3.3 C.7.3.1.1.1). CR and DX share a model; the
/// SOP Class is accepted for later rules (for example For Processing images).
pub fn choose_model<'r>(
    registry: &'r Registry,
    modality: &str,
    _sop_class: &str,
) -> Option<&'r LoadedModel> {
    // TODO(#3): Route on the SOP Class too, so that For Processing mammograms are not sent to a model trained on For Presentation images.
    registry.models.iter().find(|m| m.manifest.serves(modality))
}
