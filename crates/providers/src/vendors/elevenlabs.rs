//! ElevenLabs streaming TTS over its stream-input WebSocket:
//! `wss://api.elevenlabs.io/v1/text-to-speech/{voice_id}/stream-input`.
//!
//! From ElevenLabs' API reference ("WebSocket", `/v1/text-to-speech/:voice_id/stream-input`): the
//! handshake carries `xi-api-key` and the query `model_id`, `output_format` (`pcm_24000`: raw
//! 16-bit mono PCM), `language_code`, `apply_text_normalization`. The first message opens the
//! stream with a single space and the voice settings (`{"text": " ", "voice_settings": …}`); text
//! follows (`{"text": "… ", "flush": true}` makes it speak what it has), and `{"text": ""}` ends
//! the input. Audio comes as `{"audio": "<base64>", "isFinal": …}` messages, the last one with
//! `"isFinal": true`, then the server closes. Errors come as a JSON message with `message` /
//! `error` and a close frame (1008 for a bad key or quota).
//!
//! One connection per clause: the engine sends a reply clause by clause as the LLM writes it.

use std::sync::Arc;

use base64::Engine as _;
use colloquy_model::VendorParamError;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::ws::{self, Socket, Target};
use super::{TtsVendor, VendorParams};
use crate::tts::{TtsChunk, TtsProvider, TtsRequest};
use crate::{ProviderError, ProviderStream};

pub const DEFAULT_BASE_URL: &str = "wss://api.elevenlabs.io/v1";
pub const DEFAULT_MODEL: &str = "eleven_flash_v2_5";
pub const DEFAULT_SAMPLE_RATE: u32 = 24_000;
/// The PCM rates ElevenLabs streams (`pcm_<rate>`).
pub const SAMPLE_RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];
/// ElevenLabs' speed range.
pub const SPEED_RANGE: std::ops::RangeInclusive<f32> = 0.7..=1.2;

pub(super) const TTS: TtsVendor = TtsVendor {
    name: "elevenlabs",
    about: "ElevenLabs streaming TTS (WebSocket stream-input)",
    url_param: "base_url",
    voice_param: "voice_id",
    check: super::check_params::<ElevenLabsParams>,
    secrets: ElevenLabsParams::SECRETS,
    build: |choice| Ok(Arc::new(ElevenLabsTts::new(super::params_of(choice)?)) as Arc<dyn TtsProvider>),
};

/// ElevenLabs' parameters, in its own names (Agora's `tts.params` for vendor `elevenlabs`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElevenLabsParams {
    /// The API key, sent as `xi-api-key`. Secret.
    pub key: String,
    /// The voice; an update of the agent's `tts.voice` replaces it.
    pub voice_id: String,
    /// Default `eleven_flash_v2_5`.
    pub model_id: Option<String>,
    /// Default `wss://api.elevenlabs.io/v1`.
    pub base_url: Option<String>,
    /// 8000, 16000, 22050, 24000 (default), 44100 or 48000.
    pub sample_rate: Option<u32>,
    pub stability: Option<f32>,
    pub similarity_boost: Option<f32>,
    pub style: Option<f32>,
    pub use_speaker_boost: Option<bool>,
    /// 0.7–1.2. Default: the agent's `tts.speed`, brought into that range.
    pub speed: Option<f32>,
    /// ISO 639-1, for the multilingual models.
    pub language_code: Option<String>,
    /// `auto`, `on` or `off`.
    pub apply_text_normalization: Option<String>,
    /// 100–120000 ms: the handshake, and the longest pause in the audio. Default 10000.
    pub timeout_ms: Option<u32>,
    /// Handshake retries, 0–10. Default 2.
    pub max_retries: Option<u32>,
}

impl VendorParams for ElevenLabsParams {
    const SECRETS: &'static [&'static str] = &["key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        if let Some(url) = &self.base_url {
            super::websocket_url("base_url", url)?;
        }
        if let Some(rate) = self.sample_rate
            && !SAMPLE_RATES.contains(&rate)
        {
            return Err(VendorParamError {
                field: "sample_rate".into(),
                message: format!("sample_rate must be one of {SAMPLE_RATES:?}, not {rate}"),
            });
        }
        for (field, value) in
            [("stability", self.stability), ("similarity_boost", self.similarity_boost), ("style", self.style)]
        {
            super::in_range(field, value, 0.0..=1.0)?;
        }
        super::in_range("speed", self.speed, SPEED_RANGE)?;
        if let Some(mode) = &self.apply_text_normalization
            && !["auto", "on", "off"].contains(&mode.as_str())
        {
            return Err(VendorParamError {
                field: "apply_text_normalization".into(),
                message: "apply_text_normalization must be \"auto\", \"on\" or \"off\"".into(),
            });
        }
        if self.voice_id.is_empty() || self.voice_id.len() > 128 {
            return Err(VendorParamError {
                field: "voice_id".into(),
                message: "voice_id must be 1 to 128 characters".into(),
            });
        }
        crate::vendors::check_limits(self.timeout_ms, self.max_retries)?;
        Ok(())
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct ElevenLabsTts {
    params: ElevenLabsParams,
}

impl ElevenLabsTts {
    pub fn new(params: ElevenLabsParams) -> ElevenLabsTts {
        ElevenLabsTts { params }
    }

