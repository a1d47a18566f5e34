//! ONNX Runtime, loaded once per process from `libonnxruntime.so` in the model directory.

use std::path::Path;
use std::sync::OnceLock;

use crate::models::ModelError;

/// The process's ONNX Runtime environment.
#[derive(Clone, Debug)]
pub struct OnnxRuntime {
    environment: ort::environment::Environment,
}

static RUNTIME: OnceLock<Result<OnnxRuntime, String>> = OnceLock::new();

impl OnnxRuntime {
    /// Loads the library at `library` the first time; later calls return the same runtime.
    pub fn load(library: &Path) -> Result<OnnxRuntime, ModelError> {
        RUNTIME
            .get_or_init(|| {
                let builder = ort::init_from(library).map_err(|e| e.to_string())?;
                let environment = builder.with_name("colloquy").build().map_err(|e| e.to_string())?;
                Ok(OnnxRuntime { environment })
            })
            .clone()
            .map_err(|problem| ModelError::unusable(library, format!("ONNX Runtime did not load: {problem}")))
    }

    /// A session for the model at `path`, single-threaded: sessions are many and small, and the
    /// node's cores belong to all of them.
    pub fn session(&self, path: &Path) -> Result<ort::session::Session, ModelError> {
        let fail = |e: String| ModelError::unusable(path, e);
        ort::session::Session::builder(&self.environment)
            .map_err(|e| fail(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| fail(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| fail(e.to_string()))?
            .commit_from_file(path)
            .map_err(|e| fail(e.to_string()))
    }
}
