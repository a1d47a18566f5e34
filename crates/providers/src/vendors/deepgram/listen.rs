//! Deepgram live streaming ASR: `wss://api.deepgram.com/v1/listen`.
//!
//! From Deepgram's API reference ("Live Audio", `GET /v1/listen`, and the "Streaming" guides):
//! the handshake carries `Authorization: Token KEY` and the options as query parameters; we ask
//! for raw `encoding=linear16&sample_rate=16000&channels=1` with `interim_results=true`. Audio goes
//! as binary frames; `{"type":"CloseStream"}` asks Deepgram to finish. It answers `Results`
//! messages (`channel.alternatives[0].transcript`, `is_final`, `speech_final`), a `Metadata`
//! message, then closes. Failures: the handshake is refused with an HTTP status and a JSON body
//! (`err_code`, `err_msg`); a stream is ended by a close frame (1008 for audio it cannot decode,
//! 1011 for a timeout).
//!
//! One connection per utterance: the engine opens a recognition when the user starts speaking and
//! closes its audio when the turn ends.

use std::sync::Arc;
use std::time::Duration;

use colloquy_model::VendorParamError;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use crate::asr::{ASR_SAMPLE_RATE, AsrEvent, AsrProvider, AsrRequest};
use crate::vendors::ws::{self, Socket, Target};
use crate::vendors::{AsrVendor, VendorParams};
use crate::{ProviderError, ProviderStream, TurnId};

pub const DEFAULT_URL: &str = "wss://api.deepgram.com/v1/listen";
pub const DEFAULT_MODEL: &str = "nova-3";

pub(in crate::vendors) const ASR: AsrVendor = AsrVendor {
    name: "deepgram",
    about: "Deepgram live streaming (WebSocket, interim results, endpointing)",
    url_param: "url",
    check: crate::vendors::check_params::<DeepgramParams>,
    secrets: DeepgramParams::SECRETS,
    build: |choice| Ok(Arc::new(DeepgramAsr::new(crate::vendors::params_of(choice)?)) as Arc<dyn AsrProvider>),
};

/// Deepgram's parameters, in its own names (Agora's `asr.params` for vendor `deepgram`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepgramParams {
    /// The API key, sent as `Authorization: Token …`. Secret.
    pub key: String,
    /// Default `wss://api.deepgram.com/v1/listen`.
    pub url: Option<String>,
    /// Default `nova-3`.
    pub model: Option<String>,
    /// BCP-47; default: the agent's `asr.language`.
    pub language: Option<String>,
    pub punctuate: Option<bool>,
    pub smart_format: Option<bool>,
    pub numerals: Option<bool>,
    pub profanity_filter: Option<bool>,
    pub filler_words: Option<bool>,
    /// Milliseconds of silence after which Deepgram finalizes a segment (its own default 10).
    pub endpointing: Option<u32>,
    /// Key terms to boost (Nova-3).
    pub keyterm: Option<Vec<String>>,
    /// `word:intensifier` boosts (Nova-2 and older).
    pub keywords: Option<Vec<String>>,
    /// How long the handshake may take, and the longest silence from Deepgram after the audio ends.
    pub timeout_ms: Option<u32>,
    /// Handshake retries, 0–10. Default 2.
    pub max_retries: Option<u32>,
}

impl VendorParams for DeepgramParams {
    const SECRETS: &'static [&'static str] = &["key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        if let Some(url) = &self.url {
            crate::vendors::websocket_url("url", url)?;
        }
        crate::vendors::in_range("endpointing", self.endpointing, 0..=60_000)?;
        crate::vendors::check_limits(self.timeout_ms, self.max_retries)?;
        Ok(())
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct DeepgramAsr {
    params: DeepgramParams,
}

impl DeepgramAsr {
    pub fn new(params: DeepgramParams) -> DeepgramAsr {
        DeepgramAsr { params }
    }

    fn target(&self, language: &str) -> Target {
        let p = &self.params;
        let mut query = vec![
            ("model", p.model.clone().unwrap_or_else(|| DEFAULT_MODEL.to_owned())),
            ("language", p.language.clone().unwrap_or_else(|| language.to_owned())),
            ("encoding", "linear16".to_owned()),
            ("sample_rate", ASR_SAMPLE_RATE.to_string()),
            ("channels", "1".to_owned()),
            ("interim_results", "true".to_owned()),
        ];
        let flags = [
            ("punctuate", p.punctuate),
            ("smart_format", p.smart_format),
            ("numerals", p.numerals),
            ("profanity_filter", p.profanity_filter),
            ("filler_words", p.filler_words),
        ];
        query.extend(flags.into_iter().filter_map(|(name, flag)| Some((name, flag?.to_string()))));
        if let Some(ms) = p.endpointing {
            query.push(("endpointing", ms.to_string()));
        }
        query.extend(p.keyterm.iter().flatten().map(|t| ("keyterm", t.clone())));
        query.extend(p.keywords.iter().flatten().map(|t| ("keywords", t.clone())));
        let base = p.url.as_deref().unwrap_or(DEFAULT_URL);
        let separator = if base.contains('?') { '&' } else { '?' };
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", crate::vendors::encode(v))).collect();
        Target {
            url: format!("{base}{separator}{}", query.join("&")),
            headers: vec![("authorization", format!("Token {}", p.key))],
            timeout: crate::vendors::timeout(p.timeout_ms),
            max_retries: crate::vendors::retries(p.max_retries),
        }
    }
}

