//! The ONNX Runtime library: where it is, loading it once per process, and the execution
//! providers a session is built with.
//!
//! The library is looked for in the settings (`inference.ort_library`), then `ORT_DYLIB_PATH`,
//! then the copy `scripts/provision-onnxruntime.sh` leaves in the cache. The file is checked
//! before `ort` opens it, and the opening itself is guarded, so a missing or wrong library is an
//! error naming the script, never a panic.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider, ExecutionProviderDispatch};
use ort::logging::LogLevel;
use ort::session::builder::SessionBuilder;

use crate::config::Provider;

/// The ONNX Runtime release Argus is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";

/// The command that puts the library where Argus looks for it.
pub const PROVISION_COMMAND: &str = "scripts/provision-onnxruntime.sh";

/// Why ONNX Runtime could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found at {path} (from {origin}); run `{PROVISION_COMMAND}` \
         or set inference.ort_library"
    )]
    LibraryMissing { path: PathBuf, origin: &'static str },

    #[error(
        "cannot load ONNX Runtime library {path}: {reason}; run `{PROVISION_COMMAND}` to \
         provision onnxruntime {ORT_VERSION}"
    )]
    LibraryLoad { path: PathBuf, reason: String },

    #[error("cannot create the ONNX Runtime environment: {0}")]
    Environment(String),
}

/// A loaded ONNX Runtime: one per process, as ONNX Runtime allows one environment.
#[derive(Debug)]
pub struct Runtime {
    library: PathBuf,
    environment: Environment,
}

static RUNTIME: Mutex<Option<&'static Runtime>> = Mutex::new(None);

impl Runtime {
    /// Loads the library once; later calls return the runtime already loaded.
    pub fn init(configured: Option<&Path>) -> Result<&'static Runtime, RuntimeError> {
        let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(runtime) = *slot {
            return Ok(runtime);
        }

        // ort resolves a relative path against the executable's folder; Argus means the
        // working directory, as for every other path in the settings.
        let (library, origin) = locate(configured);
        let library = std::path::absolute(&library).unwrap_or(library);
        check_file(&library, origin)?;
        let environment = load(&library)?;
        tracing::info!(library = %library.display(), "ONNX Runtime loaded");

        let runtime: &'static Runtime = Box::leak(Box::new(Runtime { library, environment }));
        *slot = Some(runtime);
        Ok(runtime)
    }

    /// The library file in use.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// The environment sessions are created in.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }
}

/// Where the library should be, and which source said so.
pub fn locate(configured: Option<&Path>) -> (PathBuf, &'static str) {
    if let Some(path) = configured {
        return (path.to_path_buf(), "setting inference.ort_library");
    }
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) if !path.is_empty() => (PathBuf::from(path), "ORT_DYLIB_PATH"),
        _ => (cached_library(), "the provisioning cache"),
    }
}

/// `${ARGUS_CACHE:-$HOME/.cache/argus}/onnxruntime/<version>/libonnxruntime.so.<version>`.
pub fn cached_library() -> PathBuf {
    let cache = std::env::var_os("ARGUS_CACHE")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/argus")
        });
    cache.join("onnxruntime").join(ORT_VERSION).join(format!("libonnxruntime.so.{ORT_VERSION}"))
}

fn check_file(path: &Path, origin: &'static str) -> Result<(), RuntimeError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() > 0 => Ok(()),
        Ok(_) => Err(RuntimeError::LibraryLoad {
            path: path.to_path_buf(),
            reason: "not a regular, non-empty file".into(),
        }),
        Err(_) => Err(RuntimeError::LibraryMissing { path: path.to_path_buf(), origin }),
    }
}

fn load(path: &Path) -> Result<Environment, RuntimeError> {
    let load_error = |reason: String| RuntimeError::LibraryLoad { path: path.into(), reason };

    // ort may panic inside the library's loader (a library without the expected symbols);
    // such a panic is turned into the same error as a failed dlopen.
    let builder = std::panic::catch_unwind(|| ort::init_from(path))
        .map_err(|_| load_error("the loader panicked".into()))?
        .map_err(|e| load_error(e.to_string()))?;
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        builder.with_name("argus").with_telemetry(false).with_logger(Arc::new(forward_log)).build()
    }));
    built
        .map_err(|_| load_error("the library panicked while starting".into()))?
        .map_err(|e| RuntimeError::Environment(e.to_string()))
}

