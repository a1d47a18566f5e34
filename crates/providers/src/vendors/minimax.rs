//! MiniMax T2A streaming TTS over its WebSocket: `wss://api.minimax.io/ws/v1/t2a_v2`.
//!
//! From MiniMax's API reference ("Text to Speech (T2A) WebSocket" and its AsyncAPI document):
//! `Authorization: Bearer <api key>`; the server greets with `connected_success`; `task_start`
//! (`model`, `voice_setting: {voice_id, speed, vol, pitch}`, `audio_setting: {sample_rate, format:
//! "pcm", channel: 1}`) is answered `task_started`; each `task_continue` (`text`) is answered by
//! `task_continued` events whose `data.audio` is the audio, hex-encoded, the last with `is_final:
//! true`; `task_finish` ends the session. A failure is `task_failed` with `base_resp: {status_code,
//! status_msg}`.
//!
//! One session per clause.

use std::sync::Arc;
use std::time::Duration;

use colloquy_model::VendorParamError;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::ws::{self, Socket, Target};
use super::{TtsVendor, VendorParams};
use crate::tts::{TtsChunk, TtsProvider, TtsRequest};
use crate::{ProviderError, ProviderStream};

pub const DEFAULT_URL: &str = "wss://api.minimax.io/ws/v1/t2a_v2";
pub const DEFAULT_MODEL: &str = "speech-02-turbo";
pub const DEFAULT_SAMPLE_RATE: u32 = 24_000;
pub const SAMPLE_RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 32_000, 44_100];

pub(super) const TTS: TtsVendor = TtsVendor {
    name: "minimax",
    about: "MiniMax T2A streaming TTS (WebSocket)",
    url_param: "url",
    voice_param: "voice_id",
    check: super::check_params::<MiniMaxParams>,
    secrets: MiniMaxParams::SECRETS,
    build: |choice| Ok(Arc::new(MiniMaxTts { params: super::params_of(choice)? }) as Arc<dyn TtsProvider>),
};

/// MiniMax's parameters, in its own names.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiniMaxParams {
    /// Sent as `Authorization: Bearer …`. Secret.
    pub api_key: String,
    /// The voice; becomes the agent's `tts.voice`.
    pub voice_id: String,
    /// Default `speech-02-turbo`.
    pub model: Option<String>,
    /// Default `wss://api.minimax.io/ws/v1/t2a_v2` (`api.minimaxi.com` in mainland China).
    pub url: Option<String>,
    /// 8000, 16000, 22050, 24000 (default), 32000 or 44100.
    pub sample_rate: Option<u32>,
    /// 0.5–2. Default: the agent's `tts.speed`.
    pub speed: Option<f32>,
    /// (0, 10]. Default 1.
    pub vol: Option<f32>,
    /// −12–12.
    pub pitch: Option<i32>,
    /// A language to favour (`Chinese`, `English`, `auto`, …).
    pub language_boost: Option<String>,
    pub timeout_ms: Option<u32>,
    pub max_retries: Option<u32>,
}

impl VendorParams for MiniMaxParams {
    const SECRETS: &'static [&'static str] = &["api_key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        if self.voice_id.is_empty() || self.voice_id.len() > 256 {
            return Err(VendorParamError {
                field: "voice_id".into(),
                message: "voice_id must be 1 to 256 characters".into(),
            });
        }
        if let Some(rate) = self.sample_rate
            && !SAMPLE_RATES.contains(&rate)
        {
            return Err(VendorParamError {
                field: "sample_rate".into(),
                message: format!("sample_rate must be one of {SAMPLE_RATES:?}, not {rate}"),
            });
        }
        if let Some(url) = &self.url {
            super::websocket_url("url", url)?;
        }
        super::in_range("speed", self.speed, 0.5..=2.0)?;
        super::in_range("vol", self.vol, 0.01..=10.0)?;
        super::in_range("pitch", self.pitch, -12..=12)?;
        crate::vendors::check_limits(self.timeout_ms, self.max_retries)
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct MiniMaxTts {
    params: MiniMaxParams,
}

impl MiniMaxTts {
    fn sample_rate(&self) -> u32 {
        self.params.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE)
    }

    fn target(&self) -> Target {
        let p = &self.params;
        Target {
            url: p.url.clone().unwrap_or_else(|| DEFAULT_URL.to_owned()),
            headers: vec![("authorization", format!("Bearer {}", p.api_key))],
            timeout: crate::vendors::timeout(p.timeout_ms),
            max_retries: crate::vendors::retries(p.max_retries),
        }
    }

    fn task_start(&self, voice: &str, speed: f32) -> serde_json::Value {
        let p = &self.params;
        let voice_setting = serde_json::json!({
            "voice_id": voice,
            "speed": p.speed.unwrap_or(speed.clamp(0.5, 2.0)),
            "vol": p.vol.unwrap_or(1.0),
            "pitch": p.pitch.unwrap_or(0),
        });
        let mut start = serde_json::json!({
            "event": "task_start",
            "model": p.model.clone().unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            "voice_setting": voice_setting,
            "audio_setting": {"sample_rate": self.sample_rate(), "format": "pcm", "channel": 1},
        });
        if let Some(language) = &p.language_boost {
            start["language_boost"] = language.clone().into();
        }
        start
    }
}

