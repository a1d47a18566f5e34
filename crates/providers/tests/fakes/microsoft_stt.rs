//! A fake Azure AI Speech real-time recognition endpoint
//! (`/speech/recognition/{mode}/cognitiveservices/v1`), speaking the Speech Service WebSocket
//! protocol and enforcing its rules: the handshake's key and connection id, `speech.config` first,
//! every message's `Path`, `X-RequestId` (no-dash UUID) and `X-Timestamp`, binary framing, audio
//! bodies of at most 8192 bytes beginning with a RIFF header, `telemetry` after `turn.end`.
//! Violations close the socket with 1002 or 1007, as the reference says the service does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Fake, Handshake, listen, refuse};

pub const KEY: &str = super::microsoft::KEY;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// `turn.start` on the first audio, a hypothesis every half second of audio; after the empty
    /// audio message `speech.endDetected`, the phrase, `turn.end`.
    Normal,
    /// The handshake is refused: 401.
    WrongKey,
    /// The handshake is refused: 429 with `Retry-After: 1`.
    Throttled,
    /// `turn.start` comes only after this long.
    SlowTurnStart(Duration),
    /// The connection drops after this many audio messages.
    CutAfterAudio(usize),
    /// A text message without the header separator, after half a second of audio.
    Garbage,
    /// The service detects the end of speech after this many samples: `speech.endDetected`, and
    /// the phrase and `turn.end` once the client ends its audio.
    EndOfSpeechAfter(usize),
    /// The phrase's `RecognitionStatus` is `TooManyRequests`.
    TooManyRequests,
}

/// What the fake saw: `speech.config` and `telemetry` bodies, each audio message's request id.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub configs: Vec<Value>,
    pub telemetry: Vec<Value>,
    pub audio_request_ids: Vec<String>,
    /// Samples received in each turn, up to its end of speech.
    pub samples: Vec<usize>,
}

pub async fn start(mode: Mode, transcribe: super::deepgram::Transcriber) -> (Fake, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let fake = {
        let received = Arc::clone(&received);
        listen(
            move |shake: &Handshake| {
                let modes = ["conversation", "interactive", "dictation"]
                    .map(|m| format!("/speech/recognition/{m}/cognitiveservices/v1"));
                if !modes.contains(&shake.path) {
                    return Err(refuse(404, json!({"error": "not found"}), None));
                }
                if mode == Mode::WrongKey || shake.header("ocp-apim-subscription-key") != Some(KEY) {
                    return Err(refuse(401, json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}), None));
                }
                if mode == Mode::Throttled {
                    return Err(refuse(429, json!({"error": {"code": "429", "message": "Too many requests"}}), Some(1)));
                }
                if !shake.header("x-connectionid").is_some_and(no_dash_uuid) || shake.query("language").is_none() {
                    return Err(refuse(400, json!({"error": "X-ConnectionId and language are required"}), None));
                }
                Ok(())
            },
            move |socket, _| serve(socket, mode, Arc::clone(&transcribe), Arc::clone(&received)),
        )
        .await
    };
    (fake, received)
}

fn no_dash_uuid(id: &str) -> bool {
    id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())
}

/// `yyyy-MM-ddTHH:mm:ss.fffZ`, the fraction of any length.
fn timestamp(value: &str) -> bool {
    let b = value.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() >= 21
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && digits(14..16)
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..b.len() - 1)
        && b[b.len() - 1] == b'Z'
}

/// A parsed client message: its headers (lower-cased names) and body.
struct Incoming {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn headers(block: &str) -> Option<Vec<(String, String)>> {
    block
        .split("\r\n")
        .filter(|line| !line.is_empty())
        .map(|line| line.split_once(':').map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned())))
        .collect()
}

fn incoming(message: &Message) -> Result<Incoming, (CloseCode, &'static str)> {
    const FORMAT: CloseCode = CloseCode::Invalid;
    match message {
        Message::Text(text) => {
            let (head, body) = text
                .as_str()
                .split_once("\r\n\r\n")
                .ok_or((FORMAT, "Incorrect message format. Text message contains no header separator."))?;
            let headers = headers(head).ok_or((FORMAT, "Incorrect message format. Bad header."))?;
            Ok(Incoming { headers, body: body.as_bytes().to_vec() })
        }
        Message::Binary(bytes) => {
            let size = bytes.get(..2).map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])));
            let size =
                size.ok_or((FORMAT, "Incorrect message format. Binary message has invalid header size prefix."))?;
            if size > 8_192 || bytes.len() < 2 + size {
                return Err((FORMAT, "Incorrect message format. Binary message has invalid header size."));
            }
            let head = std::str::from_utf8(&bytes[2..2 + size]).map_err(|_| {
                (FORMAT, "Incorrect message format. Binary message headers decoding into UTF-8 failed.")
            })?;
            let headers = headers(head).ok_or((FORMAT, "Incorrect message format. Bad header."))?;
            Ok(Incoming { headers, body: bytes[2 + size..].to_vec() })
        }
        _ => Err((FORMAT, "Incorrect message format.")),
    }
}

fn service(path: &str, request_id: &str, body: &Value) -> Message {
    Message::text(format!(
        "Path: {path}\r\nContent-Type: application/json; charset=utf-8\r\nX-RequestId: {request_id}\r\n\r\n{body}"
    ))
}

async fn close(socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, code: CloseCode, reason: &str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.to_owned().into() }))).await;
}

