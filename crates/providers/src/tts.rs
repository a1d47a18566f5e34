//! Speech synthesis: text in, PCM out.

use crate::{ProviderStream, TurnId};

/// One piece of text to speak (usually a sentence or a clause).
#[derive(Clone, Debug, PartialEq)]
pub struct TtsRequest {
    pub turn: TurnId,
    pub text: String,
    pub voice: String,
    /// 1.0 is normal.
    pub speed: f32,
}

/// A chunk of speech: 16-bit mono PCM at `sample_rate`.
#[derive(Clone, Debug, PartialEq)]
pub struct TtsChunk {
    pub turn: TurnId,
    pub sample_rate: u32,
    pub pcm: Vec<i16>,
}

/// A speech synthesiser. Implementations are shared by every session.
pub trait TtsProvider: Send + Sync + std::fmt::Debug {
    /// Starts speaking `request.text`; chunks come as they are ready. Dropping the stream cancels.
    fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk>;
}
