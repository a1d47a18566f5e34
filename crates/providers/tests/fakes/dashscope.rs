//! A fake DashScope inference WebSocket (`/api-ws/v1/inference`) serving Paraformer recognition
//! and CosyVoice synthesis tasks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{Fake, Handshake, listen, refuse};

pub const KEY: &str = "sk-dashscope-test";

/// How the fake behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Normal,
    /// The handshake is refused: 401, as for a key DashScope does not know.
    WrongKey,
    /// The task fails at once: `Throttling.RateQuota`.
    Throttled,
    /// `task-started` only after this long.
    SlowStart(Duration),
    /// The connection drops in the middle of the task.
    CutMidTask,
    /// A text frame that is not DashScope's JSON.
    Garbage,
}

/// What the fake was asked: each task's `run-task` payload and the text it was given.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub run_tasks: Vec<Value>,
    pub texts: Vec<String>,
}

/// Recognises 16-bit samples (interim when `false`), and synthesises text at a rate.
pub struct Engines {
    pub transcribe: super::deepgram::Transcriber,
    pub synthesize: super::elevenlabs::Synthesizer,
}

pub async fn start(mode: Mode, engines: Engines) -> (Fake, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let engines = Arc::new(engines);
    let fake = {
        let received = Arc::clone(&received);
        listen(
            move |shake: &Handshake| {
                if shake.path != "/api-ws/v1/inference" {
                    return Err(refuse(404, json!({"code": "NotFound", "message": "no such path"}), None));
                }
                if mode == Mode::WrongKey || shake.header("authorization") != Some(&format!("Bearer {KEY}")) {
                    return Err(refuse(
                        401,
                        json!({"code": "InvalidApiKey", "message": "Invalid API-key provided."}),
                        None,
                    ));
                }
                Ok(())
            },
            move |socket, _| serve(socket, mode, Arc::clone(&engines), Arc::clone(&received)),
        )
        .await
    };
    (fake, received)
}

fn event(task_id: &str, event: &str, payload: Value) -> Message {
    Message::text(
        json!({"header": {"task_id": task_id, "event": event, "attributes": {}}, "payload": payload}).to_string(),
    )
}

async fn serve(
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    mode: Mode,
    engines: Arc<Engines>,
    received: Arc<Mutex<Received>>,
) {
    // run-task first.
    let Some(Ok(Message::Text(first))) = socket.next().await else { return };
    let run: Value = serde_json::from_str(first.as_str()).unwrap_or_default();
    let task_id = run["header"]["task_id"].as_str().unwrap_or_default().to_owned();
    if run["header"]["action"] != "run-task" || run["header"]["streaming"] != "duplex" || task_id.is_empty() {
        let failed = json!({"header": {"task_id": task_id, "event": "task-failed", "error_code": "InvalidParameter",
            "error_message": "the first message must be run-task"}, "payload": {}});
        let _ = socket.send(Message::text(failed.to_string())).await;
        return;
    }
    received.lock().unwrap().run_tasks.push(run["payload"].clone());
    match mode {
        Mode::Throttled => {
            let failed = json!({"header": {"task_id": task_id, "event": "task-failed", "error_code": "Throttling.RateQuota",
                "error_message": "Requests rate limit exceeded, please try again later."}, "payload": {}});
            let _ = socket.send(Message::text(failed.to_string())).await;
            return;
        }
        Mode::Garbage => {
            let _ = socket.send(Message::text("<html>500</html>")).await;
            return;
        }
        Mode::SlowStart(delay) => tokio::time::sleep(delay).await,
        _ => {}
    }
    let _ = socket.send(event(&task_id, "task-started", json!({}))).await;
    match run["payload"]["task"].as_str() {
        Some("asr") => {
            recognise(socket, &task_id, mode, &engines, run["payload"]["parameters"]["sample_rate"].as_u64()).await
        }
        Some("tts") => {
            let rate = run["payload"]["parameters"]["sample_rate"].as_u64().unwrap_or(22_050) as u32;
            synthesize(socket, &task_id, mode, &engines, rate, &received).await
        }
        _ => {}
    }
}

async fn recognise(
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    task_id: &str,
    mode: Mode,
    engines: &Engines,
    rate: Option<u64>,
) {
    if rate != Some(16_000) {
        return;
    }
    let (mut samples, mut last) = (Vec::<i16>::new(), 0);
    while let Some(Ok(message)) = socket.next().await {
        match message {
            Message::Binary(bytes) => {
                samples.extend(bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                if mode == Mode::CutMidTask && samples.len() >= 8_000 {
                    return; // dropped, no close frame
                }
                if samples.len() - last >= 8_000 {
                    last = samples.len();
                    let sentence = json!({"begin_time": 0, "end_time": null, "text": (engines.transcribe)(&samples, false),
                        "heartbeat": false, "sentence_end": false});
                    let _ = socket
                        .send(event(task_id, "result-generated", json!({"output": {"sentence": sentence}})))
                        .await;
                }
            }
            Message::Text(text) => {
                let message: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                if message["header"]["action"] == "finish-task" {
                    let sentence = json!({"begin_time": 0, "end_time": samples.len() / 16, "text": (engines.transcribe)(&samples, true),
                        "heartbeat": false, "sentence_end": true});
                    let payload =
                        json!({"output": {"sentence": sentence}, "usage": {"duration": samples.len() / 16_000}});
                    let _ = socket.send(event(task_id, "result-generated", payload)).await;
                    let _ = socket.send(event(task_id, "task-finished", json!({"output": {}}))).await;
                    return;
                }
            }
            _ => {}
        }
    }
}

async fn synthesize(
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    task_id: &str,
    mode: Mode,
    engines: &Engines,
    rate: u32,
    received: &Mutex<Received>,
) {
    let mut text = String::new();
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(frame) = message else { continue };
        let message: Value = serde_json::from_str(frame.as_str()).unwrap_or_default();
        match message["header"]["action"].as_str() {
            Some("continue-task") => text.push_str(message["payload"]["input"]["text"].as_str().unwrap_or_default()),
            Some("finish-task") => {
                received.lock().unwrap().texts.push(text.clone());
                let pcm = (engines.synthesize)(&text, rate);
                let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
                let chunks: Vec<&[u8]> = bytes.chunks(3_201).collect();
                for (i, chunk) in chunks.iter().enumerate() {
                    if mode == Mode::CutMidTask && i == chunks.len() / 2 {
                        return;
                    }
                    let _ = socket.send(Message::binary(chunk.to_vec())).await;
                }
                let _ = socket
                    .send(event(task_id, "task-finished", json!({"output": {}, "usage": {"characters": text.len()}})))
                    .await;
                return;
            }
            _ => {}
        }
    }
}
