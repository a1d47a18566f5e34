//! Deepgram Aura streaming TTS: `wss://api.deepgram.com/v1/speak`.
//!
//! From Deepgram's API reference ("Text to Speech Stream", `/v1/speak`, and its `Speak`, `Flush`
//! and `Close` pages): the handshake carries `Authorization: Token KEY` and `model` (the voice,
//! `aura-2-thalia-en`), `encoding=linear16`, `sample_rate` in the query; the client sends
//! `{"type": "Speak", "text": …}` and `{"type": "Flush"}`; the audio comes as binary frames and
//! `{"type": "Flushed", "sequence_id": …}` says the flushed text is all spoken; `{"type": "Close"}`
//! ends the connection. Warnings and errors come as `{"type": "Warning" | "Error", …}`.
//!
//! One connection per clause.

use std::sync::Arc;

use colloquy_model::VendorParamError;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::tts::{TtsChunk, TtsProvider, TtsRequest};
use crate::vendors::ws::{self, Socket, Target};
use crate::vendors::{TtsVendor, VendorParams};
use crate::{ProviderError, ProviderStream};

pub const DEFAULT_URL: &str = "wss://api.deepgram.com/v1/speak";
pub const DEFAULT_MODEL: &str = "aura-2-thalia-en";
pub const DEFAULT_SAMPLE_RATE: u32 = 24_000;
/// The rates Aura streams `linear16` at.
pub const SAMPLE_RATES: [u32; 5] = [8_000, 16_000, 24_000, 32_000, 48_000];

pub(in crate::vendors) const TTS: TtsVendor = TtsVendor {
    name: "deepgram",
    about: "Deepgram Aura streaming TTS (WebSocket)",
    url_param: "base_url",
    voice_param: "model",
    check: crate::vendors::check_params::<AuraParams>,
    secrets: AuraParams::SECRETS,
    build: |choice| Ok(Arc::new(AuraTts { params: crate::vendors::params_of(choice)? }) as Arc<dyn TtsProvider>),
};

/// Aura's parameters (Agora's `tts.params` for vendor `deepgram`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuraParams {
    /// Sent as `Authorization: Token …`. Secret.
    pub key: String,
    /// Default `wss://api.deepgram.com/v1/speak`.
    pub base_url: Option<String>,
    /// The voice model; default `aura-2-thalia-en`. Becomes the agent's `tts.voice`.
    pub model: Option<String>,
    /// 8000, 16000, 24000 (default), 32000 or 48000.
    pub sample_rate: Option<u32>,
    pub timeout_ms: Option<u32>,
    pub max_retries: Option<u32>,
}

impl VendorParams for AuraParams {
    const SECRETS: &'static [&'static str] = &["key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        if let Some(url) = &self.base_url {
            crate::vendors::websocket_url("base_url", url)?;
        }
        if let Some(rate) = self.sample_rate
            && !SAMPLE_RATES.contains(&rate)
        {
            return Err(VendorParamError {
                field: "sample_rate".into(),
                message: format!("sample_rate must be one of {SAMPLE_RATES:?}, not {rate}"),
            });
        }
        crate::vendors::check_limits(self.timeout_ms, self.max_retries)
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct AuraTts {
    params: AuraParams,
}

impl AuraTts {
    fn sample_rate(&self) -> u32 {
        self.params.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE)
    }

    fn target(&self, voice: &str) -> Target {
        let p = &self.params;
        let base = p.base_url.as_deref().unwrap_or(DEFAULT_URL);
        let separator = if base.contains('?') { '&' } else { '?' };
        Target {
            url: format!(
                "{base}{separator}model={}&encoding=linear16&sample_rate={}",
                crate::vendors::encode(voice),
                self.sample_rate()
            ),
            headers: vec![("authorization", format!("Token {}", p.key))],
            timeout: crate::vendors::timeout(p.timeout_ms),
            max_retries: crate::vendors::retries(p.max_retries),
        }
    }
}

impl TtsProvider for AuraTts {
    fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk> {
        let voice = match request.voice.as_str() {
            "" => self.params.model.clone().unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            voice => voice.to_owned(),
        };
        let target = self.target(&voice);
        let rate = self.sample_rate();
        crate::vendors::spawn_synthesis(move |chunks| async move { speak(&target, &request, rate, &chunks).await })
    }
}

async fn speak(
    target: &Target,
    request: &TtsRequest,
    rate: u32,
    chunks: &mpsc::Sender<Result<TtsChunk, ProviderError>>,
) -> Result<(), ProviderError> {
    let mut socket = ws::connect(target).await?;
    send(&mut socket, serde_json::json!({"type": "Speak", "text": request.text})).await?;
    send(&mut socket, serde_json::json!({"type": "Flush"})).await?;
    let mut audio = crate::vendors::ClauseAudio::new(chunks, request.turn, rate);
    loop {
        let message = match tokio::time::timeout(target.timeout, socket.next()).await {
            Err(_) => return Err(audio.silent_for(target.timeout)),
            Ok(message) => message,
        };
        match message {
            None => return Err(ProviderError::CutStream("Deepgram closed before the clause was spoken".into())),
            Some(Err(e)) => return Err(ProviderError::CutStream(e.to_string())),
            Some(Ok(Message::Close(frame))) => return Err(ws::closed_early(frame.as_ref())),
            Some(Ok(Message::Binary(bytes))) => {
                if !audio.push(&bytes).await {
                    return Ok(());
                }
            }
            Some(Ok(Message::Text(text))) => {
                let message: Answer = serde_json::from_str(text.as_str()).map_err(|e| {
                    let shown: String = text.as_str().chars().take(120).collect();
                    ProviderError::BadResponse(format!("not a Deepgram message ({e}): {shown}"))
                })?;
                match message.kind.as_str() {
                    "Flushed" if !audio.started() => {
                        return Err(ProviderError::CutStream("Deepgram flushed without audio".into()));
                    }
                    "Flushed" => {
                        let _ = send(&mut socket, serde_json::json!({"type": "Close"})).await;
                        return Ok(());
                    }
                    "Error" => return Err(ProviderError::BadResponse(message.describe())),
                    "Warning" => tracing::warn!(warning = %message.describe(), "Deepgram warned"),
                    _ => {}
                }
            }
            Some(Ok(_)) => {}
        }
    }
}

async fn send(socket: &mut Socket, message: serde_json::Value) -> Result<(), ProviderError> {
    let message = Message::text(message.to_string());
    socket.send(message).await.map_err(|e| ProviderError::CutStream(format!("sending to Deepgram: {e}")))
}

/// A text message from `/v1/speak`.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    err_msg: Option<String>,
}

impl Answer {
    fn describe(&self) -> String {
        let text = self.description.as_deref().or(self.err_msg.as_deref()).unwrap_or("no description");
        match &self.code {
            Some(code) => format!("{code}: {text}"),
            None => text.to_owned(),
        }
    }
}