/// ONNX Runtime's log lines: warnings and errors for the operator, the rest at debug/trace
/// (it reports every graph transformation at info).
fn forward_log(level: LogLevel, category: &str, _id: &str, location: &str, message: &str) {
    match level {
        LogLevel::Fatal | LogLevel::Error => {
            tracing::error!(target: "onnxruntime", category, location, "{message}")
        }
        LogLevel::Warning => tracing::warn!(target: "onnxruntime", category, location, "{message}"),
        LogLevel::Info => tracing::debug!(target: "onnxruntime", category, "{message}"),
        LogLevel::Verbose => tracing::trace!(target: "onnxruntime", category, "{message}"),
    }
}

/// Adds the first usable provider of `preferred` to `builder` and says which it was. Each one
/// skipped is logged once with the reason; CPU is always usable and ends the list.
pub fn apply_providers(
    mut builder: SessionBuilder,
    preferred: &[Provider],
    trt_cache: &Path,
    model: &str,
) -> (SessionBuilder, Provider) {
    // TODO(#3): Register CUDA after TensorRT as well, so that nodes TensorRT cannot take run on the GPU rather than the CPU.
    // The CPU provider ends the list so that its arena setting applies whenever no other
    // provider is usable.
    // TODO(#3): ort 2.0.0-rc.15 registers the CPU provider by switching the arena only and appends no provider, so ONNX Runtime still picks the device by the selection policy ort's SessionBuilder sets (MaxEfficiency); append the CPU provider itself, as the Python binding does, once ort offers a way.
    for &provider in preferred.iter().chain([&Provider::Cpu]) {
        match try_provider(builder, provider, trt_cache) {
            Ok(with) => return (with, provider),
            Err(skipped) => {
                let (back, reason) = *skipped;
                tracing::info!(model, provider = provider.name(), %reason, "provider skipped");
                builder = back;
            }
        }
    }
    // ONNX Runtime always keeps its CPU provider, registered or not.
    (builder, Provider::Cpu)
}

fn try_provider(
    builder: SessionBuilder,
    provider: Provider,
    trt_cache: &Path,
) -> Result<SessionBuilder, Box<(SessionBuilder, String)>> {
    let (available, dispatch) = match provider {
        Provider::TensorRt => (ep::TensorRT::is_available(), tensorrt(trt_cache)),
        Provider::Cuda => (ep::CUDA::is_available(), ep::CUDA::default().build()),
        Provider::Cpu => (Ok(true), cpu().build()),
    };
    match available {
        Ok(true) => {}
        Ok(false) => return Err(Box::new((builder, "not in this ONNX Runtime build".into()))),
        Err(e) => return Err(Box::new((builder, e.to_string()))),
    }
    builder.with_execution_providers([dispatch.error_on_failure()]).map_err(|e| {
        let reason = e.to_string();
        Box::new((e.recover(), reason))
    })
}

/// The CPU provider with ONNX Runtime's arena allocator, as the Python binding has it by default
/// (`enable_cpu_mem_arena`). `ort`'s default disables the arena, and without it every
/// intermediate tensor of a run is a fresh `malloc`: at batch 8 the large ones are mapped and
/// unmapped on each run, and the page faults cost ResNet50 and DenseNet121 7 to 17 % of their
/// throughput.
fn cpu() -> ep::CPU {
    ep::CPU::default().with_arena_allocator(true)
}

fn tensorrt(cache: &Path) -> ExecutionProviderDispatch {
    let path = cache.to_string_lossy().into_owned();
    ep::TensorRT::default()
        .with_engine_cache(true)
        .with_engine_cache_path(path.clone())
        .with_timing_cache(true)
        .with_timing_cache_path(path)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_comes_first() {
        let (path, origin) = locate(Some(Path::new("/opt/ort/libonnxruntime.so")));
        assert_eq!(path, Path::new("/opt/ort/libonnxruntime.so"));
        assert!(origin.contains("inference.ort_library"));
    }

    #[test]
    fn missing_file_names_the_script() {
        let err = check_file(Path::new("/nonexistent/libonnxruntime.so"), "test").unwrap_err();
        let text = err.to_string();
        assert!(text.contains(PROVISION_COMMAND) && text.contains("/nonexistent"), "{text}");
    }

    #[test]
    fn cache_path_ends_with_the_version() {
        let path = cached_library();
        assert!(path.ends_with("onnxruntime/1.31.1/libonnxruntime.so.1.31.1"), "{path:?}");
    }
}
