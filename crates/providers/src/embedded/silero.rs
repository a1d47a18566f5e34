//! Silero VAD v6 (MIT), the ONNX model from the `silero-vad` wheel. Inputs: `input` [1, 64 + 512]
//! (the previous frame's last 64 samples, then the new 512), `state` [2, 1, 128], `sr` (int64
//! 16000). Outputs: `output` [1, 1] (the speech probability) and `stateN`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::Tensor;

use super::OnnxRuntime;
use crate::ProviderError;
use crate::models::ModelError;
use crate::vad::{VAD_FRAME, VadModel, VadSession};

const CONTEXT: usize = 64;
const STATE: usize = 2 * 128;

/// The loaded model, shared: ONNX Runtime's `run` takes `&mut`, so sessions take turns on it
/// (about 0.1 ms a frame).
#[derive(Debug, Clone)]
pub struct SileroVad {
    session: Arc<Mutex<Session>>,
}

impl SileroVad {
    pub fn load(runtime: &OnnxRuntime, path: &Path) -> Result<SileroVad, ModelError> {
        Ok(SileroVad { session: Arc::new(Mutex::new(runtime.session(path)?)) })
    }
}

impl VadModel for SileroVad {
    fn session(&self) -> Box<dyn VadSession> {
        Box::new(SileroSession { model: self.clone(), state: vec![0.0; STATE], context: [0.0; CONTEXT] })
    }
}

#[derive(Debug)]
struct SileroSession {
    model: SileroVad,
    state: Vec<f32>,
    context: [f32; CONTEXT],
}

impl VadSession for SileroSession {
    fn probability(&mut self, frame: &[f32; VAD_FRAME]) -> Result<f32, ProviderError> {
        let fail = |e: ort::Error| ProviderError::BadResponse(format!("Silero VAD: {e}"));
        let mut input = Vec::with_capacity(CONTEXT + VAD_FRAME);
        input.extend_from_slice(&self.context);
        input.extend_from_slice(frame);
        let inputs = ort::inputs! {
            "input" => Tensor::from_array(([1usize, CONTEXT + VAD_FRAME], input)).map_err(fail)?,
            "state" => Tensor::from_array(([2usize, 1, 128], self.state.clone())).map_err(fail)?,
            "sr" => Tensor::from_array(((), vec![16_000i64])).map_err(fail)?,
        };
        let mut session = self
            .model
            .session
            .lock()
            .map_err(|_| ProviderError::Unavailable("the VAD model lock is poisoned".into()))?;
        let outputs = session.run(inputs).map_err(fail)?;
        let (_, probability) = outputs["output"].try_extract_tensor::<f32>().map_err(fail)?;
        let (_, state) = outputs["stateN"].try_extract_tensor::<f32>().map_err(fail)?;
        let probability = probability.first().copied().unwrap_or(0.0);
        self.state.copy_from_slice(state);
        self.context.copy_from_slice(&frame[VAD_FRAME - CONTEXT..]);
        Ok(probability)
    }

    fn reset(&mut self) {
        self.state.fill(0.0);
        self.context.fill(0.0);
    }
}
