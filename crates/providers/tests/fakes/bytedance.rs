//! A fake Volcano Engine TTS HTTP API (`POST /api/v1/tts`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

pub const APPID: &str = "zego_test";
pub const TOKEN: &str = "volc-token";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Normal,
    /// HTTP 401 with code 3001 "invalid token".
    WrongToken,
    /// Code 3003: too many requests at once.
    Busy,
    /// Code 3050: no such voice.
    UnknownVoice,
    /// Success whose `data` is not base64.
    Garbage,
}

struct Fake {
    mode: Mode,
    synthesize: super::elevenlabs::Synthesizer,
    bodies: Arc<Mutex<Vec<Value>>>,
}

pub struct Server {
    pub addr: SocketAddr,
    pub bodies: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(mode: Mode, synthesize: super::elevenlabs::Synthesizer) -> Server {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let state = Arc::new(Fake { mode, synthesize, bodies: Arc::clone(&bodies) });
    let app = axum::Router::new().route("/api/v1/tts", axum::routing::post(tts)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { addr, bodies, task }
}

async fn tts(State(fake): State<Arc<Fake>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    fake.bodies.lock().unwrap().push(body.clone());
    let reqid = body["request"]["reqid"].clone();
    let refuse = |status: StatusCode, code: i64, message: &str| {
        (status, Json(json!({"reqid": reqid, "code": code, "message": message}))).into_response()
    };
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if fake.mode == Mode::WrongToken || authorization != format!("Bearer;{TOKEN}") || body["app"]["token"] != TOKEN {
        return refuse(StatusCode::UNAUTHORIZED, 3001, "invalid token");
    }
    match fake.mode {
        Mode::Busy => return refuse(StatusCode::OK, 3003, "concurrency limit exceeded"),
        Mode::UnknownVoice => return refuse(StatusCode::OK, 3050, "voice_type not found"),
        Mode::Garbage => {
            return Json(json!({"reqid": reqid, "code": 3000, "message": "Success", "data": "%%not base64%%"}))
                .into_response();
        }
        _ => {}
    }
    if body["app"]["appid"] != APPID || body["request"]["operation"] != "query" || body["audio"]["encoding"] != "pcm" {
        return refuse(StatusCode::BAD_REQUEST, 3001, "invalid request");
    }
    let rate = body["audio"]["rate"].as_u64().unwrap_or(24_000) as u32;
    let text = body["request"]["text"].as_str().unwrap_or_default();
    let bytes: Vec<u8> = (fake.synthesize)(text, rate).iter().flat_map(|s| s.to_le_bytes()).collect();
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    Json(json!({"reqid": reqid, "code": 3000, "message": "Success", "operation": "query", "sequence": -1, "data": data,
                "addition": {"duration": "1000"}}))
    .into_response()
}
