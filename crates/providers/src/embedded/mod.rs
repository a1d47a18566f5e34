//! The embedded models, run in process and loaded once per process: Silero VAD and Piper TTS
//! through ONNX Runtime (loaded at run time from the library the `onnxruntime` wheel ships), Piper
//! with phonemes from the `espeak-ng` command.

mod ct2;
mod espeak;
mod llm;
mod onnx;
mod piper;
mod silero;
mod whisper;

pub use llm::LocalLlm;
pub use onnx::OnnxRuntime;
pub use piper::PiperTts;
pub use silero::SileroVad;
pub use whisper::WhisperAsr;
