//! Fake Deepgram servers: live streaming recognition (`/v1/listen`) and Aura synthesis (`/v1/speak`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Fake, Handshake, listen, refuse};

pub const KEY: &str = "dg-test-key";

/// How the fake behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Interim results while audio comes, a final one after `CloseStream`, then `Metadata`.
    Normal,
    /// Any key is refused: 401 `INVALID_AUTH`.
    WrongKey,
    /// 429 with `Retry-After: 1`, every time.
    RateLimited,
    /// Answers nothing for this long after the audio ends.
    SlowFinal(Duration),
    /// Closes with 1011 after this many audio frames, as Deepgram does on an internal timeout.
    CutAfterFrames(usize),
    /// Sends a frame that is not Deepgram's JSON.
    Garbage,
}

/// Turns the 16-bit samples received so far into a transcript: an interim one, or (`true`) the
/// final one.
pub type Transcriber = Arc<dyn Fn(&[i16], bool) -> String + Send + Sync>;

/// A transcriber that says how much audio arrived: "heard N samples".
pub fn counting() -> Transcriber {
    Arc::new(|samples: &[i16], _final: bool| format!("heard {} samples", samples.len()))
}

pub async fn start(mode: Mode, transcribe: Transcriber) -> Fake {
    listen(
        move |shake: &Handshake| {
            if shake.path != "/v1/listen" {
                return Err(refuse(404, serde_json::json!({"err_code": "NOT_FOUND", "err_msg": "no such path"}), None));
            }
            match mode {
                Mode::WrongKey => {
                    return Err(refuse(
                        401,
                        serde_json::json!({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.", "request_id": "r1"}),
                        None,
                    ));
                }
                Mode::RateLimited => {
                    return Err(refuse(
                        429,
                        serde_json::json!({"err_code": "TOO_MANY_REQUESTS", "err_msg": "Too many requests."}),
                        Some(1),
                    ));
                }
                _ => {}
            }
            if shake.header("authorization") != Some(&format!("Token {KEY}")) {
                return Err(refuse(401, serde_json::json!({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}), None));
            }
            let raw = shake.query("encoding") == Some("linear16")
                && shake.query("sample_rate") == Some("16000")
                && shake.query("channels") == Some("1");
            if !raw {
                return Err(refuse(400, serde_json::json!({"err_code": "Bad Request", "err_msg": "raw audio needs encoding and sample_rate"}), None));
            }
            Ok(())
        },
        move |socket, shake| serve(socket, shake, mode, Arc::clone(&transcribe)),
    )
    .await
}

async fn serve(
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    shake: Handshake,
    mode: Mode,
    transcribe: Transcriber,
) {
    let interim = shake.query("interim_results") == Some("true");
    let mut samples: Vec<i16> = Vec::new();
    let mut frames = 0;
    let mut last_interim = 0;
    while let Some(Ok(message)) = socket.next().await {
        match message {
            Message::Binary(bytes) => {
                frames += 1;
                samples.extend(bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                if let Mode::CutAfterFrames(n) = mode
                    && frames >= n
                {
                    let frame = CloseFrame { code: CloseCode::Error, reason: "NET-0000: internal timeout".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                }
                if mode == Mode::Garbage {
                    let _ = socket.send(Message::text("<html>502 Bad Gateway</html>")).await;
                    return;
                }
                // An interim result every half second of audio.
                if interim && samples.len() - last_interim >= 8_000 {
                    last_interim = samples.len();
                    let text = transcribe(&samples, false);
                    let _ = socket.send(Message::text(results(&text, false, false))).await;
                }
            }
            Message::Text(text) => {
                let message: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                match message["type"].as_str() {
                    Some("CloseStream") => {
                        if let Mode::SlowFinal(delay) = mode {
                            tokio::time::sleep(delay).await;
                        }
                        let text = transcribe(&samples, true);
                        let _ = socket.send(Message::text(results(&text, true, true))).await;
                        let metadata = serde_json::json!({"type": "Metadata", "request_id": "r1",
                            "duration": samples.len() as f64 / 16_000.0, "channels": 1});
                        let _ = socket.send(Message::text(metadata.to_string())).await;
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })))
                            .await;
                        return;
                    }
                    Some("KeepAlive") | Some("Finalize") => {}
                    _ => {
                        let frame = CloseFrame { code: CloseCode::Policy, reason: "DATA-0000: unknown message".into() };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        return;
                    }
                }
            }
            Message::Close(_) => return,
            _ => {}
        }
    }
}

