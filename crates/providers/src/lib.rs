//! Speech and language providers behind streaming, cancellable traits.
//!
//! - [`llm::LlmProvider`]: messages in, a stream of text deltas out, with token usage.
//! - [`asr::AsrProvider`]: audio in as it arrives, partial and final transcripts out.
//! - [`tts::TtsProvider`]: text in, a stream of PCM chunks out with their sample rate.
//! - [`tools`]: an agent's tool calls run (HTTP tools), each ending in a `ToolOutcome`.
//! - [`vad::VadModel`]: 16 kHz frames in, speech probability out; one model, per-session state.
//!
//! Every request carries the [`TurnId`] it belongs to, and every answer is a stream: dropping the
//! stream cancels the work at once (an HTTP request is aborted, a local model stops at its next
//! step). Failures are [`ProviderError`]s the engine can act on.
//!
//! `remote` holds the OpenAI-compatible implementations (OpenAI, Azure OpenAI, Groq, vLLM, Ollama,
//! llama.cpp's server, DashScope's compatible mode, …). `vendors` holds the cloud speech vendors
//! (Deepgram, ElevenLabs, Azure, DashScope, …) by name: their parameter structs and streaming
//! clients; `fallback` chains providers of one kind.
//!
//! **API boundary:** this crate knows the providers' wire formats (OpenAI's JSON and SSE, the speech vendors' WebSocket protocols) and nothing
//! of colloquy's own HTTP API, the records or WebRTC.

pub mod asr;
pub mod embedded;
pub mod fallback;
pub mod llm;
pub mod models;
pub mod remote;
mod retry;
pub mod tools;
pub mod tts;
pub mod vad;
pub mod vendors;
pub mod wer;

use std::time::Duration;

pub use colloquy_model::TurnId;

/// Why a provider could not answer. The engine decides by kind: speak the failure message, retry
/// later, or fail the agent.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused the credentials (401, 403).
    #[error("the provider refused the credentials: {0}")]
    Auth(String),
    /// The provider is rate limiting us (429); `retry_after` when it said.
    #[error("the provider is rate limiting: {message}")]
    RateLimited { message: String, retry_after: Option<Duration> },
    /// No first byte within the timeout, after every retry.
    #[error("the provider did not answer within {0:?}")]
    Timeout(Duration),
    /// The provider could not be reached, or failed on its side (5xx), after every retry.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (4xx other than auth and rate limits) or answered with
    /// something that is not its API's shape.
    #[error("bad response from the provider: {0}")]
    BadResponse(String),
    /// The answer started and then broke off before its end.
    #[error("the provider's stream was cut: {0}")]
    CutStream(String),
}

/// A boxed stream of provider results, owned and sendable; dropping it cancels the work.
pub type ProviderStream<T> = futures_util::stream::BoxStream<'static, Result<T, ProviderError>>;
