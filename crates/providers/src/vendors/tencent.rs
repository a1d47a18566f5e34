//! Tencent Cloud real-time speech recognition over WebSocket:
//! `wss://asr.cloud.tencent.com/asr/v2/<appid>?<params>&signature=…`.
//!
//! From Tencent Cloud's "Real-Time Speech Recognition (WebSocket)" reference (API 2.0): the
//! request parameters (`secretid`, `timestamp`, `expired`, `nonce`, `engine_model_type`,
//! `voice_id`, `voice_format`, …) go in the query, and `signature` is
//! `base64(HMAC-SHA1(secret key, "asr.cloud.tencent.com/asr/v2/<appid>?" + the parameters sorted by
//! name))`. The server's first text message is the handshake's answer (`code` 0, or an error code
//! such as 4002 for a bad signature); then PCM goes up as binary frames in real time, and results
//! come as `{code, voice_id, result: {slice_type, voice_text_str, …}, final}` (`slice_type` 2 ends a
//! sentence); `{"type": "end"}` ends the audio, and the message with `final: 1` ends the stream.
//!
//! One stream per utterance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use colloquy_model::VendorParamError;
use futures_util::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha1::Sha1;
use tokio_tungstenite::tungstenite::Message;

use super::ws::{self, Target};
use super::{AsrVendor, VendorParams};
use crate::asr::{AsrEvent, AsrProvider, AsrRequest};
use crate::{ProviderError, ProviderStream};

pub const DEFAULT_URL: &str = "wss://asr.cloud.tencent.com/asr/v2";

pub(super) const ASR: AsrVendor = AsrVendor {
    name: "tencent",
    about: "Tencent Cloud real-time speech recognition (WebSocket, signed URL)",
    url_param: "url",
    check: super::check_params::<TencentParams>,
    secrets: TencentParams::SECRETS,
    build: |choice| Ok(Arc::new(TencentAsr { params: super::params_of(choice)? }) as Arc<dyn AsrProvider>),
};

/// Tencent's parameters, in its own names.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TencentParams {
    pub appid: String,
    pub secret_id: String,
    /// Signs the URL; never sent. Secret.
    pub secret_key: String,
    /// `16k_zh`, `16k_en`, `16k_ca`, …; default from the agent's `asr.language`.
    pub engine_model_type: Option<String>,
    /// Default `wss://asr.cloud.tencent.com/asr/v2` (the appid is appended).
    pub url: Option<String>,
    /// Sentence detection; default 1.
    pub needvad: Option<u8>,
    pub hotword_id: Option<String>,
    /// 0–2.
    pub filter_dirty: Option<u8>,
    /// 0–2.
    pub filter_modal: Option<u8>,
    /// 0–1.
    pub convert_num_mode: Option<u8>,
    pub timeout_ms: Option<u32>,
    pub max_retries: Option<u32>,
}

impl VendorParams for TencentParams {
    const SECRETS: &'static [&'static str] = &["secret_key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        if self.appid.is_empty() || !self.appid.chars().all(|c| c.is_ascii_digit()) {
            return Err(VendorParamError {
                field: "appid".into(),
                message: "appid must be the account's numeric AppId".into(),
            });
        }
        if let Some(url) = &self.url {
            super::websocket_url("url", url)?;
        }
        super::in_range("needvad", self.needvad, 0..=1)?;
        super::in_range("filter_dirty", self.filter_dirty, 0..=2)?;
        super::in_range("filter_modal", self.filter_modal, 0..=2)?;
        super::in_range("convert_num_mode", self.convert_num_mode, 0..=1)?;
        crate::vendors::check_limits(self.timeout_ms, self.max_retries)
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct TencentAsr {
    params: TencentParams,
}

/// The engine for a BCP-47 language.
fn engine_for(language: &str) -> &'static str {
    match language.split('-').next().unwrap_or_default().to_ascii_lowercase().as_str() {
        "en" => "16k_en",
        "yue" => "16k_yue",
        "ja" => "16k_ja",
        "ko" => "16k_ko",
        _ => "16k_zh",
    }
}

impl TencentAsr {
    /// The signed URL of one stream, at `now` (seconds since the epoch).
    pub fn signed_url(&self, language: &str, now: u64) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let p = &self.params;
        let voice_id = format!("colloquy-{}-{}-{now}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut query: Vec<(&str, String)> = vec![
            ("secretid", p.secret_id.clone()),
            ("timestamp", now.to_string()),
            ("expired", (now + 86_400).to_string()),
            ("nonce", (now % 1_000_000_000).to_string()),
            ("engine_model_type", p.engine_model_type.clone().unwrap_or_else(|| engine_for(language).to_owned())),
            ("voice_id", voice_id),
            ("voice_format", "1".to_owned()),
            ("needvad", p.needvad.unwrap_or(1).to_string()),
        ];
        query.extend(p.hotword_id.clone().map(|h| ("hotword_id", h)));
        query.extend(p.filter_dirty.map(|v| ("filter_dirty", v.to_string())));
        query.extend(p.filter_modal.map(|v| ("filter_modal", v.to_string())));
        query.extend(p.convert_num_mode.map(|v| ("convert_num_mode", v.to_string())));
        query.sort();
        let base = p.url.as_deref().unwrap_or(DEFAULT_URL).trim_end_matches('/');
        let plain: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let host_and_path = base.split_once("://").map_or(base, |(_, rest)| rest);
        let original = format!("{host_and_path}/{}?{}", p.appid, plain.join("&"));
        let signature = sign(&p.secret_key, &original);
        let encoded: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", super::encode(v))).collect();
        format!("{base}/{}?{}&signature={}", p.appid, encoded.join("&"), super::encode(&signature))
    }

    fn target(&self, language: &str) -> Target {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let p = &self.params;
        Target {
            url: self.signed_url(language, now),
            headers: Vec::new(),
            timeout: crate::vendors::timeout(p.timeout_ms),
            max_retries: crate::vendors::retries(p.max_retries),
        }
    }
}

