//! ByteDance / Volcano Engine TTS over its binary WebSocket protocol:
//! `wss://openspeech.bytedance.com/api/v1/tts/ws_binary` (ZEGO's first-listed voice vendor; ZEGO's
//! `TTS.Params` are this API's `app` and `audio` objects).
//!
//! From Volcano Engine's speech synthesis WebSocket reference ("WebSocket 接口", the same page as its
//! HTTP API, whose parameters it shares): the handshake carries `Authorization: Bearer; <token>`
//! (a semicolon); the client sends one full client request (`frame.rs`) whose JSON is `{app:
//! {appid, token, cluster}, user: {uid}, audio: {voice_type, encoding, rate, speed_ratio, …},
//! request: {reqid, text, operation: "submit"}}`; `submit` streams: the server answers audio-only
//! responses as the clause is synthesised (`encoding: "pcm"`: raw 16-bit mono PCM at `rate`), the
//! last with a negative sequence number, or an error message with the API's codes (3001 bad
//! request, 3003 too many at once, 3005 busy, 3030–3040 server trouble, 3050 no such voice).
//!
//! One connection per clause, as the reference's single-synthesis connections are.

mod frame;

use std::sync::Arc;

use colloquy_model::VendorParamError;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use super::ws::{self, Target};
use super::{TtsVendor, VendorParams};
use crate::tts::{TtsChunk, TtsProvider, TtsRequest};
use crate::{ProviderError, ProviderStream};
use frame::Frame;

pub const DEFAULT_URL: &str = "wss://openspeech.bytedance.com/api/v1/tts/ws_binary";
pub const DEFAULT_CLUSTER: &str = "volcano_tts";
pub const DEFAULT_RATE: u32 = 24_000;
pub const RATES: [u32; 3] = [8_000, 16_000, 24_000];

pub(super) const TTS: TtsVendor = TtsVendor {
    name: "bytedance",
    about: "ByteDance / Volcano Engine TTS (binary WebSocket, streamed)",
    url_param: "url",
    voice_param: "audio.voice_type",
    check: super::check_params::<ByteDanceParams>,
    secrets: ByteDanceParams::SECRETS,
    build: |choice| Ok(Arc::new(ByteDanceTts::new(super::params_of(choice)?)) as Arc<dyn TtsProvider>),
};

/// The API's own layout (ZEGO's `TTS.Params` for vendor `ByteDance`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByteDanceParams {
    pub app: App,
    pub audio: Audio,
    /// Default `wss://openspeech.bytedance.com/api/v1/tts/ws_binary`.
    pub url: Option<String>,
    /// How long the handshake may take, and the longest pause in the audio. Default 10000.
    pub timeout_ms: Option<u32>,
    /// Handshake retries, 0–10. Default 2.
    pub max_retries: Option<u32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub appid: String,
    /// The access token, sent in the body and as `Authorization: Bearer;…`. Secret.
    pub token: String,
    /// Default `volcano_tts`.
    pub cluster: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audio {
    /// The voice; becomes the agent's `tts.voice`.
    pub voice_type: String,
    /// Only `pcm` is played.
    pub encoding: Option<String>,
    /// 8000, 16000 or 24000 (default).
    pub rate: Option<u32>,
    /// 0.2–3. Default: the agent's `tts.speed`.
    pub speed_ratio: Option<f32>,
    /// 0.1–3.
    pub volume_ratio: Option<f32>,
    /// 0.1–3.
    pub pitch_ratio: Option<f32>,
    pub emotion: Option<String>,
    pub language: Option<String>,
}

impl VendorParams for ByteDanceParams {
    const SECRETS: &'static [&'static str] = &["app.token"];

    fn validate(&self) -> Result<(), VendorParamError> {
        let invalid =
            |field: &str, message: &str| Err(VendorParamError { field: field.into(), message: message.into() });
        if self.audio.encoding.as_deref().is_some_and(|e| e != "pcm") {
            return invalid("audio.encoding", "audio.encoding must be \"pcm\": the agent plays raw PCM");
        }
        if let Some(rate) = self.audio.rate
            && !RATES.contains(&rate)
        {
            return invalid("audio.rate", "audio.rate must be 8000, 16000 or 24000");
        }
        if self.audio.voice_type.is_empty() {
            return invalid("audio.voice_type", "audio.voice_type is required");
        }
        if let Some(url) = &self.url {
            super::websocket_url("url", url)?;
        }
        super::in_range("audio.speed_ratio", self.audio.speed_ratio, 0.2..=3.0)?;
        super::in_range("audio.volume_ratio", self.audio.volume_ratio, 0.1..=3.0)?;
        super::in_range("audio.pitch_ratio", self.audio.pitch_ratio, 0.1..=3.0)?;
        crate::vendors::check_limits(self.timeout_ms, self.max_retries)
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug, Clone)]
pub struct ByteDanceTts {
    params: ByteDanceParams,
}

