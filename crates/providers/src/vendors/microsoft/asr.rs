//! Microsoft Azure AI Speech real-time recognition over the Speech Service WebSocket protocol:
//! `wss://{region}.stt.speech.microsoft.com/speech/recognition/{mode}/cognitiveservices/v1`.
//!
//! From Microsoft's "Speech Service WebSocket protocol" reference (Azure docs,
//! `cognitive-services/Speech/API-Reference-REST/websocketprotocol`), with the handshake's key
//! header and query names as the public Speech SDK for JavaScript sends them
//! (`Ocp-Apim-Subscription-Key`, `X-ConnectionId`, `language`, `format`, `profanity`):
//!
//! - the handshake carries the key and a connection id (a UUID without dashes);
//! - the client says `speech.config` (its system, OS and device) once, then streams `audio`
//!   messages: binary, the framing of `usp.rs`, at most 8192 bytes of audio each; the first one of
//!   a turn begins with a RIFF/WAV header (16 kHz, 16-bit, mono), and an empty one ends the audio;
//! - the service answers `turn.start` first, then `speech.startDetected`, `speech.hypothesis`
//!   (partial text, about every 300 ms), `speech.phrase` (`RecognitionStatus`, `DisplayText`) for
//!   each phrase it ends (its own end-of-speech detection), `speech.endDetected` (stop sending
//!   audio) and `turn.end` last, which the client acknowledges with a `telemetry` message;
//! - a refused handshake is an HTTP status (401/403 a key, 429 throttling); a protocol violation
//!   closes the socket with 1002 or 1007, a service failure with 1011.
//!
//! One connection and one turn per utterance; the final transcript is the turn's phrases joined.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use colloquy_model::VendorParamError;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::usp;
use crate::asr::{ASR_SAMPLE_RATE, AsrEvent, AsrProvider, AsrRequest};
use crate::vendors::ws::{self, Socket, Target};
use crate::vendors::{AsrVendor, VendorParams};
use crate::{ProviderError, ProviderStream};

pub(in crate::vendors) const ASR: AsrVendor = AsrVendor {
    name: "microsoft",
    about: "Microsoft Azure AI Speech real-time recognition (WebSocket, partial results, service endpointing)",
    url_param: "base_url",
    check: crate::vendors::check_params::<MicrosoftAsrParams>,
    secrets: MicrosoftAsrParams::SECRETS,
    build: |choice| Ok(Arc::new(MicrosoftAsr::new(crate::vendors::params_of(choice)?)) as Arc<dyn AsrProvider>),
};

/// The recognition modes the service has, each its own endpoint.
pub const MODES: [&str; 3] = ["conversation", "interactive", "dictation"];

/// The most audio one `audio` message may carry.
const MAX_AUDIO_BODY: usize = 8_192;

/// A deadline that does not come.
const FOREVER: Duration = Duration::from_secs(365 * 86_400);

/// Azure's recognition parameters (Agora's `asr.params` for vendor `microsoft`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicrosoftAsrParams {
    /// Sent as `Ocp-Apim-Subscription-Key`. Secret.
    pub key: String,
    /// The resource's region (`eastus`).
    pub region: String,
    /// BCP-47 (`en-US`); default: the agent's `asr.language`.
    pub language: Option<String>,
    /// `masked` (Azure's default), `removed` or `raw`.
    pub profanity: Option<String>,
    /// `conversation` (default), `interactive` or `dictation`.
    pub mode: Option<String>,
    /// Replaces `wss://{region}.stt.speech.microsoft.com`.
    pub base_url: Option<String>,
    /// How long the handshake and the first answer may take, and the longest wait for the end of
    /// the turn after the utterance ends. Default 10000.
    pub timeout_ms: Option<u32>,
    /// Handshake retries, 0–10. Default 2.
    pub max_retries: Option<u32>,
}

