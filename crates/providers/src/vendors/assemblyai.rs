//! AssemblyAI Universal-Streaming ASR: `wss://streaming.assemblyai.com/v3/ws`.
//!
//! From AssemblyAI's "Streaming API" reference and its "Message Sequence" page: the handshake
//! carries `Authorization: <api key>` and `speech_model`, `sample_rate`, `encoding=pcm_s16le`,
//! `format_turns` in the query; the server says `Begin`, then `Turn` messages (the whole
//! `transcript` of the turn so far, by `turn_order`, `end_of_turn`, `turn_is_formatted`) while
//! raw PCM goes up as binary frames; `{"type": "Terminate"}` ends the session: the in-flight turns,
//! `Termination`, and a close with 1000.
//!
//! One session per utterance.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use colloquy_model::VendorParamError;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use super::ws::{self, Socket, Target};
use super::{AsrVendor, VendorParams};
use crate::asr::{ASR_SAMPLE_RATE, AsrEvent, AsrProvider, AsrRequest};
use crate::{ProviderError, ProviderStream};

pub const DEFAULT_URL: &str = "wss://streaming.assemblyai.com/v3/ws";

pub(super) const ASR: AsrVendor = AsrVendor {
    name: "assemblyai",
    about: "AssemblyAI Universal-Streaming (WebSocket v3)",
    url_param: "url",
    check: super::check_params::<AssemblyAiParams>,
    secrets: AssemblyAiParams::SECRETS,
    build: |choice| Ok(Arc::new(AssemblyAiAsr { params: super::params_of(choice)? }) as Arc<dyn AsrProvider>),
};

/// AssemblyAI's parameters (Agora's `asr.params` for vendor `assemblyai`: `api_key`, `language`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssemblyAiParams {
    /// Sent as `Authorization`. Secret.
    pub api_key: String,
    /// Picks the model when `speech_model` is not given: English, or the multilingual one.
    /// Default: the agent's `asr.language`.
    pub language: Option<String>,
    /// `universal-streaming-english` or `universal-streaming-multilingual`, or a newer one.
    pub speech_model: Option<String>,
    /// Default `wss://streaming.assemblyai.com/v3/ws` (`streaming.eu.assemblyai.com` in the EU).
    pub url: Option<String>,
    /// Formatted final transcripts (punctuation, casing). Default true.
    pub format_turns: Option<bool>,
    /// Words and phrases to boost.
    pub keyterms_prompt: Option<Vec<String>>,
    pub end_of_turn_confidence_threshold: Option<f32>,
    pub min_end_of_turn_silence_when_confident: Option<u32>,
    pub max_turn_silence: Option<u32>,
    pub timeout_ms: Option<u32>,
    pub max_retries: Option<u32>,
}

impl VendorParams for AssemblyAiParams {
    const SECRETS: &'static [&'static str] = &["api_key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        if let Some(url) = &self.url {
            super::websocket_url("url", url)?;
        }
        super::in_range("end_of_turn_confidence_threshold", self.end_of_turn_confidence_threshold, 0.0..=1.0)?;
        super::in_range(
            "min_end_of_turn_silence_when_confident",
            self.min_end_of_turn_silence_when_confident,
            0..=10_000,
        )?;
        super::in_range("max_turn_silence", self.max_turn_silence, 0..=60_000)?;
        crate::vendors::check_limits(self.timeout_ms, self.max_retries)
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct AssemblyAiAsr {
    params: AssemblyAiParams,
}

impl AssemblyAiAsr {
    fn target(&self, language: &str) -> Target {
        let p = &self.params;
        let language = p.language.as_deref().unwrap_or(language);
        let english = language == "en" || language.starts_with("en-");
        let model = p.speech_model.clone().unwrap_or_else(|| {
            if english { "universal-streaming-english" } else { "universal-streaming-multilingual" }.to_owned()
        });
        let mut query = vec![
            ("speech_model", model),
            ("sample_rate", ASR_SAMPLE_RATE.to_string()),
            ("encoding", "pcm_s16le".to_owned()),
            ("format_turns", p.format_turns.unwrap_or(true).to_string()),
        ];
        query.extend(p.end_of_turn_confidence_threshold.map(|t| ("end_of_turn_confidence_threshold", t.to_string())));
        query.extend(
            p.min_end_of_turn_silence_when_confident
                .map(|ms| ("min_end_of_turn_silence_when_confident", ms.to_string())),
        );
        query.extend(p.max_turn_silence.map(|ms| ("max_turn_silence", ms.to_string())));
        if let Some(terms) = &p.keyterms_prompt {
            query.push(("keyterms_prompt", serde_json::to_string(terms).unwrap_or_default()));
        }
        let base = p.url.as_deref().unwrap_or(DEFAULT_URL);
        let separator = if base.contains('?') { '&' } else { '?' };
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", super::encode(v))).collect();
        Target {
            url: format!("{base}{separator}{}", query.join("&")),
            headers: vec![("authorization", p.api_key.clone())],
            timeout: crate::vendors::timeout(p.timeout_ms),
            max_retries: crate::vendors::retries(p.max_retries),
        }
    }
}

