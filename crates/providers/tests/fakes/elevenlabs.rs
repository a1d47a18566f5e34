//! A fake ElevenLabs stream-input server (`/v1/text-to-speech/{voice_id}/stream-input`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Fake, Handshake, listen, refuse};

pub const KEY: &str = "xi-test-key";
pub const VOICE: &str = "voice-1";

/// How the fake behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Audio for the whole text, then `isFinal`.
    Normal,
    /// A bad key: 401 with ElevenLabs' `detail` body.
    WrongKey,
    /// 429 with `Retry-After: 1`.
    RateLimited,
    /// Waits this long before the first audio.
    SlowFirstAudio(Duration),
    /// Sends half the audio, then drops the connection without a close frame.
    CutMidStream,
    /// Sends a frame that is not ElevenLabs' JSON.
    Garbage,
    /// The quota is spent: an error message and close code 1008.
    QuotaExceeded,
}

/// Turns the text received into 16-bit PCM at the asked rate.
pub type Synthesizer = Arc<dyn Fn(&str, u32) -> Vec<i16> + Send + Sync>;

/// A synthesizer of a 440 Hz tone, 10 ms per character.
pub fn tone() -> Synthesizer {
    Arc::new(|text: &str, rate: u32| {
        let n = text.chars().count() * rate as usize / 100;
        (0..n).map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8_000.0) as i16).collect()
    })
}

/// What the fake received: the texts of each stream, with their opening message.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub openings: Vec<serde_json::Value>,
    pub texts: Vec<String>,
}

pub async fn start(mode: Mode, synthesize: Synthesizer) -> (Fake, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let fake = {
        let received = Arc::clone(&received);
        listen(
            move |shake: &Handshake| {
                let Some(voice) = shake.path.strip_prefix("/v1/text-to-speech/").and_then(|p| p.strip_suffix("/stream-input"))
                else {
                    return Err(refuse(404, serde_json::json!({"detail": "Not Found"}), None));
                };
                match mode {
                    Mode::WrongKey => {
                        let detail = serde_json::json!({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}});
                        return Err(refuse(401, detail, None));
                    }
                    Mode::RateLimited => {
                        let detail = serde_json::json!({"detail": {"status": "too_many_concurrent_requests", "message": "Too many concurrent requests"}});
                        return Err(refuse(429, detail, Some(1)));
                    }
                    _ => {}
                }
                if shake.header("xi-api-key") != Some(KEY) {
                    let detail = serde_json::json!({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}});
                    return Err(refuse(401, detail, None));
                }
                if voice != VOICE {
                    let detail = serde_json::json!({"detail": {"status": "voice_not_found", "message": "A voice with that id was not found."}});
                    return Err(refuse(400, detail, None));
                }
                Ok(())
            },
            move |socket, shake| serve(socket, shake, mode, Arc::clone(&synthesize), Arc::clone(&received)),
        )
        .await
    };
    (fake, received)
}

async fn serve(
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    shake: Handshake,
    mode: Mode,
    synthesize: Synthesizer,
    received: Arc<Mutex<Received>>,
) {
    let rate: u32 = shake
        .query("output_format")
        .and_then(|f| f.strip_prefix("pcm_"))
        .and_then(|r| r.parse().ok())
        .unwrap_or(44_100);
    let mut text = String::new();
    let mut opened = false;
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(frame) = message else { continue };
        let message: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap_or_default();
        let Some(piece) = message["text"].as_str() else { continue };
        if !opened {
            // The opening message must be a single space.
            if piece != " " {
                let _ = socket.send(Message::text(serde_json::json!({"message": "the first message must be a space", "error": "input_error", "code": 1008}).to_string())).await;
                let _ = socket
                    .send(Message::Close(Some(CloseFrame { code: CloseCode::Policy, reason: "input_error".into() })))
                    .await;
                return;
            }
            opened = true;
            received.lock().unwrap().openings.push(message.clone());
            continue;
        }
        if !piece.is_empty() {
            text.push_str(piece);
            continue;
        }
        // `{"text": ""}`: the input is complete.
        received.lock().unwrap().texts.push(text.clone());
        match mode {
            Mode::QuotaExceeded => {
                let error = serde_json::json!({"message": "This request exceeds your quota.", "error": "quota_exceeded", "code": 1008});
                let _ = socket.send(Message::text(error.to_string())).await;
                let _ = socket
                    .send(Message::Close(Some(CloseFrame { code: CloseCode::Policy, reason: "quota_exceeded".into() })))
                    .await;
                return;
            }
            Mode::Garbage => {
                let _ = socket.send(Message::text("{\"audio\": 12, ")).await;
                return;
            }
            Mode::SlowFirstAudio(delay) => tokio::time::sleep(delay).await,
            _ => {}
        }
        let pcm = synthesize(text.trim(), rate);
        let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        // Odd-sized chunks, as a network would cut them.
        let chunks: Vec<&[u8]> = bytes.chunks(4_801).collect();
        let half = chunks.len() / 2;
        for (i, chunk) in chunks.iter().enumerate() {
            if mode == Mode::CutMidStream && i == half.max(1) {
                return; // dropped: no close frame
            }
            let audio = base64::engine::general_purpose::STANDARD.encode(chunk);
            let message =
                serde_json::json!({"audio": audio, "isFinal": null, "normalizedAlignment": null, "alignment": null});
            if socket.send(Message::text(message.to_string())).await.is_err() {
                return;
            }
        }
        let _ = socket.send(Message::text(serde_json::json!({"isFinal": true}).to_string())).await;
        let _ = socket.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
        return;
    }
}
