//! Agora's error envelope, `{"detail": "...", "reason": "..."}`, with Agora's status codes and
//! reasons; the shared checks' [`ApiError`]s and the supervisor's errors are put into it here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use colloquy_http::error::{ApiError, ErrorCode};
use colloquy_supervisor::SupervisorError;
use serde::Serialize;

/// An error answer in Agora's form: `{"detail": "...", "reason": "..."}`.
#[derive(Debug)]
pub struct AgoraError {
    pub status: StatusCode,
    pub reason: &'static str,
    pub detail: String,
    retry_after_secs: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    detail: &'a str,
    reason: &'a str,
}

impl AgoraError {
    pub(crate) fn new(status: StatusCode, reason: &'static str, detail: impl Into<String>) -> AgoraError {
        AgoraError { status, reason, detail: detail.into(), retry_after_secs: None }
    }

    pub(crate) fn unauthorized(detail: impl Into<String>) -> AgoraError {
        AgoraError::new(StatusCode::UNAUTHORIZED, "InvalidPermission", detail)
    }

    pub(crate) fn forbidden(detail: impl Into<String>) -> AgoraError {
        AgoraError::new(StatusCode::FORBIDDEN, "InvalidPermission", detail)
    }

    pub(crate) fn not_found() -> AgoraError {
        AgoraError::new(StatusCode::NOT_FOUND, "TaskNotFound", "agent not found or has exited")
    }
}

impl AgoraError {
    /// 400 `InvalidFieldValue`.
    pub(crate) fn invalid(detail: impl Into<String>) -> AgoraError {
        AgoraError::new(StatusCode::BAD_REQUEST, "InvalidFieldValue", detail)
    }

    /// 400 `InvalidRequestBody`.
    pub(crate) fn bad_body(detail: impl Into<String>) -> AgoraError {
        AgoraError::new(StatusCode::BAD_REQUEST, "InvalidRequestBody", detail)
    }
}

impl IntoResponse for AgoraError {
    fn into_response(self) -> Response {
        let body = ErrorBody { detail: &self.detail, reason: self.reason };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The shared checks answer in the native envelope; this puts them in Agora's.
impl From<ApiError> for AgoraError {
    fn from(e: ApiError) -> AgoraError {
        let (status, reason) = match e.code {
            ErrorCode::MissingField => (StatusCode::BAD_REQUEST, "MissingRequiredField"),
            ErrorCode::InvalidField | ErrorCode::UnknownField => (StatusCode::BAD_REQUEST, "InvalidFieldValue"),
            ErrorCode::InvalidJson
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::PayloadTooLarge
            | ErrorCode::RequestTimeout => (e.status, "InvalidRequestBody"),
            ErrorCode::Unauthorized => (StatusCode::UNAUTHORIZED, "InvalidPermission"),
            ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ErrorCode::QuotaExceeded => (StatusCode::UNPROCESSABLE_ENTITY, "ResourceQuotaLimitExceeded"),
            ErrorCode::NotFound | ErrorCode::AgentNotRunning => (StatusCode::NOT_FOUND, "TaskNotFound"),
            ErrorCode::NameConflict => (StatusCode::CONFLICT, "TaskConflict"),
            ErrorCode::ShuttingDown | ErrorCode::NoMediaSession | ErrorCode::RecordsUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
            }
            ErrorCode::StartFailed => (StatusCode::SERVICE_UNAVAILABLE, "ResourceAllocationFailed"),
            _ => (e.status, "InternalError"),
        };
        AgoraError { status, reason, detail: e.message, retry_after_secs: e.retry_after_secs }
    }
}

impl AgoraError {
    /// An error the HTTP edge raised under Agora's paths: an unknown path or method, a body or URI
    /// over the limits.
    pub fn edge(e: ApiError) -> AgoraError {
        match e.code {
            ErrorCode::NotFound => AgoraError::new(
                StatusCode::NOT_FOUND,
                "NotImplemented",
                "no such route in Agora's Conversational AI Engine v2 API on this server; see docs/dialects/agora.md",
            ),
            ErrorCode::MethodNotAllowed => AgoraError::new(StatusCode::METHOD_NOT_ALLOWED, "NotImplemented", e.message),
            ErrorCode::UriTooLong => AgoraError::new(e.status, "InvalidRequestBody", e.message),
            _ => e.into(),
        }
    }
}

impl From<SupervisorError> for AgoraError {
    fn from(e: SupervisorError) -> AgoraError {
        match e {
            // Agora answers 404 for an agent that is "not found or has exited".
            SupervisorError::NotFound => AgoraError::not_found(),
            SupervisorError::NotRunning(status) => {
                AgoraError::new(StatusCode::NOT_FOUND, "TaskNotFound", format!("the agent has exited ({status})"))
            }
            e => ApiError::from(e).into(),
        }
    }
}

pub(crate) type AgoraResult<T> = Result<T, AgoraError>;
