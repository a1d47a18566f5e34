//! A fake AssemblyAI Universal-Streaming server (`/v3/ws`).

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Fake, Handshake, listen, refuse};

pub const KEY: &str = "aai-test-key";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// `Begin`, a growing `Turn` every half second of audio, the formatted end of turn after
    /// `Terminate`, `Termination`, close 1000.
    Normal,
    /// The handshake is refused with 401.
    WrongKey,
    /// Closed with 1008 "Unauthorized connection" after `Begin`.
    PolicyClose,
    /// The connection drops after half a second of audio.
    CutMidTurn,
    /// A `Turn` without its `turn_order`, after half a second of audio.
    Garbage,
    /// An `Error` 3009 "Too many concurrent sessions" and close code 3009, as "Common session
    /// errors and closures" lists.
    TooManySessions,
    /// `Begin` only after this long.
    SlowBegin(std::time::Duration),
}

pub async fn start(mode: Mode, transcribe: super::deepgram::Transcriber) -> Fake {
    listen(
        move |shake: &Handshake| {
            if shake.path != "/v3/ws" {
                return Err(refuse(404, json!({"error": "not found"}), None));
            }
            if mode == Mode::WrongKey || shake.header("authorization") != Some(KEY) {
                return Err(refuse(401, json!({"error": "Invalid API key"}), None));
            }
            if shake.query("speech_model").is_none() || shake.query("encoding") != Some("pcm_s16le") {
                return Err(refuse(400, json!({"error": "speech_model and encoding are required"}), None));
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
    transcribe: super::deepgram::Transcriber,
) {
    if mode == Mode::TooManySessions {
        let error = json!({"type": "Error", "error_code": 3009,
                           "error": "Unauthorized Connection: Too many concurrent sessions"});
        let _ = socket.send(Message::text(error.to_string())).await;
        let frame = CloseFrame { code: CloseCode::Library(3009), reason: "See Error message for details".into() };
        let _ = socket.send(Message::Close(Some(frame))).await;
        return;
    }
    if let Mode::SlowBegin(delay) = mode {
        tokio::time::sleep(delay).await;
    }
    let _ =
        socket.send(Message::text(json!({"type": "Begin", "id": "s1", "expires_at": 1_900_000_000}).to_string())).await;
    if mode == Mode::PolicyClose {
        let frame = CloseFrame { code: CloseCode::Policy, reason: "Unauthorized connection: Invalid API key".into() };
        let _ = socket.send(Message::Close(Some(frame))).await;
        return;
    }
    let formatted = shake.query("format_turns") == Some("true");
    let (mut samples, mut last) = (Vec::<i16>::new(), 0);
    let turn = |transcript: String, end: bool, formatted: bool| {
        json!({"type": "Turn", "turn_order": 0, "turn_is_formatted": formatted, "end_of_turn": end,
               "transcript": transcript, "end_of_turn_confidence": 0.9, "words": []})
        .to_string()
    };
    while let Some(Ok(message)) = socket.next().await {
        match message {
            Message::Binary(bytes) => {
                samples.extend(bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                if samples.len() - last >= 8_000 {
                    if mode == Mode::CutMidTurn {
                        return;
                    }
                    if mode == Mode::Garbage {
                        let _ = socket.send(Message::text(json!({"type": "Turn", "transcript": 7}).to_string())).await;
                        return;
                    }
                    last = samples.len();
                    let _ = socket.send(Message::text(turn(transcribe(&samples, false), false, false))).await;
                }
            }
            Message::Text(text) => {
                let message: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                if message["type"] == "Terminate" {
                    let text = transcribe(&samples, true);
                    let _ = socket.send(Message::text(turn(text.to_lowercase(), true, false))).await;
                    if formatted {
                        let _ = socket.send(Message::text(turn(text, true, true))).await;
                    }
                    let end = json!({"type": "Termination", "audio_duration_seconds": samples.len() / 16_000,
                                     "session_duration_seconds": 1});
                    let _ = socket.send(Message::text(end.to_string())).await;
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })))
                        .await;
                    return;
                }
            }
            _ => {}
        }
    }
}