impl AsrProvider for AssemblyAiAsr {
    fn transcribe(&self, request: AsrRequest) -> ProviderStream<AsrEvent> {
        let target = self.target(&request.language);
        super::spawn_recognition(request.turn, move |events| recognise(target, request, events))
    }
}

async fn recognise(target: Target, mut request: AsrRequest, events: super::Partials) -> Result<String, ProviderError> {
    let mut socket = ws::connect(&target).await?;
    // `Begin` opens the session, within the timeout.
    match tokio::time::timeout(target.timeout, socket.next()).await {
        Err(_) => return Err(ProviderError::Timeout(target.timeout)),
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<Answer>(text.as_str()) {
            Ok(Answer::Begin {}) => {}
            Ok(Answer::Error { error, error_code }) => return Err(refused(error_code, error)),
            _ => return Err(ProviderError::BadResponse("AssemblyAI's session did not begin with Begin".into())),
        },
        Ok(Some(Ok(Message::Close(frame)))) => return Err(ws::closed_early(frame.as_ref())),
        Ok(None | Some(Err(_))) => return Err(ProviderError::CutStream("AssemblyAI closed before Begin".into())),
        Ok(Some(Ok(_))) => {
            return Err(ProviderError::BadResponse("AssemblyAI's session did not begin with Begin".into()));
        }
    }
    // The transcript of each turn, by its order: a later message for a turn replaces it.
    let mut turns: BTreeMap<u64, String> = BTreeMap::new();
    let mut audio_open = true;
    let deadline = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(deadline);
    let said = |turns: &BTreeMap<u64, String>| {
        turns.values().map(|t| t.trim()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" ")
    };
    loop {
        tokio::select! {
            chunk = request.audio.recv(), if audio_open => match chunk {
                Some(samples) => {
                    let pcm = super::le_pcm16(&samples);
                    send(&mut socket, Message::binary(pcm)).await?;
                }
                None => {
                    audio_open = false;
                    send(&mut socket, Message::text(r#"{"type":"Terminate"}"#)).await?;
                    deadline.as_mut().reset(tokio::time::Instant::now() + target.timeout);
                }
            },
            () = &mut deadline => {
                return Err(ProviderError::CutStream(format!("no Termination within {:?}", target.timeout)));
            }
            message = socket.next() => match message {
                None if audio_open => {
                    return Err(ProviderError::CutStream("AssemblyAI closed before the utterance ended".into()));
                }
                None => return Ok(said(&turns)),
                Some(Err(e)) => return Err(ProviderError::CutStream(e.to_string())),
                Some(Ok(Message::Close(frame))) => {
                    return match frame.as_ref().map(|f| u16::from(f.code)) {
                        Some(1000) | None if !audio_open => Ok(said(&turns)),
                        _ => Err(ws::closed_early(frame.as_ref())),
                    };
                }
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<Answer>(text.as_str()) {
                    Ok(Answer::Turn { turn_order, transcript }) => {
                        if turns.get(&turn_order) == Some(&transcript) {
                            continue;
                        }
                        turns.insert(turn_order, transcript);
                        let partial = AsrEvent::Partial { turn: request.turn, text: said(&turns) };
                        if events.send(Ok(partial)).await.is_err() {
                            return Err(ProviderError::CutStream("cancelled".into()));
                        }
                    }
                    Ok(Answer::Termination {}) => return Ok(said(&turns)),
                    Ok(Answer::Error { error, error_code }) => return Err(refused(error_code, error)),
                    Ok(_) => {}
                    Err(e) => {
                        let shown: String = text.as_str().chars().take(120).collect();
                        return Err(ProviderError::BadResponse(format!("not an AssemblyAI message ({e}): {shown}")));
                    }
                },
                Some(Ok(Message::Binary(_))) => {
                    return Err(ProviderError::BadResponse("AssemblyAI sent a binary frame".into()));
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn send(socket: &mut Socket, message: Message) -> Result<(), ProviderError> {
    ws::send(socket, "AssemblyAI", message).await
}

/// What AssemblyAI sends on a session.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum Answer {
    Begin {},
    SpeechStarted {},
    Turn {
        turn_order: u64,
        #[serde(default)]
        transcript: String,
    },
    Termination {},
    #[serde(rename = "Error")]
    Error {
        #[serde(default)]
        error: String,
        #[serde(default)]
        error_code: Option<u16>,
    },
}

/// An `Error` message by its code ("Common session errors and closures"): 3009 too many
/// concurrent sessions, 1008 an unauthorized connection, 3005 the server's own failure.
fn refused(code: Option<u16>, error: String) -> ProviderError {
    let message = match code {
        Some(code) => format!("{code}: {error}"),
        None => error,
    };
    match code {
        Some(3009) => ProviderError::RateLimited { message, retry_after: None },
        Some(1008) => ProviderError::Auth(message),
        Some(3005) => ProviderError::Unavailable(message),
        _ => ProviderError::BadResponse(message),
    }
}
