//! Voice activity detection: 16 kHz frames in, speech probability out. One shared model,
//! per-session state.

use crate::ProviderError;

/// Samples per VAD frame: 32 ms at 16 kHz.
pub const VAD_FRAME: usize = 512;

/// A loaded VAD model, shared by every session.
pub trait VadModel: Send + Sync + std::fmt::Debug {
    /// A fresh per-session detector.
    fn session(&self) -> Box<dyn VadSession>;
}

/// One stream's detector: keeps the state that carries from frame to frame.
pub trait VadSession: Send + std::fmt::Debug {
    /// The probability that `frame` (512 samples at 16 kHz, in [-1, 1]) is speech.
    fn probability(&mut self, frame: &[f32; VAD_FRAME]) -> Result<f32, ProviderError>;
    /// Forgets the stream so far.
    fn reset(&mut self);
}