impl ByteDanceTts {
    pub fn new(params: ByteDanceParams) -> ByteDanceTts {
        ByteDanceTts { params }
    }

    fn rate(&self) -> u32 {
        self.params.audio.rate.unwrap_or(DEFAULT_RATE)
    }

    fn target(&self) -> Target {
        let p = &self.params;
        Target {
            url: p.url.clone().unwrap_or_else(|| DEFAULT_URL.to_owned()),
            headers: vec![("authorization", format!("Bearer; {}", p.app.token))],
            timeout: crate::vendors::timeout(p.timeout_ms),
            max_retries: crate::vendors::retries(p.max_retries),
        }
    }

    /// The request for one clause.
    fn body(&self, text: &str, voice: &str, speed: f32) -> serde_json::Value {
        let (app, audio) = (&self.params.app, &self.params.audio);
        let mut audio_json = serde_json::json!({
            "voice_type": voice,
            "encoding": "pcm",
            "rate": self.rate(),
            "speed_ratio": audio.speed_ratio.unwrap_or(speed.clamp(0.2, 3.0)),
        });
        for (name, value) in [("volume_ratio", audio.volume_ratio), ("pitch_ratio", audio.pitch_ratio)] {
            if let Some(value) = value {
                audio_json[name] = value.into();
            }
        }
        for (name, value) in [("emotion", &audio.emotion), ("language", &audio.language)] {
            if let Some(value) = value {
                audio_json[name] = value.clone().into();
            }
        }
        serde_json::json!({
            "app": {"appid": app.appid, "token": app.token, "cluster": app.cluster.as_deref().unwrap_or(DEFAULT_CLUSTER)},
            "user": {"uid": "colloquy"},
            "audio": audio_json,
            "request": {"reqid": uuid::Uuid::now_v7().to_string(), "text": text, "operation": "submit"},
        })
    }
}

impl TtsProvider for ByteDanceTts {
    fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk> {
        let voice = if request.voice.is_empty() { self.params.audio.voice_type.clone() } else { request.voice.clone() };
        let body = self.body(&request.text, &voice, request.speed);
        let (target, rate, turn) = (self.target(), self.rate(), request.turn);
        super::spawn_synthesis(move |chunks| async move {
            let mut socket = ws::connect(&target).await?;
            ws::send(
                &mut socket,
                "Volcano Engine",
                Message::binary(frame::full_client_request(body.to_string().as_bytes())),
            )
            .await?;
            let mut audio = super::ClauseAudio::new(&chunks, turn, rate);
            loop {
                let Ok(message) = tokio::time::timeout(target.timeout, socket.next()).await else {
                    return Err(audio.silent_for(target.timeout));
                };
                let bytes = match message {
                    None => {
                        return Err(ProviderError::CutStream("Volcano Engine closed the connection mid-clause".into()));
                    }
                    Some(Err(e)) => return Err(ProviderError::CutStream(e.to_string())),
                    Some(Ok(Message::Close(frame))) => return Err(ws::closed_early(frame.as_ref())),
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    Some(Ok(Message::Text(text))) => {
                        let shown: String = text.as_str().chars().take(120).collect();
                        return Err(ProviderError::BadResponse(format!("Volcano Engine sent text: {shown}")));
                    }
                    Some(Ok(_)) => continue,
                };
                match frame::parse(&bytes) {
                    Ok(Frame::Audio { audio: pcm, last }) => {
                        if !pcm.is_empty() && !audio.push(&pcm).await {
                            return Ok(());
                        }
                        if last {
                            return Ok(());
                        }
                    }
                    Ok(Frame::Frontend) => {}
                    Ok(Frame::Error { code, message }) => return Err(failure(code, &message)),
                    Err(e) => return Err(ProviderError::BadResponse(format!("not Volcano Engine's framing: {e}"))),
                }
            }
        })
    }
}

/// An error message by its code: 3003 too many at once and 3005 busy (and a spent quota) are rate
/// limits, 3030–3040 the server's trouble, a refused token or grant the credentials; the rest
/// (3001 a bad request, 3010/3011 the text, 3050 no such voice) a request it will not take.
fn failure(code: u32, message: &str) -> ProviderError {
    let text = format!("{code}: {message}");
    let lower = message.to_ascii_lowercase();
    match code {
        3003 | 3005 => ProviderError::RateLimited { message: text, retry_after: None },
        _ if lower.contains("quota exceeded") => ProviderError::RateLimited { message: text, retry_after: None },
        3030..=3040 => ProviderError::Unavailable(text),
        _ if ["token", "authenticate", "grant"].iter().any(|w| lower.contains(w)) => ProviderError::Auth(text),
        _ => ProviderError::BadResponse(text),
    }
}
