//! Inference with ONNX Runtime through `ort`: [`runtime`] finds and loads the shared library and
//! chooses execution providers; [`session`] wraps one model's session and runs batches.
//!
//! The library is opened at run time (`load-dynamic`), so a machine without it still runs every
//! other part of Argus, and the error says how to provision it.

pub mod runtime;
pub mod session;

pub use runtime::{ORT_VERSION, Runtime, RuntimeError};
pub use session::{ModelSession, Outputs, SessionError};
