//! ByteDance / Volcano Engine TTS over its HTTP API: `POST
//! https://openspeech.bytedance.com/api/v1/tts` (ZEGO's first-listed voice vendor; ZEGO's
//! `TTS.Params` are this API's `app` and `audio` objects).
//!
//! From Volcano Engine's speech synthesis HTTP API reference: `Authorization: Bearer;<token>`
//! (a semicolon, not a space) and a JSON body `{app: {appid, token, cluster}, user: {uid}, audio:
//! {voice_type, encoding, rate, speed_ratio, …}, request: {reqid, text, operation: "query"}}`;
//! the answer is `{reqid, code, message, data}` with `code` 3000 for success and `data` the
//! base64 audio (`encoding: "pcm"`: raw 16-bit mono PCM at `rate`). The whole clause comes back
//! at once; there are no partial results on this API.
//!
//! One request per clause.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use colloquy_model::{RemoteEndpoint, VendorParamError};
use serde::Deserialize;

use super::{TtsVendor, VendorParams};
use crate::tts::{TtsChunk, TtsProvider, TtsRequest};
use crate::{ProviderError, ProviderStream};

pub const DEFAULT_URL: &str = "https://openspeech.bytedance.com/api/v1/tts";
pub const DEFAULT_CLUSTER: &str = "volcano_tts";
pub const DEFAULT_RATE: u32 = 24_000;
pub const RATES: [u32; 3] = [8_000, 16_000, 24_000];

pub(super) const TTS: TtsVendor = TtsVendor {
    name: "bytedance",
    about: "ByteDance / Volcano Engine TTS (HTTP)",
    url_param: "url",
    voice_param: "audio.voice_type",
    check: super::check_params::<ByteDanceParams>,
    secrets: ByteDanceParams::SECRETS,
    build: |choice| Ok(Arc::new(ByteDanceTts::new(super::params_of(choice)?)?) as Arc<dyn TtsProvider>),
};

/// The API's own layout (ZEGO's `TTS.Params` for vendor `ByteDance`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByteDanceParams {
    pub app: App,
    pub audio: Audio,
    /// Default `https://openspeech.bytedance.com/api/v1/tts`.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u32>,
    #[serde(default)]
    pub max_retries: Option<u32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub appid: String,
    /// The access token, sent in the body and as `Authorization: Bearer;…`. Secret.
    pub token: String,
    /// Default `volcano_tts`.
    #[serde(default)]
    pub cluster: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audio {
    /// The voice; becomes the agent's `tts.voice`.
    pub voice_type: String,
    /// Only `pcm` is played.
    #[serde(default)]
    pub encoding: Option<String>,
    /// 8000, 16000 or 24000 (default).
    #[serde(default)]
    pub rate: Option<u32>,
    /// 0.2–3. Default: the agent's `tts.speed`.
    #[serde(default)]
    pub speed_ratio: Option<f32>,
    /// 0.1–3.
    #[serde(default)]
    pub volume_ratio: Option<f32>,
    /// 0.1–3.
    #[serde(default)]
    pub pitch_ratio: Option<f32>,
    #[serde(default)]
    pub emotion: Option<String>,
    #[serde(default)]
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
        if let Some(url) = &self.url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return invalid("url", "url must be an http:// or https:// URL");
        }
        super::in_range("audio.speed_ratio", self.audio.speed_ratio, 0.2..=3.0)?;
        super::in_range("audio.volume_ratio", self.audio.volume_ratio, 0.1..=3.0)?;
        super::in_range("audio.pitch_ratio", self.audio.pitch_ratio, 0.1..=3.0)?;
        super::in_range("timeout_ms", self.timeout_ms, RemoteEndpoint::TIMEOUT_RANGE_MS)?;
        super::in_range("max_retries", self.max_retries, 0..=RemoteEndpoint::MAX_RETRIES)
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug, Clone)]
pub struct ByteDanceTts {
    params: ByteDanceParams,
    http: reqwest::Client,
}

