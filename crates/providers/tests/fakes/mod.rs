//! Local fake servers that speak the speech vendors' documented protocols, failures included, for
//! the vendor clients' tests (and the end-to-end calls, which include this module by path).
//!
//! - `deepgram`: Deepgram's live streaming API (`GET /v1/listen` WebSocket), after Deepgram's API
//!   reference "Live Audio" (developers.deepgram.com/reference/speech-to-text/listen-streaming) and
//!   its error pages: `Authorization: Token`, `Results` / `Metadata` messages, `CloseStream`,
//!   refusals as HTTP statuses with `{err_code, err_msg}` bodies, close code 1011 on a timeout;
//!   and Aura's `/v1/speak` after "Text to Speech Stream" and its `Speak` / `Flush` / `Close`
//!   pages: binary `linear16` frames, `Flushed`, `Warning`.
//! - `elevenlabs`: ElevenLabs' text-to-speech WebSocket (`/v1/text-to-speech/{voice_id}/
//!   stream-input`), after ElevenLabs' API reference "WebSocket"
//!   (elevenlabs.io/docs/api-reference/text-to-speech/v-1-text-to-speech-voice-id-stream-input):
//!   `xi-api-key`, the `{"text": " "}` opening, text messages, `{"text": ""}` to end, answers
//!   `{"audio": base64, "isFinal": …}`, errors as a message and close code 1008.
//! - `assemblyai`: AssemblyAI Universal-Streaming (`/v3/ws`), after AssemblyAI's "Streaming API"
//!   reference and "Message Sequence" page: `Authorization: <key>`, `speech_model`, `Begin`,
//!   `Turn` (`turn_order`, `end_of_turn`, `turn_is_formatted`), `Terminate`, `Termination`.
//! - `bytedance`: Volcano Engine's speech synthesis WebSocket (`/api/v1/tts/ws_binary`), after
//!   its TTS WebSocket reference (the binary protocol: 4-byte header, full client request,
//!   audio-only server responses with sequence numbers, error messages) and the request fields
//!   it shares with the HTTP API: `Authorization: Bearer; <token>`, `{app, user, audio, request}`
//!   with `operation: "submit"`, error codes 3001, 3003, 3050.
//! - `cartesia`: Cartesia's TTS WebSocket (`/tts/websocket`), after Cartesia's "Text to Speech
//!   (WebSocket)" reference: `Authorization: Bearer`, `Cartesia-Version`, a generation request per
//!   `context_id`, `chunk` (base64 PCM) / `done` / `error` answers.
//! - `microsoft`: Azure AI Speech's text to speech REST API (`POST /cognitiveservices/v1`), after
//!   Azure's "Text to speech REST API" reference: `Ocp-Apim-Subscription-Key`, an SSML body,
//!   `X-Microsoft-OutputFormat: raw-<k>khz-16bit-mono-pcm`, audio streamed in the body, 401 / 429.
//! - `microsoft_stt`: Azure AI Speech real-time recognition, after Microsoft's "Speech Service
//!   WebSocket protocol" reference: `speech.config`, binary `audio` messages (a 2-byte header
//!   size, `Path` / `X-RequestId` / `X-Timestamp` headers, a RIFF header first, an empty one
//!   last), `turn.start`, `speech.startDetected`, `speech.hypothesis`, `speech.endDetected`,
//!   `speech.phrase`, `turn.end`, `telemetry`, close codes 1002 / 1007; the handshake's
//!   `Ocp-Apim-Subscription-Key` and `X-ConnectionId` as the public Speech SDK sends them.
//! - `minimax`: MiniMax's T2A WebSocket (`/ws/v1/t2a_v2`), after MiniMax's "Text to Speech (T2A)
//!   WebSocket" reference and AsyncAPI document: `connected_success`, `task_start` /
//!   `task_started`, `task_continue` / `task_continued` with hex audio and `is_final`,
//!   `task_finish`, `task_failed` with `base_resp.status_code`.
//! - `tencent`: Tencent Cloud's real-time ASR WebSocket (API 2.0, `/asr/v2/<appid>`), after its
//!   "Real-Time Speech Recognition (WebSocket)" reference: the HMAC-SHA1 URL signature checked,
//!   the handshake answer, `slice_type` results, `{"type": "end"}`, `final: 1`, error codes.
//! - `openai.rs` (not a module here: the tests and `colloquy bench tools` that need it include it by
//!   path on its own): OpenAI's chat completions stream with tool calls.
//! - `dashscope`: Alibaba Cloud Model Studio's inference WebSocket (`/api-ws/v1/inference`), after
//!   Model Studio's "WebSocket API" pages for Paraformer real-time recognition and CosyVoice
//!   synthesis and their client/server event references: `Authorization: Bearer`, `run-task` /
//!   `task-started` / `continue-task` / `finish-task` / `result-generated` / `task-finished`,
//!   `task-failed` with `error_code`, CosyVoice's audio as binary frames.

// Each test binary uses part of the fakes; the handshake callback's error is tungstenite's own
// `ErrorResponse`, large as it is.
#![allow(dead_code, clippy::result_large_err)]

pub mod assemblyai;
pub mod bytedance;
pub mod cartesia;
pub mod dashscope;
pub mod deepgram;
pub mod elevenlabs;
pub mod microsoft;
pub mod microsoft_stt;
pub mod minimax;
pub mod tencent;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

/// What a fake saw of one connection's handshake.
#[derive(Clone, Debug, Default)]
pub struct Handshake {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

impl Handshake {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn of(request: &Request) -> Handshake {
        let uri = request.uri();
        let query = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect();
        let headers = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        Handshake { path: uri.path().to_owned(), query, headers }
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A refusal of the handshake: the status and a JSON body.
pub fn refuse(status: u16, body: serde_json::Value, retry_after: Option<u32>) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).expect("a status");
    response.headers_mut().insert("content-type", "application/json".parse().unwrap());
    if let Some(secs) = retry_after {
        response.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

/// A listener on a free loopback port and the handshakes it saw.
pub struct Fake {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Handshake>>>,
    /// Connections accepted (TCP), including refused handshakes.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.seen.lock().unwrap().clone()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Serves each connection with `serve` after checking its handshake with `check` (which may
/// refuse it). `serve` gets the open socket.
pub async fn listen<C, S, F>(check: C, serve: S) -> Fake
where
    C: Fn(&Handshake) -> Result<(), ErrorResponse> + Send + Sync + 'static,
    S: Fn(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, Handshake) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (check, serve) = (Arc::new(check), Arc::new(serve));
    let task = {
        let (seen, connections) = (Arc::clone(&seen), Arc::clone(&connections));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                // Each message goes out as it is written, as a vendor's server sends it: without
                // this, Nagle's algorithm holds a second small message for the client's delayed
                // ACK (40 ms), a delay of the fake's that the clients' figures would carry.
                let _ = tcp.set_nodelay(true);
                connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (seen, check, serve) = (Arc::clone(&seen), Arc::clone(&check), Arc::clone(&serve));
                tokio::spawn(async move {
                    let mut handshake = None;
                    let callback = |request: &Request, response: Response| {
                        let shake = Handshake::of(request);
                        seen.lock().unwrap().push(shake.clone());
                        let verdict = check(&shake);
                        handshake = Some(shake);
                        verdict.map(|()| response)
                    };
                    let Ok(socket) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else { return };
                    serve(socket, handshake.unwrap_or_default()).await;
                });
            }
        })
    };
    Fake { addr, seen, connections, task }
}
