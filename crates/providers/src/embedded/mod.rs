//! The embedded models, run in process and loaded once per process: Silero VAD through ONNX
//! Runtime (loaded at run time from the library the `onnxruntime` wheel ships).

mod onnx;
mod silero;

pub use onnx::OnnxRuntime;
pub use silero::SileroVad;