impl AsrProvider for DeepgramAsr {
    fn transcribe(&self, request: AsrRequest) -> ProviderStream<AsrEvent> {
        let target = self.target(&request.language);
        crate::vendors::spawn_recognition(request.turn, move |events| recognise(target, request, events))
    }
}

/// Streams one utterance and answers its whole transcript; partials go out on `events` meanwhile.
async fn recognise(
    target: Target,
    mut request: AsrRequest,
    events: crate::vendors::Partials,
) -> Result<String, ProviderError> {
    let mut socket = ws::connect(&target).await?;
    let mut finals: Vec<String> = Vec::new();
    let mut audio_open = true;
    // Once the audio has ended, Deepgram must finish within the timeout.
    let deadline = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            chunk = request.audio.recv(), if audio_open => match chunk {
                Some(samples) => send(&mut socket, Message::binary(crate::vendors::le_pcm16(&samples))).await?,
                None => {
                    audio_open = false;
                    send(&mut socket, Message::text(r#"{"type":"CloseStream"}"#)).await?;
                    deadline.as_mut().reset(tokio::time::Instant::now() + target.timeout);
                }
            },
            () = &mut deadline => {
                return Err(ProviderError::CutStream(format!("no final transcript within {:?}", target.timeout)));
            }
            message = socket.next() => match message {
                None => return ended(audio_open, finals),
                Some(Err(e)) => return Err(ProviderError::CutStream(e.to_string())),
                Some(Ok(Message::Close(frame))) => {
                    return match frame.as_ref().map(|f| u16::from(f.code)) {
                        Some(1000) | None => ended(audio_open, finals),
                        Some(_) => Err(ws::closed_early(frame.as_ref())),
                    };
                }
                Some(Ok(Message::Text(text))) => {
                    match serde_json::from_str::<Response>(text.as_str()) {
                        Ok(Response::Results(results)) => {
                            let Some(partial) = results.apply(&mut finals) else { continue };
                            let turn: TurnId = request.turn;
                            if events.send(Ok(AsrEvent::Partial { turn, text: partial })).await.is_err() {
                                return Err(ProviderError::CutStream("cancelled".into()));
                            }
                        }
                        // Metadata comes last, after the final results of a closed stream.
                        Ok(Response::Metadata {}) if !audio_open => return ended(audio_open, finals),
                        Ok(_) => {}
                        Err(e) => {
                            let shown: String = text.as_str().chars().take(120).collect();
                            return Err(ProviderError::BadResponse(format!("not a Deepgram message ({e}): {shown}")));
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    return Err(ProviderError::BadResponse("Deepgram sent a binary frame".into()));
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The socket ended: a whole transcript once the audio was closed, a cut stream before.
fn ended(audio_open: bool, finals: Vec<String>) -> Result<String, ProviderError> {
    if audio_open {
        return Err(ProviderError::CutStream("Deepgram closed the stream before the utterance ended".into()));
    }
    Ok(finals.join(" "))
}

async fn send(socket: &mut Socket, message: Message) -> Result<(), ProviderError> {
    ws::send(socket, "Deepgram", message).await
}

/// What Deepgram sends on a live stream.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum Response {
    Results(Results),
    Metadata {},
    UtteranceEnd {},
    SpeechStarted {},
}

#[derive(Debug, Deserialize)]
struct Results {
    #[serde(default)]
    is_final: bool,
    channel: ResultChannel,
}

#[derive(Debug, Deserialize)]
struct ResultChannel {
    alternatives: Vec<Alternative>,
}

#[derive(Debug, Deserialize)]
struct Alternative {
    transcript: String,
}

impl Results {
    /// Adds a final segment to `finals`; answers what has been said so far, if anything changed.
    fn apply(self, finals: &mut Vec<String>) -> Option<String> {
        let transcript = self.channel.alternatives.into_iter().next().map(|a| a.transcript).unwrap_or_default();
        let transcript = transcript.trim().to_owned();
        if self.is_final {
            if transcript.is_empty() {
                return None;
            }
            finals.push(transcript);
            return Some(finals.join(" "));
        }
        if transcript.is_empty() {
            return None;
        }
        Some(finals.iter().cloned().chain([transcript]).collect::<Vec<_>>().join(" "))
    }
}
