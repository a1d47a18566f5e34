//! Cartesia Sonic streaming TTS: `wss://api.cartesia.ai/tts/websocket`.
//!
//! From Cartesia's API reference ("Text to Speech (WebSocket)" and "API conventions"): the
//! handshake carries `Authorization: Bearer <api key>` and `Cartesia-Version: <date>`; a
//! generation request is one JSON message (`model_id`, `transcript`, `voice: {mode: "id", id}`,
//! `output_format: {container: "raw", encoding: "pcm_s16le", sample_rate}`, `language`,
//! `context_id`, `continue: false`); answers carry the `context_id`: `{"type": "chunk", "data":
//! <base64>}`, then `{"type": "done"}`, or `{"type": "error", "error", "status_code"}`.
//!
//! One connection per clause.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use colloquy_model::VendorParamError;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::ws::{self, Target};
use super::{TtsVendor, VendorParams};
use crate::tts::{TtsChunk, TtsProvider, TtsRequest};
use crate::{ProviderError, ProviderStream};

pub const DEFAULT_URL: &str = "wss://api.cartesia.ai/tts/websocket";
pub const DEFAULT_MODEL: &str = "sonic-2";
/// The API version sent when the params name none.
pub const DEFAULT_VERSION: &str = "2025-04-16";
pub const DEFAULT_SAMPLE_RATE: u32 = 24_000;
pub const SAMPLE_RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];

pub(super) const TTS: TtsVendor = TtsVendor {
    name: "cartesia",
    about: "Cartesia Sonic streaming TTS (WebSocket)",
    url_param: "url",
    voice_param: "voice_id",
    check: super::check_params::<CartesiaParams>,
    secrets: CartesiaParams::SECRETS,
    build: |choice| Ok(Arc::new(CartesiaTts { params: super::params_of(choice)? }) as Arc<dyn TtsProvider>),
};

