//! Why a request failed ([`Failure`]: an HTTP status, Alibaba's error code and a message), what
//! the supervisor's and the shared checks' errors become, and the two envelopes a failure is
//! answered in: the app server's `{code, message, error_code, request_id}` and the OpenAPI's
//! `{RequestId, HostId, Code, Message}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use colloquy_http::error::{ApiError, ErrorCode};
use colloquy_supervisor::SupervisorError;
use serde_json::json;

use super::openapi::HOST_ID;
use super::request_id;

/// Why a request failed, before it is put in either envelope.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    /// Alibaba's error code (`InvalidParameter`, `MissingParameter`, …).
    pub(crate) code: String,
    pub(crate) message: String,
    /// Seconds, for `Retry-After` on `Throttling.User`.
    pub(crate) retry_after_secs: Option<u64>,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Failure {
        Failure { status, code: code.to_owned(), message: message.into(), retry_after_secs: None }
    }

    /// 400 `InvalidParameter`.
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, "InvalidParameter", message)
    }

    /// 400 `MissingParameter`, naming the parameter as Alibaba does.
    pub(crate) fn missing(name: &str) -> Failure {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
        )
    }

    /// 404: no instance with this id for this app.
    pub(crate) fn instance_not_found(id: &str) -> Failure {
        Failure::new(
            StatusCode::NOT_FOUND,
            "InvalidInstanceId.NotFound",
            format!("The specified instance {id:?} does not exist."),
        )
    }

    /// 404: the app configures agents, and none has this `AIAgentId`.
    pub(crate) fn agent_not_found(id: &str) -> Failure {
        Failure::new(
            StatusCode::NOT_FOUND,
            "InvalidAIAgentId.NotFound",
            format!("The specified AIAgentId {id:?} is not one of this app's configured agents."),
        )
    }
}

impl From<SupervisorError> for Failure {
    fn from(e: SupervisorError) -> Failure {
        let message = e.to_string();
        match e {
            SupervisorError::NotFound => Failure::instance_not_found(""),
            SupervisorError::NameTaken(_) => Failure::invalid(message),
            SupervisorError::AgentLimit { .. } => {
                Failure::new(StatusCode::FORBIDDEN, "Forbidden.ConcurrencyLimitExceeded", message)
            }
            SupervisorError::NotRunning(_) => {
                Failure::new(StatusCode::FORBIDDEN, "Forbidden.InstanceNotExecuting", message)
            }
            SupervisorError::NoMediaSession => Failure::new(StatusCode::FORBIDDEN, "Forbidden.NoMediaSession", message),
            SupervisorError::ShuttingDown
            | SupervisorError::StartFailed(_)
            | SupervisorError::NotRecorded(_)
            | SupervisorError::Elsewhere { .. }
            | SupervisorError::Cluster(_) => {
                Failure::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message)
            }
            SupervisorError::Store(colloquy_store::StoreError::Database(e)) => {
                tracing::error!(error = %e, "records failed");
                Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    format!("the records could not be written ({e}); nothing was done"),
                )
            }
            SupervisorError::Store(e) => {
                tracing::error!(error = %e, "records failed");
                Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "the records could not be read or written",
                )
            }
        }
    }
}

impl Failure {
    /// An error the HTTP edge raised under Alibaba's paths: an unknown path or method, a body or
    /// URI over the limits. The codes are the ones Alibaba's gateway uses where it has one.
    pub(crate) fn edge(e: ApiError) -> Failure {
        match e.code {
            ErrorCode::NotFound => Failure::new(
                StatusCode::NOT_FOUND,
                "InvalidAction.NotFound",
                "no such action or path in Alibaba's AICallKit or IMS API on this server",
            ),
            ErrorCode::MethodNotAllowed => Failure::new(e.status, "UnsupportedHTTPMethod", e.message),
            ErrorCode::PayloadTooLarge => Failure::new(e.status, "InvalidParameter.TooLarge", e.message),
            ErrorCode::UriTooLong => Failure::new(e.status, "InvalidParameter.UriTooLong", e.message),
            _ => e.into(),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        if e.status == StatusCode::TOO_MANY_REQUESTS {
            return Failure {
                retry_after_secs: e.retry_after_secs,
                ..Failure::new(StatusCode::TOO_MANY_REQUESTS, "Throttling.User", e.message)
            };
        }
        let message = match &e.field {
            Some(field) if !e.message.contains(field.as_str()) => format!("{field}: {}", e.message),
            _ => e.message,
        };
        Failure::new(e.status, "InvalidParameter", message)
    }
}

/// Puts a failure's `Retry-After` on its answer, in either envelope.
fn with_retry_after(mut response: Response, failure_retry: Option<u64>) -> Response {
    if let Some(secs) = failure_retry {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The app server's envelope: `{code, message, error_code, request_id}` with the same HTTP status
/// as `code`; a missing instance or agent is `AgentNotFound`, as the AUI server says.
pub(crate) fn app_server_response(failure: Failure) -> Response {
    let missing = ["InvalidInstanceId.NotFound", "InvalidAIAgentId.NotFound"];
    let error_code = if failure.status == StatusCode::NOT_FOUND && missing.contains(&failure.code.as_str()) {
        "AgentNotFound".to_owned()
    } else {
        failure.code
    };
    let body = json!({
        "code": failure.status.as_u16(),
        "message": failure.message,
        "error_code": error_code,
        "request_id": request_id(),
    });
    with_retry_after((failure.status, axum::Json(body)).into_response(), failure.retry_after_secs)
}

/// The header Alibaba's OpenAPI SDKs back off by (Darabonba's throttling retry), in milliseconds.
const ACS_RETRY_AFTER: &str = "x-acs-retry-after";

/// The OpenAPI's envelope: `{RequestId, HostId, Code, Message}` with Alibaba's status.
pub(crate) fn openapi_response(failure: Failure) -> Response {
    let body = json!({
        "RequestId": request_id(),
        "HostId": HOST_ID,
        "Code": failure.code,
        "Message": failure.message,
    });
    let mut response = with_retry_after((failure.status, axum::Json(body)).into_response(), failure.retry_after_secs);
    if let Some(secs) = failure.retry_after_secs {
        response.headers_mut().insert(ACS_RETRY_AFTER, HeaderValue::from(secs.saturating_mul(1000)));
    }
    response
}