/// `base64(HMAC-SHA1(key, text))`, Tencent's signature.
pub fn sign(key: &str, text: &str) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl AsrProvider for TencentAsr {
    fn transcribe(&self, request: AsrRequest) -> ProviderStream<AsrEvent> {
        let target = self.target(&request.language);
        super::spawn_recognition(request.turn, move |events| recognise(target, request, events))
    }
}

async fn recognise(target: Target, mut request: AsrRequest, events: super::Partials) -> Result<String, ProviderError> {
    let mut socket = ws::connect(&target).await?;
    // The handshake's answer comes first.
    let first = tokio::time::timeout(target.timeout, socket.next())
        .await
        .map_err(|_| ProviderError::Timeout(target.timeout))?;
    match first {
        Some(Ok(Message::Text(text))) => {
            let answer = parse(text.as_str())?;
            if answer.code != 0 {
                return Err(answer.failure());
            }
        }
        Some(Ok(Message::Close(frame))) => return Err(ws::closed_early(frame.as_ref())),
        other => return Err(ProviderError::BadResponse(format!("Tencent's handshake answer was {other:?}"))),
    }
    let (mut finals, mut current): (Vec<String>, String) = (Vec::new(), String::new());
    let mut audio_open = true;
    let deadline = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            chunk = request.audio.recv(), if audio_open => match chunk {
                Some(samples) => {
                    let pcm = super::le_pcm16(&samples);
                    ws::send(&mut socket, "Tencent", Message::binary(pcm)).await?;
                }
                None => {
                    audio_open = false;
                    ws::send(&mut socket, "Tencent", Message::text(r#"{"type":"end"}"#)).await?;
                    deadline.as_mut().reset(tokio::time::Instant::now() + target.timeout);
                }
            },
            () = &mut deadline => {
                return Err(ProviderError::CutStream(format!("no final result within {:?}", target.timeout)));
            }
            message = socket.next() => {
                let text = match message {
                    None => return Err(ProviderError::CutStream("Tencent closed before the end of the stream".into())),
                    Some(Err(e)) => return Err(ProviderError::CutStream(e.to_string())),
                    Some(Ok(Message::Close(frame))) => return Err(ws::closed_early(frame.as_ref())),
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                };
                let answer = parse(text.as_str())?;
                if answer.code != 0 {
                    return Err(answer.failure());
                }
                if let Some(result) = &answer.result {
                    let text = result.voice_text_str.trim().to_owned();
                    if result.slice_type == 2 {
                        if !text.is_empty() {
                            finals.push(text);
                        }
                        current.clear();
                    } else {
                        current = text;
                    }
                    let said: Vec<&str> =
                        finals.iter().map(String::as_str).chain([current.as_str()]).filter(|t| !t.is_empty()).collect();
                    if !said.is_empty() {
                        let partial = AsrEvent::Partial { turn: request.turn, text: said.join(" ") };
                        if events.send(Ok(partial)).await.is_err() {
                            return Err(ProviderError::CutStream("cancelled".into()));
                        }
                    }
                }
                if answer.r#final == 1 {
                    if !current.is_empty() {
                        finals.push(std::mem::take(&mut current));
                    }
                    return Ok(finals.join(" "));
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    result: Option<SliceResult>,
    #[serde(default)]
    r#final: i64,
}

#[derive(Debug, Deserialize)]
struct SliceResult {
    #[serde(default)]
    slice_type: i64,
    #[serde(default)]
    voice_text_str: String,
}

fn parse(text: &str) -> Result<Answer, ProviderError> {
    serde_json::from_str(text).map_err(|e| {
        let shown: String = text.chars().take(120).collect();
        ProviderError::BadResponse(format!("not a Tencent ASR message ({e}): {shown}"))
    })
}

impl Answer {
    /// Tencent's codes: 4001 parameters, 4002 authentication, 4003 not activated, 4004 out of
    /// resources, 4005 arrears, 4006 concurrency, 4008 audio timeout, 5000+ server.
    fn failure(&self) -> ProviderError {
        let message = format!("{}: {}", self.code, self.message);
        match self.code {
            4002 | 4003 | 4005 => ProviderError::Auth(message),
            4004 | 4006 => ProviderError::RateLimited { message, retry_after: None },
            5000.. => ProviderError::Unavailable(message),
            _ => ProviderError::BadResponse(message),
        }
    }
}