/// Cartesia's parameters, in Agora's layout for them (`tts.params` for vendor `cartesia`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartesiaParams {
    /// Sent as `Authorization: Bearer …`. Secret.
    pub api_key: String,
    /// `{"mode": "id", "id": "<voice id>"}`, as Cartesia's requests name a voice. Or `voice_id`.
    pub voice: Option<Voice>,
    /// The voice id, flat; becomes the agent's `tts.voice`.
    pub voice_id: Option<String>,
    /// Default `sonic-2`.
    pub model_id: Option<String>,
    /// Only raw 16-bit PCM is played: `container` `raw`, `encoding` `pcm_s16le`, and the rate.
    pub output_format: Option<OutputFormat>,
    /// ISO 639-1, e.g. `en`.
    pub language: Option<String>,
    /// Default `wss://api.cartesia.ai/tts/websocket`.
    pub url: Option<String>,
    /// The `Cartesia-Version` date; default 2025-04-16.
    pub cartesia_version: Option<String>,
    pub timeout_ms: Option<u32>,
    pub max_retries: Option<u32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voice {
    pub mode: String,
    pub id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFormat {
    pub container: Option<String>,
    pub encoding: Option<String>,
    pub sample_rate: Option<u32>,
}

impl VendorParams for CartesiaParams {
    const SECRETS: &'static [&'static str] = &["api_key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        let invalid =
            |field: &str, message: &str| Err(VendorParamError { field: field.into(), message: message.into() });
        match (&self.voice, &self.voice_id) {
            (None, None) => return invalid("voice", "voice ({\"mode\": \"id\", \"id\": …}) or voice_id is required"),
            (Some(_), Some(_)) => return invalid("voice_id", "give voice or voice_id, not both"),
            (Some(voice), None) if voice.mode != "id" => return invalid("voice.mode", "voice.mode must be \"id\""),
            _ => {}
        }
        if let Some(format) = &self.output_format {
            if format.container.as_deref().is_some_and(|c| c != "raw") {
                return invalid(
                    "output_format.container",
                    "output_format.container must be \"raw\": the agent plays PCM",
                );
            }
            if format.encoding.as_deref().is_some_and(|e| e != "pcm_s16le") {
                return invalid("output_format.encoding", "output_format.encoding must be \"pcm_s16le\"");
            }
            if let Some(rate) = format.sample_rate
                && !SAMPLE_RATES.contains(&rate)
            {
                return invalid(
                    "output_format.sample_rate",
                    "output_format.sample_rate must be 8000, 16000, 22050, 24000, 44100 or 48000",
                );
            }
        }
        if let Some(url) = &self.url {
            super::websocket_url("url", url)?;
        }
        crate::vendors::check_limits(self.timeout_ms, self.max_retries)
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct CartesiaTts {
    params: CartesiaParams,
}

impl CartesiaTts {
    fn sample_rate(&self) -> u32 {
        self.params.output_format.as_ref().and_then(|f| f.sample_rate).unwrap_or(DEFAULT_SAMPLE_RATE)
    }

    fn voice_id(&self) -> String {
        self.params.voice_id.clone().or_else(|| self.params.voice.as_ref().map(|v| v.id.clone())).unwrap_or_default()
    }

    fn target(&self) -> Target {
        let p = &self.params;
        Target {
            url: p.url.clone().unwrap_or_else(|| DEFAULT_URL.to_owned()),
            headers: vec![
                ("authorization", format!("Bearer {}", p.api_key)),
                ("cartesia-version", p.cartesia_version.clone().unwrap_or_else(|| DEFAULT_VERSION.to_owned())),
            ],
            timeout: crate::vendors::timeout(p.timeout_ms),
            max_retries: crate::vendors::retries(p.max_retries),
        }
    }
}

impl TtsProvider for CartesiaTts {
    fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk> {
        let voice = if request.voice.is_empty() { self.voice_id() } else { request.voice.clone() };
        let context = context_id();
        let mut generation = serde_json::json!({
            "model_id": self.params.model_id.clone().unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            "transcript": request.text,
            "voice": {"mode": "id", "id": voice},
            "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": self.sample_rate()},
            "context_id": context,
            "continue": false,
        });
        if let Some(language) = &self.params.language {
            generation["language"] = language.clone().into();
        }
        let (target, rate) = (self.target(), self.sample_rate());
        super::spawn_synthesis(move |chunks| async move {
            speak(&target, generation, &context, &request, rate, &chunks).await
        })
    }
}

async fn speak(
    target: &Target,
    generation: serde_json::Value,
    context: &str,
    request: &TtsRequest,
    rate: u32,
    chunks: &mpsc::Sender<Result<TtsChunk, ProviderError>>,
) -> Result<(), ProviderError> {
    let mut socket = ws::connect(target).await?;
    ws::send(&mut socket, "Cartesia", Message::text(generation.to_string())).await?;
    let mut audio = crate::vendors::ClauseAudio::new(chunks, request.turn, rate);
    loop {
        let message = match tokio::time::timeout(target.timeout, socket.next()).await {
            Err(_) => return Err(audio.silent_for(target.timeout)),
            Ok(message) => message,
        };
        let text = match message {
            None => return Err(ProviderError::CutStream("Cartesia closed before the clause was spoken".into())),
            Some(Err(e)) => return Err(ProviderError::CutStream(e.to_string())),
            Some(Ok(Message::Close(frame))) => return Err(ws::closed_early(frame.as_ref())),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
        };
        let answer: Answer = serde_json::from_str(text.as_str()).map_err(|e| {
            let shown: String = text.as_str().chars().take(120).collect();
            ProviderError::BadResponse(format!("not a Cartesia message ({e}): {shown}"))
        })?;
        if answer.context_id.as_deref().is_some_and(|c| c != context) {
            continue;
        }
        match answer.kind.as_str() {
            "chunk" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(answer.data.unwrap_or_default().as_bytes())
                    .map_err(|e| ProviderError::BadResponse(format!("Cartesia audio is not base64: {e}")))?;
                if !audio.push(&bytes).await {
                    return Ok(());
                }
            }
            "done" if !audio.started() => {
                return Err(ProviderError::CutStream("Cartesia was done without audio".into()));
            }
            "done" => return Ok(()),
            "error" => {
                let message = format!("{}: {}", answer.status_code.unwrap_or(0), answer.error.unwrap_or_default());
                return Err(match answer.status_code {
                    Some(401 | 403) => ProviderError::Auth(message),
                    Some(429) => ProviderError::RateLimited { message, retry_after: None },
                    Some(500..=599) => ProviderError::Unavailable(message),
                    _ => ProviderError::BadResponse(message),
                });
            }
            _ => {}
        }
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    context_id: Option<String>,
    #[serde(default)]
    status_code: Option<u16>,
    #[serde(default)]
    error: Option<String>,
}

fn context_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("colloquy-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