async fn serve(
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    mode: Mode,
    transcribe: super::deepgram::Transcriber,
    received: Arc<Mutex<Received>>,
) {
    let mut configured = false;
    let mut request_id: Option<String> = None;
    let mut ended_ids: Vec<String> = Vec::new();
    let (mut samples, mut last_hypothesis, mut audio_messages) = (Vec::<i16>::new(), 0, 0);
    let mut end_detected = false;
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Close(_) = message {
            return;
        }
        let message = match incoming(&message) {
            Ok(message) => message,
            Err((code, reason)) => return close(&mut socket, code, reason).await,
        };
        let Some(path) = message.header("path").map(str::to_owned) else {
            return close(&mut socket, CloseCode::Protocol, "Missing/Empty header. Path.").await;
        };
        if !message.header("x-timestamp").is_some_and(timestamp) {
            return close(&mut socket, CloseCode::Protocol, "Missing/Empty header. X-Timestamp.").await;
        }
        match path.as_str() {
            "speech.config" => {
                let config: Value = serde_json::from_slice(&message.body).unwrap_or_default();
                received.lock().unwrap().configs.push(config);
                configured = true;
            }
            _ if !configured => {
                return close(&mut socket, CloseCode::Protocol, "speech.config must come first.").await;
            }
            "telemetry" => {
                let body: Value = serde_json::from_slice(&message.body).unwrap_or_default();
                received.lock().unwrap().telemetry.push(body);
                return close(&mut socket, CloseCode::Normal, "").await;
            }
            "audio" => {
                let Some(id) = message.header("x-requestid").filter(|id| no_dash_uuid(id)).map(str::to_owned) else {
                    return close(
                        &mut socket,
                        CloseCode::Protocol,
                        "Invalid request. X-RequestId header value was not specified in no-dash UUID format.",
                    )
                    .await;
                };
                if ended_ids.contains(&id) {
                    return close(
                        &mut socket,
                        CloseCode::Protocol,
                        "Invalid request. Reuse of request identifiers is not allowed.",
                    )
                    .await;
                }
                received.lock().unwrap().audio_request_ids.push(id.clone());
                let mut body = message.body.as_slice();
                if request_id.as_deref() != Some(id.as_str()) {
                    // A new turn: its first audio is a WAV header.
                    if message.header("content-type") != Some("audio/x-wav") || body.len() < 44 || &body[..4] != b"RIFF"
                    {
                        return close(
                            &mut socket,
                            CloseCode::Invalid,
                            "The first audio message must begin with a RIFF header.",
                        )
                        .await;
                    }
                    body = &body[44..];
                    request_id = Some(id.clone());
                    samples.clear();
                    last_hypothesis = 0;
                    end_detected = false;
                    if let Mode::SlowTurnStart(delay) = mode {
                        tokio::time::sleep(delay).await;
                    }
                    let _ = socket.send(service("turn.start", &id, &json!({"context": {"serviceTag": "fake"}}))).await;
                    let _ = socket.send(service("speech.startDetected", &id, &json!({"Offset": 0}))).await;
                }
                if message.body.len() > 8_192 {
                    return close(&mut socket, CloseCode::Invalid, "Audio chunk larger than 8192 bytes.").await;
                }
                audio_messages += 1;
                if let Mode::CutAfterAudio(n) = mode
                    && audio_messages >= n
                {
                    return; // dropped, no close frame
                }
                if message.body.is_empty() {
                    // The client's end of audio.
                    if !end_detected {
                        let _ = socket
                            .send(service("speech.endDetected", &id, &json!({"Offset": samples.len() * 625})))
                            .await;
                    }
                    received.lock().unwrap().samples.push(samples.len());
                    let phrase = match mode {
                        Mode::TooManyRequests => json!({"RecognitionStatus": "TooManyRequests"}),
                        _ if samples.is_empty() => {
                            json!({"RecognitionStatus": "InitialSilenceTimeout", "Offset": 0, "Duration": 0})
                        }
                        _ => json!({"RecognitionStatus": "Success", "DisplayText": transcribe(&samples, true),
                                    "Offset": 0, "Duration": samples.len() * 625}),
                    };
                    let _ = socket.send(service("speech.phrase", &id, &phrase)).await;
                    let _ = socket.send(Message::text(format!("Path: turn.end\r\nX-RequestId: {id}\r\n\r\n"))).await;
                    ended_ids.push(id);
                    continue;
                }
                if end_detected {
                    continue; // in flight when the end of speech was said
                }
                samples.extend(body.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                if let Mode::EndOfSpeechAfter(n) = mode
                    && samples.len() >= n
                {
                    end_detected = true;
                    let _ =
                        socket.send(service("speech.endDetected", &id, &json!({"Offset": samples.len() * 625}))).await;
                    continue;
                }
                if samples.len() - last_hypothesis >= 8_000 {
                    if mode == Mode::Garbage {
                        let _ = socket.send(Message::text("{\"Text\": \"no headers\"}")).await;
                        return;
                    }
                    last_hypothesis = samples.len();
                    let hypothesis =
                        json!({"Text": transcribe(&samples, false), "Offset": 0, "Duration": samples.len() * 625});
                    let _ = socket.send(service("speech.hypothesis", &id, &hypothesis)).await;
                }
            }
            _ => return close(&mut socket, CloseCode::Protocol, "Unknown Path.").await,
        }
    }
}