impl ByteDanceTts {
    pub fn new(params: ByteDanceParams) -> Result<ByteDanceTts, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Self::timeout_of(&params))
            .build()
            .map_err(|e| format!("no HTTP client: {e}"))?;
        Ok(ByteDanceTts { params, http })
    }

    fn timeout_of(params: &ByteDanceParams) -> Duration {
        Duration::from_millis(u64::from(params.timeout_ms.unwrap_or(RemoteEndpoint::DEFAULT_TIMEOUT_MS)))
    }

    fn rate(&self) -> u32 {
        self.params.audio.rate.unwrap_or(DEFAULT_RATE)
    }

    /// The request body for one clause.
    fn body(&self, text: &str, voice: &str, speed: f32) -> serde_json::Value {
        static NEXT: AtomicU64 = AtomicU64::new(0);
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
        let reqid = format!("colloquy-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        serde_json::json!({
            "app": {"appid": app.appid, "token": app.token, "cluster": app.cluster.as_deref().unwrap_or(DEFAULT_CLUSTER)},
            "user": {"uid": "colloquy"},
            "audio": audio_json,
            "request": {"reqid": reqid, "text": text, "operation": "query"},
        })
    }

    async fn speak(&self, body: serde_json::Value) -> Result<Vec<u8>, ProviderError> {
        let timeout = Self::timeout_of(&self.params);
        let retries = self.params.max_retries.unwrap_or(RemoteEndpoint::DEFAULT_MAX_RETRIES);
        let url = self.params.url.clone().unwrap_or_else(|| DEFAULT_URL.to_owned());
        crate::retry::before_first_byte(retries, || async {
            let request =
                self.http.post(&url).header("Authorization", format!("Bearer;{}", self.params.app.token)).json(&body);
            let response = match tokio::time::timeout(timeout, request.send()).await {
                Err(_) => return Err((ProviderError::Timeout(timeout), None)),
                Ok(Err(e)) => return Err((ProviderError::Unavailable(crate::remote::describe(e)), None)),
                Ok(Ok(response)) => response,
            };
            let status = response.status();
            let text = match tokio::time::timeout(timeout, response.bytes()).await {
                Err(_) => return Err((ProviderError::CutStream(format!("no whole answer within {timeout:?}")), None)),
                Ok(Err(e)) => return Err((ProviderError::CutStream(crate::remote::describe(e)), None)),
                Ok(Ok(text)) => text,
            };
            let error = match serde_json::from_slice::<Answer>(&text) {
                Ok(answer) if answer.code == 3000 => return answer.audio().map_err(|e| (e, None)),
                Ok(answer) => answer.failure(status.as_u16()),
                Err(_) if status.is_success() => ProviderError::BadResponse("not a Volcano Engine TTS answer".into()),
                Err(_) => match status.as_u16() {
                    401 | 403 => ProviderError::Auth(status.to_string()),
                    429 => ProviderError::RateLimited { message: status.to_string(), retry_after: None },
                    500..=599 => ProviderError::Unavailable(status.to_string()),
                    _ => ProviderError::BadResponse(status.to_string()),
                },
            };
            Err((error, None))
        })
        .await
    }
}

impl TtsProvider for ByteDanceTts {
    fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk> {
        let voice = if request.voice.is_empty() { self.params.audio.voice_type.clone() } else { request.voice.clone() };
        let body = self.body(&request.text, &voice, request.speed);
        let (client, rate, turn) = (self.clone(), self.rate(), request.turn);
        super::spawn_synthesis(move |chunks| async move {
            let bytes = client.speak(body).await?;
            super::ClauseAudio::new(&chunks, turn, rate).push(&bytes).await;
            Ok(())
        })
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    code: i64,
    #[serde(default, alias = "Message")]
    message: Option<String>,
    #[serde(default)]
    data: Option<String>,
}

impl Answer {
    fn audio(self) -> Result<Vec<u8>, ProviderError> {
        let data = self.data.unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .map_err(|e| ProviderError::BadResponse(format!("the audio is not base64: {e}")))?;
        if bytes.is_empty() {
            return Err(ProviderError::BadResponse("Volcano Engine answered no audio".into()));
        }
        Ok(bytes)
    }

    /// A refusal by its code: 3001 bad request, 3003 too many at once, 3005 busy, 3030–3040
    /// server trouble, 3050 an unknown voice; an HTTP 401/403 is a refused token.
    fn failure(&self, status: u16) -> ProviderError {
        let message = format!("{}: {}", self.code, self.message.as_deref().unwrap_or("refused"));
        match (status, self.code) {
            (401 | 403, _) => ProviderError::Auth(message),
            (_, 3003 | 3005) => ProviderError::RateLimited { message, retry_after: None },
            (_, 3030..=3040) => ProviderError::Unavailable(message),
            _ if message.to_ascii_lowercase().contains("token") => ProviderError::Auth(message),
            _ => ProviderError::BadResponse(message),
        }
    }
}
