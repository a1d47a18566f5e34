//! A fake Cartesia TTS WebSocket (`/tts/websocket`).

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{Fake, Handshake, listen, refuse};

pub const KEY: &str = "sk_car_test";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Normal,
    /// The handshake is refused with 401.
    WrongKey,
    /// An `error` answer with status 429 for the context.
    Throttled,
    /// Half the audio, then the connection drops.
    CutMidStream,
    /// A frame that is not Cartesia's JSON.
    Garbage,
    /// The first chunk only after this long.
    SlowFirstAudio(std::time::Duration),
}

/// Every generation request the fake got.
pub type Requests = Arc<Mutex<Vec<Value>>>;

pub async fn start(mode: Mode, synthesize: super::elevenlabs::Synthesizer) -> (Fake, Requests) {
    let requests: Requests = Arc::default();
    let fake = {
        let requests = Arc::clone(&requests);
        listen(
            move |shake: &Handshake| {
                if shake.path != "/tts/websocket" {
                    return Err(refuse(404, json!({"error": "not found"}), None));
                }
                if mode == Mode::WrongKey || shake.header("authorization") != Some(&format!("Bearer {KEY}")) {
                    return Err(refuse(401, json!({"error": "Invalid API key"}), None));
                }
                if shake.header("cartesia-version").is_none() {
                    return Err(refuse(400, json!({"error": "Cartesia-Version is required"}), None));
                }
                Ok(())
            },
            move |socket, _| serve(socket, mode, Arc::clone(&synthesize), Arc::clone(&requests)),
        )
        .await
    };
    (fake, requests)
}

async fn serve(
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    mode: Mode,
    synthesize: super::elevenlabs::Synthesizer,
    requests: Requests,
) {
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else { continue };
        let request: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        requests.lock().unwrap().push(request.clone());
        let context = request["context_id"].clone();
        let format = &request["output_format"];
        if format["container"] != "raw" || format["encoding"] != "pcm_s16le" || request["voice"]["mode"] != "id" {
            let error = json!({"type": "error", "context_id": context, "status_code": 400, "done": true, "error": "bad request"});
            let _ = socket.send(Message::text(error.to_string())).await;
            continue;
        }
        if mode == Mode::Garbage {
            let _ = socket.send(Message::text("{\"type\": \"chunk\", \"data\": ")).await;
            return;
        }
        if mode == Mode::Throttled {
            let error = json!({"type": "error", "context_id": context, "status_code": 429, "done": true,
                               "error": "Too many concurrent requests"});
            let _ = socket.send(Message::text(error.to_string())).await;
            continue;
        }
        if let Mode::SlowFirstAudio(delay) = mode {
            tokio::time::sleep(delay).await;
        }
        let rate = format["sample_rate"].as_u64().unwrap_or(44_100) as u32;
        let transcript = request["transcript"].as_str().unwrap_or_default();
        let bytes: Vec<u8> = synthesize(transcript, rate).iter().flat_map(|s| s.to_le_bytes()).collect();
        let chunks: Vec<&[u8]> = bytes.chunks(4_001).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            if mode == Mode::CutMidStream && i == (chunks.len() / 2).max(1) {
                return;
            }
            let data = base64::engine::general_purpose::STANDARD.encode(chunk);
            let answer = json!({"type": "chunk", "data": data, "done": false, "status_code": 206, "step_time": 12.5,
                                "context_id": context});
            let _ = socket.send(Message::text(answer.to_string())).await;
        }
        let done = json!({"type": "done", "done": true, "status_code": 200, "context_id": context});
        let _ = socket.send(Message::text(done.to_string())).await;
    }
}
