//! Speech recognition: audio in as it arrives, transcripts out.

use tokio::sync::mpsc;

use crate::{ProviderStream, TurnId};

/// Audio for recognition: 16 kHz mono samples in [-1, 1].
pub const ASR_SAMPLE_RATE: u32 = 16_000;

/// One utterance to recognise. Send its audio on `audio` as it arrives and drop the sender when the
/// utterance ends.
#[derive(Debug)]
pub struct AsrRequest {
    pub turn: TurnId,
    /// BCP-47, e.g. `en`.
    pub language: String,
    pub audio: mpsc::Receiver<Vec<f32>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AsrEvent {
    /// What has been said so far; may change.
    Partial { turn: TurnId, text: String },
    /// The whole utterance; the last event of the stream.
    Final { turn: TurnId, text: String },
}

/// A speech recogniser. Implementations are shared by every session.
pub trait AsrProvider: Send + Sync + std::fmt::Debug {
    /// Starts recognising an utterance. Dropping the stream cancels it.
    fn transcribe(&self, request: AsrRequest) -> ProviderStream<AsrEvent>;
}
