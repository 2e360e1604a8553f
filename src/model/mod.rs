//! Model packages: a folder `models/<id>/` holding `model.onnx` and `model.toml`, as specified
//! in models/MANIFEST.md. [`manifest`] reads and checks the TOML; [`registry`] loads every
//! package of the models folder into an ONNX Runtime session at start-up.
//!
//! Routing a study to a model follows the Modality attribute (PS3.3 C.7.3.1).

pub mod manifest;
pub mod registry;

pub use manifest::{Activation, Kind, Manifest, ManifestError, Voi};
pub use registry::{LoadedModel, Registry, RegistryError, choose_model};