    fn sample_rate(&self) -> u32 {
        self.params.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE)
    }

    fn target(&self, voice: &str) -> Target {
        let p = &self.params;
        let mut query = vec![
            ("model_id", p.model_id.clone().unwrap_or_else(|| DEFAULT_MODEL.to_owned())),
            ("output_format", format!("pcm_{}", self.sample_rate())),
        ];
        query.extend(p.language_code.clone().map(|l| ("language_code", l)));
        query.extend(p.apply_text_normalization.clone().map(|n| ("apply_text_normalization", n)));
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", super::encode(v))).collect();
        let base = p.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        Target {
            url: format!("{base}/text-to-speech/{}/stream-input?{}", super::encode(voice), query.join("&")),
            headers: vec![("xi-api-key", p.key.clone())],
            timeout: crate::vendors::timeout(p.timeout_ms),
            max_retries: crate::vendors::retries(p.max_retries),
        }
    }

    /// The opening message: a space and the voice settings.
    fn opening(&self, speed: f32) -> serde_json::Value {
        let p = &self.params;
        let mut settings = serde_json::Map::new();
        let numbers = [("stability", p.stability), ("similarity_boost", p.similarity_boost), ("style", p.style)];
        for (name, value) in numbers {
            if let Some(value) = value {
                settings.insert(name.into(), value.into());
            }
        }
        if let Some(boost) = p.use_speaker_boost {
            settings.insert("use_speaker_boost".into(), boost.into());
        }
        let speed = p.speed.unwrap_or(speed.clamp(*SPEED_RANGE.start(), *SPEED_RANGE.end()));
        if speed != 1.0 {
            settings.insert("speed".into(), speed.into());
        }
        let mut opening = serde_json::json!({"text": " "});
        if !settings.is_empty() {
            opening["voice_settings"] = settings.into();
        }
        opening
    }
}

impl TtsProvider for ElevenLabsTts {
    fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk> {
        let voice = if request.voice.is_empty() { self.params.voice_id.clone() } else { request.voice.clone() };
        let target = self.target(&voice);
        let opening = self.opening(request.speed);
        let rate = self.sample_rate();
        let speak = Speak { target, opening, text: request.text, turn: request.turn, rate };
        super::spawn_synthesis(move |chunks| async move { speak.run(&chunks).await })
    }
}

struct Speak {
    target: Target,
    opening: serde_json::Value,
    text: String,
    turn: crate::TurnId,
    rate: u32,
}

impl Speak {
    async fn run(self, chunks: &mpsc::Sender<Result<TtsChunk, ProviderError>>) -> Result<(), ProviderError> {
        let mut socket = ws::connect(&self.target).await?;
        let text = format!("{} ", self.text.trim_end());
        send(&mut socket, &self.opening).await?;
        send(&mut socket, &serde_json::json!({"text": text, "flush": true})).await?;
        send(&mut socket, &serde_json::json!({"text": ""})).await?;
        let mut clause = super::ClauseAudio::new(chunks, self.turn, self.rate);
        loop {
            let message = match tokio::time::timeout(self.target.timeout, socket.next()).await {
                Err(_) => return Err(clause.silent_for(self.target.timeout)),
                Ok(message) => message,
            };
            let text = match message {
                None => return finished(clause.started()),
                Some(Err(e)) => return Err(ProviderError::CutStream(e.to_string())),
                Some(Ok(Message::Close(frame))) => {
                    return match frame.as_ref().map(|f| u16::from(f.code)) {
                        Some(1000) | None => finished(clause.started()),
                        Some(_) => Err(ws::closed_early(frame.as_ref())),
                    };
                }
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Binary(_))) => {
                    return Err(ProviderError::BadResponse("ElevenLabs sent a binary frame".into()));
                }
                Some(Ok(_)) => continue,
            };
            let answer: Answer = serde_json::from_str(text.as_str()).map_err(|e| {
                let shown: String = text.as_str().chars().take(120).collect();
                ProviderError::BadResponse(format!("not an ElevenLabs message ({e}): {shown}"))
            })?;
            if let Some(error) = answer.error() {
                return Err(error);
            }
            if let Some(audio) = answer.audio.filter(|a| !a.is_empty()) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(audio.as_bytes())
                    .map_err(|e| ProviderError::BadResponse(format!("ElevenLabs audio is not base64: {e}")))?;
                if !clause.push(&bytes).await {
                    return Ok(());
                }
            }
            if answer.is_final == Some(true) {
                return finished(clause.started());
            }
        }
    }
}

fn finished(started: bool) -> Result<(), ProviderError> {
    if !started {
        return Err(ProviderError::CutStream("ElevenLabs ended the stream without audio".into()));
    }
    Ok(())
}

async fn send(socket: &mut Socket, message: &serde_json::Value) -> Result<(), ProviderError> {
    let message = Message::text(message.to_string());
    socket.send(message).await.map_err(|e| ProviderError::CutStream(format!("sending to ElevenLabs: {e}")))
}

/// What ElevenLabs sends on the stream: audio, the end, or an error.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    audio: Option<String>,
    #[serde(default)]
    is_final: Option<bool>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl Answer {
    fn error(&self) -> Option<ProviderError> {
        let what = self.error.as_deref().or(self.message.as_deref())?;
        if self.audio.is_some() {
            return None;
        }
        let text = match (&self.error, &self.message) {
            (Some(error), Some(message)) => format!("{error}: {message}"),
            _ => what.to_owned(),
        };
        let lower = text.to_ascii_lowercase();
        Some(if lower.contains("api key") || lower.contains("api_key") || lower.contains("auth") {
            ProviderError::Auth(text)
        } else if lower.contains("quota") || lower.contains("rate") || lower.contains("too many") {
            ProviderError::RateLimited { message: text, retry_after: None }
        } else {
            ProviderError::BadResponse(text)
        })
    }
}