impl TtsProvider for MiniMaxTts {
    fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk> {
        let voice = if request.voice.is_empty() { self.params.voice_id.clone() } else { request.voice.clone() };
        let start = self.task_start(&voice, request.speed);
        let (target, rate) = (self.target(), self.sample_rate());
        super::spawn_synthesis(move |chunks| async move { speak(&target, start, &request, rate, &chunks).await })
    }
}

async fn speak(
    target: &Target,
    start: serde_json::Value,
    request: &TtsRequest,
    rate: u32,
    chunks: &mpsc::Sender<Result<TtsChunk, ProviderError>>,
) -> Result<(), ProviderError> {
    let mut socket = ws::connect(target).await?;
    expect(&mut socket, target.timeout, "connected_success").await?;
    ws::send(&mut socket, "MiniMax", Message::text(start.to_string())).await?;
    expect(&mut socket, target.timeout, "task_started").await?;
    let text = serde_json::json!({"event": "task_continue", "text": request.text});
    ws::send(&mut socket, "MiniMax", Message::text(text.to_string())).await?;
    let mut audio = crate::vendors::ClauseAudio::new(chunks, request.turn, rate);
    loop {
        let event = match next(&mut socket, target.timeout).await {
            Err(ProviderError::Timeout(t)) => return Err(audio.silent_for(t)),
            other => other?,
        };
        let hex = event.data.as_ref().and_then(|d| d.audio.as_deref()).unwrap_or_default();
        if !hex.is_empty() {
            let bytes = decode_hex(hex).ok_or_else(|| ProviderError::BadResponse("MiniMax audio is not hex".into()))?;
            if !audio.push(&bytes).await {
                return Ok(());
            }
        }
        if event.is_final == Some(true) {
            if !audio.started() {
                return Err(ProviderError::CutStream("MiniMax finished without audio".into()));
            }
            let finish = serde_json::json!({"event": "task_finish"});
            let _ = ws::send(&mut socket, "MiniMax", Message::text(finish.to_string())).await;
            return Ok(());
        }
    }
}

/// Waits for the event `name`; a `task_failed` is its error.
async fn expect(socket: &mut Socket, timeout: Duration, name: &str) -> Result<(), ProviderError> {
    loop {
        if next(socket, timeout).await?.event.as_deref() == Some(name) {
            return Ok(());
        }
    }
}

/// The next event; `task_failed` is an error.
async fn next(socket: &mut Socket, timeout: Duration) -> Result<Event, ProviderError> {
    loop {
        let message = match tokio::time::timeout(timeout, socket.next()).await {
            Err(_) => return Err(ProviderError::Timeout(timeout)),
            Ok(message) => message,
        };
        let text = match message {
            None => return Err(ProviderError::CutStream("MiniMax closed the session early".into())),
            Some(Err(e)) => return Err(ProviderError::CutStream(e.to_string())),
            Some(Ok(Message::Close(frame))) => return Err(ws::closed_early(frame.as_ref())),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
        };
        let event: Event = serde_json::from_str(text.as_str()).map_err(|e| {
            let shown: String = text.as_str().chars().take(120).collect();
            ProviderError::BadResponse(format!("not a MiniMax event ({e}): {shown}"))
        })?;
        if event.event.as_deref() == Some("task_failed") {
            return Err(event.failure());
        }
        return Ok(event);
    }
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    data: Option<EventData>,
    #[serde(default)]
    is_final: Option<bool>,
    #[serde(default)]
    base_resp: Option<BaseResp>,
}

#[derive(Debug, Deserialize)]
struct EventData {
    #[serde(default)]
    audio: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BaseResp {
    #[serde(default)]
    status_code: i64,
    #[serde(default)]
    status_msg: String,
}

impl Event {
    fn failure(&self) -> ProviderError {
        let (code, text) =
            self.base_resp.as_ref().map_or((0, "the task failed"), |b| (b.status_code, b.status_msg.as_str()));
        let message = format!("{code}: {text}");
        // MiniMax's codes: 1004 authentication, 1002 and 1039 rate limits, 1008 balance, 1000/1001/1024 server.
        match code {
            1004 => ProviderError::Auth(message),
            1002 | 1039 | 1008 => ProviderError::RateLimited { message, retry_after: None },
            1000 | 1001 | 1024 => ProviderError::Unavailable(message),
            _ => ProviderError::BadResponse(message),
        }
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 == 1 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}
