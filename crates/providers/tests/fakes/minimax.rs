//! A fake MiniMax T2A WebSocket (`/ws/v1/t2a_v2`).

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{Fake, Handshake, listen, refuse};

pub const KEY: &str = "minimax-test-key";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Normal,
    /// `task_failed` with 1004 (authentication) after `task_start`.
    WrongKey,
    /// `task_failed` with 1002 (rate limit).
    Throttled,
    /// Half the audio, then the connection drops.
    CutMidStream,
    /// Audio that is not hex.
    Garbage,
    /// `task_started` only after this long.
    SlowStart(std::time::Duration),
}

/// The `task_start` and `task_continue` messages the fake got.
pub type Received = Arc<Mutex<Vec<Value>>>;

pub async fn start(mode: Mode, synthesize: super::elevenlabs::Synthesizer) -> (Fake, Received) {
    let received: Received = Arc::default();
    let fake = {
        let received = Arc::clone(&received);
        listen(
            move |shake: &Handshake| {
                if shake.path != "/ws/v1/t2a_v2" {
                    return Err(refuse(
                        404,
                        json!({"base_resp": {"status_code": 404, "status_msg": "not found"}}),
                        None,
                    ));
                }
                Ok(())
            },
            move |socket, shake| serve(socket, shake, mode, Arc::clone(&synthesize), Arc::clone(&received)),
        )
        .await
    };
    (fake, received)
}

fn failed(code: i64, message: &str) -> Message {
    Message::text(
        json!({"event": "task_failed", "base_resp": {"status_code": code, "status_msg": message}}).to_string(),
    )
}

async fn serve(
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    shake: Handshake,
    mode: Mode,
    synthesize: super::elevenlabs::Synthesizer,
    received: Received,
) {
    let _ = socket.send(Message::text(json!({"event": "connected_success", "session_id": "s1"}).to_string())).await;
    let mut rate = 32_000;
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else { continue };
        let message: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        received.lock().unwrap().push(message.clone());
        match message["event"].as_str() {
            Some("task_start") => {
                if mode == Mode::WrongKey || shake.header("authorization") != Some(&format!("Bearer {KEY}")) {
                    let _ = socket.send(failed(1004, "login fail: Please carry the API secret key")).await;
                    return;
                }
                if mode == Mode::Throttled {
                    let _ = socket.send(failed(1002, "rate limit exceeded")).await;
                    return;
                }
                if message["audio_setting"]["format"] != "pcm" {
                    let _ = socket.send(failed(2013, "invalid params: format")).await;
                    return;
                }
                rate = message["audio_setting"]["sample_rate"].as_u64().unwrap_or(32_000) as u32;
                if let Mode::SlowStart(delay) = mode {
                    tokio::time::sleep(delay).await;
                }
                let _ =
                    socket.send(Message::text(json!({"event": "task_started", "session_id": "s1"}).to_string())).await;
            }
            Some("task_continue") => {
                let text = message["text"].as_str().unwrap_or_default();
                let bytes: Vec<u8> = synthesize(text, rate).iter().flat_map(|s| s.to_le_bytes()).collect();
                let chunks: Vec<&[u8]> = bytes.chunks(3_000).collect();
                for (i, chunk) in chunks.iter().enumerate() {
                    if mode == Mode::CutMidStream && i == (chunks.len() / 2).max(1) {
                        return;
                    }
                    let hex: String = match mode {
                        Mode::Garbage => "zz-not-hex".to_owned(),
                        _ => chunk.iter().map(|b| format!("{b:02x}")).collect(),
                    };
                    let event = json!({"event": "task_continued", "data": {"audio": hex}, "is_final": false,
                                       "base_resp": {"status_code": 0, "status_msg": "success"}});
                    let _ = socket.send(Message::text(event.to_string())).await;
                }
                let end = json!({"event": "task_continued", "data": {"audio": ""}, "is_final": true,
                                 "base_resp": {"status_code": 0, "status_msg": "success"}});
                let _ = socket.send(Message::text(end.to_string())).await;
            }
            Some("task_finish") => {
                let _ = socket.send(Message::text(json!({"event": "task_finished"}).to_string())).await;
                return;
            }
            _ => {}
        }
    }
}
