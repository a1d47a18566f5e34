//! Microsoft Azure AI Speech: synthesis over the REST API with SSML (`tts.rs`) and real-time
//! recognition over the Speech Service WebSocket protocol (`asr.rs`, framed by `usp.rs`), both
//! with `Ocp-Apim-Subscription-Key` and a region.

pub mod asr;
pub mod tts;
mod usp;

pub(super) use asr::ASR;
pub(super) use tts::TTS;