/// A `Results` message as Deepgram's reference shows it.
fn results(transcript: &str, is_final: bool, speech_final: bool) -> String {
    serde_json::json!({
        "type": "Results",
        "channel_index": [0, 1],
        "duration": 0.5,
        "start": 0.0,
        "is_final": is_final,
        "speech_final": speech_final,
        "from_finalize": false,
        "channel": {"alternatives": [{"transcript": transcript, "confidence": 0.98, "words": []}]},
        "metadata": {"request_id": "r1", "model_info": {"name": "nova-3"}},
    })
    .to_string()
}

/// How the fake Aura (`/v1/speak`) behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SpeakMode {
    /// Audio for the flushed text as binary frames, then `Flushed`.
    Normal,
    /// 401 `INVALID_AUTH`.
    WrongKey,
    /// Half the audio, then the connection drops.
    CutMidStream,
    /// A text frame that is not Deepgram's JSON.
    Garbage,
    /// 429 `TOO_MANY_REQUESTS` with `Retry-After: 1`.
    RateLimited,
    /// The first audio only after this long.
    SlowFirstAudio(Duration),
}

/// A fake Deepgram Aura streaming TTS; the texts it was asked to speak are kept.
pub async fn start_speak(
    mode: SpeakMode,
    synthesize: super::elevenlabs::Synthesizer,
) -> (Fake, Arc<std::sync::Mutex<Vec<String>>>) {
    let texts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fake = {
        let texts = Arc::clone(&texts);
        listen(
            move |shake: &Handshake| {
                if shake.path != "/v1/speak" {
                    return Err(refuse(
                        404,
                        serde_json::json!({"err_code": "NOT_FOUND", "err_msg": "no such path"}),
                        None,
                    ));
                }
                if mode == SpeakMode::RateLimited {
                    return Err(refuse(
                        429,
                        serde_json::json!({"err_code": "TOO_MANY_REQUESTS", "err_msg": "Too many requests."}),
                        Some(1),
                    ));
                }
                if mode == SpeakMode::WrongKey || shake.header("authorization") != Some(&format!("Token {KEY}")) {
                    return Err(refuse(
                        401,
                        serde_json::json!({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}),
                        None,
                    ));
                }
                if shake.query("encoding") != Some("linear16") || shake.query("model").is_none() {
                    return Err(refuse(
                        400,
                        serde_json::json!({"err_code": "Bad Request", "err_msg": "encoding and model"}),
                        None,
                    ));
                }
                Ok(())
            },
            move |socket, shake| speak(socket, shake, mode, Arc::clone(&synthesize), Arc::clone(&texts)),
        )
        .await
    };
    (fake, texts)
}

async fn speak(
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    shake: Handshake,
    mode: SpeakMode,
    synthesize: super::elevenlabs::Synthesizer,
    texts: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let rate: u32 = shake.query("sample_rate").and_then(|r| r.parse().ok()).unwrap_or(24_000);
    let mut text = String::new();
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(frame) = message else { continue };
        let message: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap_or_default();
        match message["type"].as_str() {
            Some("Speak") => text.push_str(message["text"].as_str().unwrap_or_default()),
            Some("Flush") => {
                texts.lock().unwrap().push(std::mem::take(&mut text));
                if mode == SpeakMode::Garbage {
                    let _ = socket.send(Message::text("{\"type\": ")).await;
                    return;
                }
                if let SpeakMode::SlowFirstAudio(delay) = mode {
                    tokio::time::sleep(delay).await;
                }
                let spoken = texts.lock().unwrap().last().cloned().unwrap_or_default();
                let bytes: Vec<u8> = synthesize(&spoken, rate).iter().flat_map(|s| s.to_le_bytes()).collect();
                let chunks: Vec<&[u8]> = bytes.chunks(2_401).collect();
                for (i, chunk) in chunks.iter().enumerate() {
                    if mode == SpeakMode::CutMidStream && i == (chunks.len() / 2).max(1) {
                        return;
                    }
                    let _ = socket.send(Message::binary(chunk.to_vec())).await;
                }
                let _ = socket
                    .send(Message::text(serde_json::json!({"type": "Flushed", "sequence_id": 0}).to_string()))
                    .await;
            }
            Some("Close") => {
                let _ =
                    socket.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
                return;
            }
            _ => {
                let warning =
                    serde_json::json!({"type": "Warning", "description": "unknown message", "code": "UNKNOWN"});
                let _ = socket.send(Message::text(warning.to_string())).await;
            }
        }
    }
}
