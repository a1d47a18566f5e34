//! ZEGO's refusals and its answer: the return codes, [`ZegoError`] (and how the shared
//! [`ApiError`] and the supervisor's and the store's errors become one), and the
//! `{Code, Message, RequestId, Data}` envelope every action is answered in.

use axum::Json;
use axum::response::{IntoResponse, Response};
use colloquy_http::error::{ApiError, ErrorCode};
use colloquy_supervisor::SupervisorError;
use serde::Serialize;
use serde_json::{Value, json};

/// ZEGO's return codes. The `1000000xx` ones are ZEGO's documented common codes; of the business
/// codes, `410000001/3/4` and `410001008` are documented, the others are this server's choice.
pub mod codes {
    pub const SUCCESS: u64 = 0;
    pub const APP_ID_FORMAT: u64 = 100_000_001;
    pub const TIMESTAMP_EMPTY: u64 = 100_000_002;
    pub const TIMESTAMP_FORMAT: u64 = 100_000_003;
    pub const SIGNATURE_EXPIRED: u64 = 100_000_004;
    pub const SIGNATURE_ERROR: u64 = 100_000_005;
    pub const ACTION_EMPTY: u64 = 100_000_006;
    pub const ACTION_UNSUPPORTED: u64 = 100_000_007;
    pub const NONCE_EMPTY: u64 = 100_000_008;
    pub const SIGNATURE_EMPTY: u64 = 100_000_009;
    pub const NO_SERVER_SECRET: u64 = 100_000_010;
    pub const SIGNATURE_VERSION_EMPTY: u64 = 100_000_013;
    pub const SIGNATURE_VERSION_UNSUPPORTED: u64 = 100_000_014;
    pub const SYSTEM_ERROR: u64 = 410_000_001;
    pub const INVALID_PARAMETER: u64 = 410_000_003;
    pub const JSON_PARSE_FAILED: u64 = 410_000_004;
    /// Our choice: too many requests per second.
    pub const RATE_LIMITED: u64 = 410_000_006;
    /// Seen in ZEGO's samples: the AgentId is already registered.
    pub const AGENT_EXISTS: u64 = 410_001_008;
    /// Our choice: no agent is registered with this AgentId.
    pub const AGENT_NOT_FOUND: u64 = 410_001_009;
    /// Our choice: no live instance with this AgentInstanceId.
    pub const INSTANCE_NOT_FOUND: u64 = 410_001_010;
    /// Our choice: the app has its maximum of live instances (or the node is full).
    pub const INSTANCE_LIMIT: u64 = 410_001_011;
    /// Our choice: an instance with this AgentUserId is already in the room.
    pub const INSTANCE_DUPLICATE: u64 = 410_001_012;
    /// Our choice: the instance is starting or stopping, or has no media session.
    pub const INSTANCE_NOT_READY: u64 = 410_001_013;
}

/// A refusal in ZEGO's envelope.
#[derive(Debug)]
pub struct ZegoError {
    pub code: u64,
    pub message: String,
    /// Seconds, for `Retry-After` on throttling answers.
    pub retry_after_secs: Option<u64>,
}

impl ZegoError {
    pub(crate) fn new(code: u64, message: impl Into<String>) -> ZegoError {
        ZegoError { code, message: message.into(), retry_after_secs: None }
    }

    pub(crate) fn param(message: impl Into<String>) -> ZegoError {
        ZegoError::new(codes::INVALID_PARAMETER, message)
    }
}

impl ZegoError {
    /// An error the HTTP edge raised under ZEGO's paths: an unknown path or method, a body or URI
    /// over the limits.
    pub fn edge(e: ApiError) -> ZegoError {
        match e.code {
            ErrorCode::NotFound | ErrorCode::MethodNotAllowed => ZegoError::new(
                codes::ACTION_UNSUPPORTED,
                "this path or method serves no ZEGO action: POST /?Action=… or POST /zego?Action=…",
            ),
            _ => e.into(),
        }
    }
}

impl From<ApiError> for ZegoError {
    fn from(e: ApiError) -> ZegoError {
        let code = match e.code {
            ErrorCode::InvalidJson => codes::JSON_PARSE_FAILED,
            ErrorCode::RateLimited => codes::RATE_LIMITED,
            ErrorCode::Internal => codes::SYSTEM_ERROR,
            _ => codes::INVALID_PARAMETER,
        };
        let message = match &e.field {
            Some(field) if !e.message.contains(field.as_str()) => format!("{field}: {}", e.message),
            _ => e.message,
        };
        ZegoError { code, message, retry_after_secs: e.retry_after_secs }
    }
}

impl From<SupervisorError> for ZegoError {
    fn from(e: SupervisorError) -> ZegoError {
        let message = e.to_string();
        match e {
            SupervisorError::NotFound => ZegoError::new(codes::INSTANCE_NOT_FOUND, "agent instance not found"),
            SupervisorError::NameTaken(_) => ZegoError::new(
                codes::INSTANCE_DUPLICATE,
                "an agent instance with this RTC.AgentUserId is already in the room",
            ),
            SupervisorError::AgentLimit { .. } => ZegoError::new(codes::INSTANCE_LIMIT, message),
            SupervisorError::NotRunning(status) if status.is_terminal() => {
                ZegoError::new(codes::INSTANCE_NOT_FOUND, "agent instance not found: it was deleted")
            }
            SupervisorError::NotRunning(_) | SupervisorError::NoMediaSession => {
                ZegoError::new(codes::INSTANCE_NOT_READY, message)
            }
            SupervisorError::ShuttingDown
            | SupervisorError::StartFailed(_)
            | SupervisorError::NotRecorded(_)
            | SupervisorError::Elsewhere { .. }
            | SupervisorError::Cluster(_) => ZegoError::new(codes::SYSTEM_ERROR, message),
            SupervisorError::Store(colloquy_store::StoreError::Database(e)) => {
                tracing::error!(error = %e, "records failed");
                ZegoError::new(codes::SYSTEM_ERROR, format!("the records could not be written ({e}); nothing was done"))
            }
            SupervisorError::Store(e) => {
                tracing::error!(error = %e, "records failed");
                ZegoError::new(codes::SYSTEM_ERROR, "the records could not be read or written")
            }
        }
    }
}

impl From<colloquy_store::StoreError> for ZegoError {
    fn from(e: colloquy_store::StoreError) -> ZegoError {
        ZegoError::from(SupervisorError::Store(e))
    }
}

/// What an action answers: its `Data`, or a refusal.
pub type ZegoResult<T> = Result<T, ZegoError>;

/// ZEGO's answer to every request.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    code: u64,
    message: String,
    request_id: String,
    data: Value,
}

/// Writes `result` as ZEGO's answer: HTTP 200 with `{Code, Message, RequestId, Data}`.
pub(crate) fn envelope(result: ZegoResult<Value>) -> Response {
    let request_id = uuid::Uuid::now_v7().simple().to_string();
    let (body, retry_after) = match result {
        Ok(data) => (Envelope { code: codes::SUCCESS, message: "success".to_owned(), request_id, data }, None),
        Err(e) => (Envelope { code: e.code, message: e.message, request_id, data: json!({}) }, e.retry_after_secs),
    };
    // ZEGO answers every request with HTTP 200; `Code` says how it went, and a throttled request
    // also says when to come back.
    let mut response = Json(body).into_response();
    if let Some(secs) = retry_after {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    }
    response
}
