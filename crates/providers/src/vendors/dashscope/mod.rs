//! Alibaba Cloud Model Studio (DashScope)'s WebSocket inference API, which Paraformer real-time ASR
//! and CosyVoice TTS share: `wss://dashscope.aliyuncs.com/api-ws/v1/inference` with
//! `Authorization: Bearer <api key>` (and `X-DashScope-WorkSpace` for a workspace).
//!
//! From Model Studio's "WebSocket API" pages for Paraformer real-time recognition and CosyVoice
//! synthesis: the client sends `run-task` (`header.action`, a client-made `task_id`,
//! `streaming: "duplex"`; `payload.task_group: "audio"`, `task`, `function`, `model`,
//! `parameters`, `input: {}`), waits for the `task-started` event, streams (audio as binary frames,
//! or text in `continue-task`), and sends `finish-task`. Events are JSON text frames with
//! `header.event`: `task-started`, `result-generated`, `task-finished`, and `task-failed` with
//! `header.error_code` and `error_message`; CosyVoice's audio comes as binary frames.

pub mod cosyvoice;
pub mod paraformer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use colloquy_model::VendorParamError;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use super::ws::{self, Socket, Target};
use crate::ProviderError;

pub const DEFAULT_URL: &str = "wss://dashscope.aliyuncs.com/api-ws/v1/inference";

/// What every DashScope vendor takes besides its own parameters.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub api_key: String,
    pub url: Option<String>,
    pub workspace: Option<String>,
    pub timeout_ms: Option<u32>,
    pub max_retries: Option<u32>,
}

impl Endpoint {
    pub fn validate(&self) -> Result<(), VendorParamError> {
        if let Some(url) = &self.url {
            super::websocket_url("url", url)?;
        }
        crate::vendors::check_limits(self.timeout_ms, self.max_retries)?;
        Ok(())
    }

    pub fn target(&self) -> Target {
        let mut headers = vec![("authorization", format!("Bearer {}", self.api_key))];
        if let Some(workspace) = &self.workspace {
            headers.push(("x-dashscope-workspace", workspace.clone()));
        }
        Target {
            url: self.url.clone().unwrap_or_else(|| DEFAULT_URL.to_owned()),
            headers,
            timeout: crate::vendors::timeout(self.timeout_ms),
            max_retries: crate::vendors::retries(self.max_retries),
        }
    }
}

/// A DashScope task on one connection.
pub(crate) struct Task {
    pub socket: Socket,
    pub id: String,
    pub timeout: Duration,
}

impl Task {
    /// Connects, sends `run-task` with `payload` and waits for `task-started`.
    pub async fn start(target: &Target, payload: serde_json::Value) -> Result<Task, ProviderError> {
        let mut socket = ws::connect(target).await?;
        let id = task_id();
        let run = serde_json::json!({
            "header": {"action": "run-task", "task_id": id, "streaming": "duplex"},
            "payload": payload,
        });
        send(&mut socket, Message::text(run.to_string())).await?;
        let mut task = Task { socket, id, timeout: target.timeout };
        loop {
            match task.next().await? {
                Some(Frame::Event(event)) if event.header.event == "task-started" => return Ok(task),
                Some(Frame::Event(event)) if event.header.event == "task-failed" => return Err(event.failure()),
                Some(_) => {}
                None => return Err(ProviderError::CutStream("DashScope closed before the task started".into())),
            }
        }
    }

    /// `continue-task` with `input`.
    pub async fn continue_with(&mut self, input: serde_json::Value) -> Result<(), ProviderError> {
        let message = serde_json::json!({
            "header": {"action": "continue-task", "task_id": self.id, "streaming": "duplex"},
            "payload": {"input": input},
        });
        send(&mut self.socket, Message::text(message.to_string())).await
    }

    /// `finish-task`: the input is complete.
    pub async fn finish(&mut self) -> Result<(), ProviderError> {
        let message = serde_json::json!({
            "header": {"action": "finish-task", "task_id": self.id, "streaming": "duplex"},
            "payload": {"input": {}},
        });
        send(&mut self.socket, Message::text(message.to_string())).await
    }

    /// The next event or audio frame; `None` when the server closed normally. Waits at most the
    /// timeout.
    pub async fn next(&mut self) -> Result<Option<Frame>, ProviderError> {
        loop {
            let message = match tokio::time::timeout(self.timeout, self.socket.next()).await {
                Err(_) => return Err(ProviderError::Timeout(self.timeout)),
                Ok(message) => message,
            };
            return match message {
                None => Ok(None),
                Some(Err(e)) => Err(ProviderError::CutStream(e.to_string())),
                Some(Ok(Message::Close(frame))) => match frame.as_ref().map(|f| u16::from(f.code)) {
                    Some(1000) | None => Ok(None),
                    Some(_) => Err(ws::closed_early(frame.as_ref())),
                },
                Some(Ok(Message::Binary(bytes))) => Ok(Some(Frame::Audio(bytes.to_vec()))),
                Some(Ok(Message::Text(text))) => serde_json::from_str::<Event>(text.as_str())
                    .map(|event| Some(Frame::Event(Box::new(event))))
                    .map_err(|e| {
                        let shown: String = text.as_str().chars().take(120).collect();
                        ProviderError::BadResponse(format!("not a DashScope event ({e}): {shown}"))
                    }),
                Some(Ok(_)) => continue,
            };
        }
    }
}

/// What a task's connection delivers.
pub(crate) enum Frame {
    Event(Box<Event>),
    Audio(Vec<u8>),
}

#[derive(Debug, Deserialize)]
pub(crate) struct Event {
    pub header: EventHeader,
    #[serde(default)]
    pub payload: serde_json::Value,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventHeader {
    pub event: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

impl Event {
    /// A `task-failed` event as an error, by its code.
    pub fn failure(&self) -> ProviderError {
        let code = self.header.error_code.as_deref().unwrap_or("unknown");
        let message = format!("{code}: {}", self.header.error_message.as_deref().unwrap_or("the task failed"));
        let lower = format!("{code} {message}").to_ascii_lowercase();
        if lower.contains("apikey")
            || lower.contains("api key")
            || lower.contains("accessdenied")
            || lower.contains("unauthorized")
        {
            ProviderError::Auth(message)
        } else if lower.contains("throttl") || lower.contains("rate limit") || lower.contains("ratequota") {
            ProviderError::RateLimited { message, retry_after: None }
        } else if lower.contains("internal") || lower.contains("timeout") {
            ProviderError::Unavailable(message)
        } else {
            ProviderError::BadResponse(message)
        }
    }
}

pub(crate) async fn send(socket: &mut Socket, message: Message) -> Result<(), ProviderError> {
    ws::send(socket, "DashScope", message).await
}

/// A task id unique to this process: 32 hex digits, as the docs' UUIDs without dashes.
fn task_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    format!("{now:016x}{:016x}", NEXT.fetch_add(1, Ordering::Relaxed) ^ (u64::from(std::process::id()) << 32))
}