impl VendorParams for MicrosoftAsrParams {
    const SECRETS: &'static [&'static str] = &["key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        let invalid =
            |field: &str, message: &str| Err(VendorParamError { field: field.into(), message: message.into() });
        if self.region.is_empty() || !self.region.chars().all(|c| c.is_ascii_alphanumeric()) {
            return invalid("region", "region must be an Azure region name such as \"eastus\"");
        }
        if self.profanity.as_deref().is_some_and(|p| !["masked", "removed", "raw"].contains(&p)) {
            return invalid("profanity", "profanity must be \"masked\", \"removed\" or \"raw\"");
        }
        if self.mode.as_deref().is_some_and(|m| !MODES.contains(&m)) {
            return invalid("mode", "mode must be \"conversation\", \"interactive\" or \"dictation\"");
        }
        if let Some(language) = &self.language
            && (language.is_empty() || !language.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return invalid("language", "language must be a BCP-47 tag such as \"en-US\"");
        }
        if let Some(url) = &self.base_url {
            crate::vendors::websocket_url("base_url", url)?;
        }
        crate::vendors::check_limits(self.timeout_ms, self.max_retries)
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct MicrosoftAsr {
    params: MicrosoftAsrParams,
}

impl MicrosoftAsr {
    pub fn new(params: MicrosoftAsrParams) -> MicrosoftAsr {
        MicrosoftAsr { params }
    }

    fn target(&self, language: &str) -> Target {
        let p = &self.params;
        let base = match &p.base_url {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => format!("wss://{}.stt.speech.microsoft.com", p.region),
        };
        let mode = p.mode.as_deref().unwrap_or(MODES[0]);
        let language = p.language.as_deref().unwrap_or(language);
        let mut url = format!(
            "{base}/speech/recognition/{mode}/cognitiveservices/v1?language={}&format=simple",
            crate::vendors::encode(language)
        );
        if let Some(profanity) = &p.profanity {
            url.push_str(&format!("&profanity={profanity}"));
        }
        Target {
            url,
            headers: vec![("Ocp-Apim-Subscription-Key", p.key.clone()), ("X-ConnectionId", usp::new_id())],
            timeout: crate::vendors::timeout(p.timeout_ms),
            max_retries: crate::vendors::retries(p.max_retries),
        }
    }
}

impl AsrProvider for MicrosoftAsr {
    fn transcribe(&self, request: AsrRequest) -> ProviderStream<AsrEvent> {
        let target = self.target(&request.language);
        crate::vendors::spawn_recognition(request.turn, move |events| recognise(target, request, events))
    }
}

/// Where the turn stands, as the service has told it.
struct Turn {
    id: String,
    /// The phrases Azure has ended, in order.
    phrases: Vec<String>,
    /// When each message came, by path, for the turn's telemetry.
    received: Vec<(String, String)>,
    started: bool,
    ended: bool,
    audio_sent: usize,
    /// The audio went up to its end (an empty `audio` message was sent).
    audio_closed: bool,
    connected: (String, String),
    microphone_started: String,
}

/// Streams one utterance and answers its whole transcript; partials go out on `events` meanwhile.
async fn recognise(
    target: Target,
    mut request: AsrRequest,
    events: crate::vendors::Partials,
) -> Result<String, ProviderError> {
    let connecting = now();
    let mut socket = ws::connect(&target).await?;
    let connected = now();
    let connection_id = target.headers.iter().find(|(name, _)| *name == "X-ConnectionId").map(|(_, id)| id.clone());
    send(&mut socket, Message::text(speech_config())).await?;
    let mut turn = Turn {
        id: usp::new_id(),
        phrases: Vec::new(),
        received: Vec::new(),
        started: false,
        ended: false,
        audio_sent: 0,
        audio_closed: false,
        connected: (connecting, connected),
        microphone_started: now(),
    };
    // The engine's audio: open until it drops its sender, whatever Azure said.
    let mut engine_open = true;
    // The first answer (`turn.start`) must come within the timeout of the first audio, and the
    // turn's end within the timeout of the audio's end.
    let deadline = tokio::time::sleep(FOREVER);
    tokio::pin!(deadline);
    loop {
        if turn.ended && !engine_open {
            break;
        }
        tokio::select! {
            chunk = request.audio.recv(), if engine_open => match chunk {
                Some(samples) if !turn.audio_closed && !turn.ended => {
                    if turn.audio_sent == 0 {
                        deadline.as_mut().reset(Instant::now() + target.timeout);
                    }
                    send_audio(&mut socket, &mut turn, &samples).await?;
                }
                // Azure detected the end of speech, or ended the turn: the rest is not sent.
                Some(_) => {}
                None => {
                    engine_open = false;
                    if !turn.audio_closed && !turn.ended {
                        close_audio(&mut socket, &mut turn).await?;
                        // Before `turn.start`, its own deadline may come first.
                        let end = Instant::now() + target.timeout;
                        if turn.started || end < deadline.deadline() {
                            deadline.as_mut().reset(end);
                        }
                    }
                }
            },
            () = &mut deadline, if !turn.ended => {
                return Err(if turn.started {
                    ProviderError::CutStream(format!("no end of the turn within {:?}", target.timeout))
                } else {
                    ProviderError::Timeout(target.timeout)
                });
            }
            message = socket.next(), if !turn.ended => match message {
                None => return Err(ProviderError::CutStream("Azure closed the connection before the turn's end".into())),
                Some(Err(e)) => return Err(ProviderError::CutStream(e.to_string())),
                Some(Ok(Message::Close(frame))) => return Err(ws::closed_early(frame.as_ref())),
                Some(Ok(Message::Text(text))) => {
                    let Some(message) = usp::parse(text.as_str()) else {
                        let shown: String = text.as_str().chars().take(120).collect();
                        return Err(ProviderError::BadResponse(format!("not a Speech Service message: {shown}")));
                    };
                    turn.received.push((message.path.to_owned(), now()));
                    match on_message(&message, &mut turn)? {
                        Heard::Partial(text) => {
                            let partial = AsrEvent::Partial { turn: request.turn, text };
                            if events.send(Ok(partial)).await.is_err() {
                                return Err(ProviderError::CutStream("cancelled".into()));
                            }
                        }
                        Heard::EndOfSpeech if !turn.audio_closed => {
                            close_audio(&mut socket, &mut turn).await?;
                            if turn.started {
                                deadline.as_mut().reset(Instant::now() + target.timeout);
                            }
                        }
                        // While the audio streams, Azure may stay silent as long as it likes.
                        Heard::Started => {
                            let wait = if turn.audio_closed { target.timeout } else { FOREVER };
                            deadline.as_mut().reset(Instant::now() + wait);
                        }
                        Heard::TurnEnd => send(&mut socket, Message::text(telemetry(&turn, connection_id.as_deref()))).await?,
                        Heard::EndOfSpeech | Heard::Nothing => {}
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    return Err(ProviderError::BadResponse("Azure sent a binary message during recognition".into()));
                }
                Some(Ok(_)) => {}
            },
        }
    }
    Ok(turn.phrases.join(" "))
}

/// What a service message means for the turn.
enum Heard {
    Started,
    Partial(String),
    EndOfSpeech,
    TurnEnd,
    Nothing,
}

fn on_message(message: &usp::Received<'_>, turn: &mut Turn) -> Result<Heard, ProviderError> {
    let bad = |what: &str, e: serde_json::Error| ProviderError::BadResponse(format!("Azure's {what}: {e}"));
    if message.request_id.is_some_and(|id| !id.eq_ignore_ascii_case(&turn.id)) {
        // A message of another request: the service discards those, and so do we.
        return Ok(Heard::Nothing);
    }
    Ok(match message.path {
        "turn.start" => {
            turn.started = true;
            Heard::Started
        }
        "speech.hypothesis" => {
            let hypothesis: Hypothesis = serde_json::from_str(message.body).map_err(|e| bad(message.path, e))?;
            let text = hypothesis.text.trim();
            if text.is_empty() {
                Heard::Nothing
            } else {
                Heard::Partial(turn.phrases.iter().map(String::as_str).chain([text]).collect::<Vec<_>>().join(" "))
            }
        }
        "speech.phrase" => {
            let phrase: Phrase = serde_json::from_str(message.body).map_err(|e| bad(message.path, e))?;
            match phrase.recognition_status.as_str() {
                "Success" => {
                    let text = phrase.display_text.unwrap_or_default();
                    let text = text.trim();
                    if text.is_empty() {
                        Heard::Nothing
                    } else {
                        turn.phrases.push(text.to_owned());
                        Heard::Partial(turn.phrases.join(" "))
                    }
                }
                // Silence, noise or the end of a dictation: no words.
                "NoMatch" | "InitialSilenceTimeout" | "BabbleTimeout" | "EndOfDictation" => Heard::Nothing,
                "TooManyRequests" => {
                    let message = "Azure: too many concurrent recognitions (TooManyRequests)".to_owned();
                    return Err(ProviderError::RateLimited { message, retry_after: None });
                }
                "Forbidden" => {
                    let message = "Azure: the subscription's quota is spent (Forbidden)".to_owned();
                    return Err(ProviderError::RateLimited { message, retry_after: None });
                }
                "Error" => {
                    return Err(ProviderError::Unavailable("Azure could not recognise the audio (Error)".into()));
                }
                status => return Err(ProviderError::BadResponse(format!("Azure refused the recognition: {status}"))),
            }
        }
        "speech.endDetected" => Heard::EndOfSpeech,
        "turn.end" => {
            turn.ended = true;
            Heard::TurnEnd
        }
        // `speech.startDetected` and messages this client does not use.
        _ => Heard::Nothing,
    })
}

/// Sends `samples` as `audio` messages of the turn: the WAV header first, at most 8192 bytes each.
async fn send_audio(socket: &mut Socket, turn: &mut Turn, samples: &[f32]) -> Result<(), ProviderError> {
    let mut bytes = crate::vendors::le_pcm16(samples);
    if turn.audio_sent == 0 {
        turn.microphone_started = now();
        let mut header = crate::remote::wav_bytes(&[], ASR_SAMPLE_RATE);
        // A live stream's length is not known: the sizes at their largest.
        header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        header[40..44].copy_from_slice(&(u32::MAX - 36).to_le_bytes());
        header.append(&mut bytes);
        bytes = header;
    }
    for body in bytes.chunks(MAX_AUDIO_BODY) {
        send(socket, Message::binary(audio_message(&turn.id, body))).await?;
        turn.audio_sent += body.len();
    }
    Ok(())
}

/// The empty `audio` message: the utterance is over.
async fn close_audio(socket: &mut Socket, turn: &mut Turn) -> Result<(), ProviderError> {
    turn.audio_closed = true;
    if turn.audio_sent == 0 {
        // Nothing was said: a turn still needs its WAV header.
        send_audio(socket, turn, &[]).await?;
    }
    send(socket, Message::binary(audio_message(&turn.id, &[]))).await
}

fn audio_message(request_id: &str, body: &[u8]) -> Vec<u8> {
    let timestamp = now();
    let headers = [
        ("Path", "audio"),
        ("X-RequestId", request_id),
        ("X-Timestamp", timestamp.as_str()),
        ("Content-Type", "audio/x-wav"),
    ];
    usp::binary(&headers, body)
}

/// The `speech.config` message: who is asking, as the reference's `context` shapes it.
fn speech_config() -> String {
    let body = serde_json::json!({
        "context": {
            "system": {"version": env!("CARGO_PKG_VERSION")},
            "os": {"platform": std::env::consts::OS, "name": std::env::consts::OS, "version": "unknown"},
            "device": {"manufacturer": "colloquy", "model": "colloquy", "version": env!("CARGO_PKG_VERSION")},
        }
    });
    let timestamp = now();
    let headers = [
        ("Path", "speech.config"),
        ("X-Timestamp", timestamp.as_str()),
        ("Content-Type", "application/json; charset=utf-8"),
    ];
    usp::text(&headers, &body.to_string())
}

/// The `telemetry` message acknowledging the turn's end: when each message came, the connection,
/// and when the audio was streamed.
fn telemetry(turn: &Turn, connection_id: Option<&str>) -> String {
    let mut by_path: Vec<(String, Vec<String>)> = Vec::new();
    for (path, at) in &turn.received {
        match by_path.iter_mut().find(|(p, _)| p == path) {
            Some((_, times)) => times.push(at.clone()),
            None => by_path.push((path.clone(), vec![at.clone()])),
        }
    }
    let received: Vec<serde_json::Value> = by_path
        .into_iter()
        .map(|(path, mut times)| {
            let value = if times.len() == 1 { times.remove(0).into() } else { serde_json::json!(times) };
            serde_json::Value::Object(serde_json::Map::from_iter([(path, value)]))
        })
        .collect();
    let body = serde_json::json!({
        "ReceivedMessages": received,
        "Metrics": [
            {"Name": "Connection", "Id": connection_id, "Start": turn.connected.0, "End": turn.connected.1},
            {"Name": "Microphone", "Start": turn.microphone_started, "End": now()},
        ],
    });
    let timestamp = now();
    let headers = [
        ("Path", "telemetry"),
        ("X-RequestId", turn.id.as_str()),
        ("X-Timestamp", timestamp.as_str()),
        ("Content-Type", "application/json; charset=utf-8"),
    ];
    usp::text(&headers, &body.to_string())
}

fn now() -> String {
    usp::timestamp(SystemTime::now())
}

async fn send(socket: &mut Socket, message: Message) -> Result<(), ProviderError> {
    ws::send(socket, "Azure", message).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Hypothesis {
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Phrase {
    recognition_status: String,
    #[serde(default)]
    display_text: Option<String>,
}
