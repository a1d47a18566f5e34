//! Microsoft Azure AI Speech: synthesis over the REST API with SSML (`tts.rs`) and recognition over
//! the REST API for short audio (`asr.rs`), both with `Ocp-Apim-Subscription-Key` and a region.

pub mod asr;
pub mod tts;

pub(super) use asr::ASR;
pub(super) use tts::TTS;
