//! The one error envelope of the native API:
//! `{"error": {"code": "invalid_field", "message": "…", "field": "llm.params.temperature"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use colloquy_supervisor::SupervisorError;
use serde::Serialize;
use utoipa::ToSchema;

/// Stable, machine-readable error codes. Callers branch on these, never on messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: missing or wrong credentials.
    Unauthorized,
    /// 403: these credentials may not do this (an app's on a route of the whole server).
    Forbidden,
    /// 429: too many requests per second for this credential.
    RateLimited,
    /// 422: a quota is used up (the node's maximum of concurrent agents).
    QuotaExceeded,
    /// 400: the body is not JSON, or not the JSON shape expected.
    InvalidJson,
    /// 400: a required field is absent.
    MissingField,
    /// 400: a field this API does not have.
    UnknownField,
    /// 400: a field has a value out of its range or of the wrong type.
    InvalidField,
    /// 404: no such agent or route.
    NotFound,
    /// 405: the route exists, but not with this method.
    MethodNotAllowed,
    /// 409: a running agent of this app already has the name.
    NameConflict,
    /// 409: the agent is not running (it stopped or failed).
    AgentNotRunning,
    /// 409: the agent has no media session to carry out the command.
    NoMediaSession,
    /// 413: the body is larger than the API accepts.
    PayloadTooLarge,
    /// 408: the body did not arrive in time.
    RequestTimeout,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 414: the URI (with its query) is longer than the API accepts.
    UriTooLong,
    /// 503: the node is shutting down.
    ShuttingDown,
    /// 503: the agent could not join its channel or load its models; the message says why.
    StartFailed,
    /// 400: the SDP offer was refused.
    InvalidSdp,
    /// 409: the uid is already in the channel.
    UidTaken,
    /// 503: the channel has its maximum of participants.
    ChannelFull,
    /// 503: the node carries its maximum of channels.
    NodeFull,
    /// 503 with `Retry-After`: the node is connecting as many people as it can at once.
    NodeBusy,
    /// 503: this node runs no channel server.
    NoChannelServer,
    /// 421: the agent, or the channel it would join, is on another node of the cluster; the
    /// message names the node and its address.
    OtherNode,
    /// 503 with `Retry-After`: the cluster state (Redis) cannot be reached, or the agent's node
    /// stopped answering; nothing was done.
    ClusterUnavailable,
    /// 503: the records cannot be written (a full disk, an I/O error); nothing was done, or, for
    /// an agent that ended anyway, its end is not recorded yet. The message says why; retry later.
    RecordsUnavailable,
    /// 500: a failure on our side; the message says what, the logs say more.
    Internal,
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// The field at fault, as a path (`llm.params.temperature`, `remote_uids[2]`), for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error answer of the native API. Its response carries a copy as a [`Refused`] extension, so
/// that the edge can put an error raised under a vendor dialect's paths (an unknown path, 405,
/// 413, 414) in that dialect's envelope instead.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// Seconds, for `Retry-After` on 429.
    pub retry_after_secs: Option<u64>,
    /// A 401 that asks for a Bearer token (WHIP's RTC token) rather than Basic credentials: a
    /// browser shows a password prompt on a Basic challenge, even to a script's `fetch`.
    pub bearer_challenge: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), field: None, retry_after_secs: None, bearer_challenge: false }
    }

    /// A 400 about `field`.
    pub fn field(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError { field: Some(field.into()), ..ApiError::new(StatusCode::BAD_REQUEST, code, message) }
    }

    /// A 400 `invalid_field` about `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::field(ErrorCode::InvalidField, field, message)
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, message)
    }

    /// A 503 `cluster_unavailable`, to be retried in a few seconds.
    pub fn cluster_unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after_secs: Some(2),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ClusterUnavailable, message)
        }
    }
}

impl From<SupervisorError> for ApiError {
    fn from(e: SupervisorError) -> ApiError {
        let message = e.to_string();
        match e {
            SupervisorError::NotFound => ApiError::not_found("agent"),
            SupervisorError::NameTaken(_) => {
                ApiError::field(ErrorCode::NameConflict, "name", message).with_status(StatusCode::CONFLICT)
            }
            SupervisorError::AgentLimit { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::QuotaExceeded, message)
            }
            SupervisorError::NotRunning(_) => ApiError::new(StatusCode::CONFLICT, ErrorCode::AgentNotRunning, message),
            SupervisorError::NoMediaSession => ApiError::new(StatusCode::CONFLICT, ErrorCode::NoMediaSession, message),
            SupervisorError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ShuttingDown, message)
            }
            SupervisorError::StartFailed(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::StartFailed, message)
            }
            SupervisorError::NotRecorded(_) => records_unavailable(message),
            SupervisorError::Elsewhere { .. } => {
                ApiError::new(StatusCode::MISDIRECTED_REQUEST, ErrorCode::OtherNode, message)
            }
            SupervisorError::Cluster(_) => ApiError::cluster_unavailable(message),
            SupervisorError::Store(colloquy_store::StoreError::Database(e)) => {
                tracing::error!(error = %e, "records failed");
                records_unavailable(format!("the records could not be written ({e}); nothing was done"))
            }
            SupervisorError::Store(e) => {
                tracing::error!(error = %e, "records failed");
                ApiError::internal("the records could not be read or written")
            }
        }
    }
}

/// A 503 `records_unavailable`, to be retried in a few seconds.
fn records_unavailable(message: String) -> ApiError {
    ApiError {
        retry_after_secs: Some(5),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::RecordsUnavailable, message)
    }
}

impl ApiError {
    fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }
}

/// The [`ApiError`] a response was made from, in its extensions.
#[derive(Clone, Debug)]
pub struct Refused(pub ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let refused = Refused(self.clone());
        let body = ErrorEnvelope { error: ErrorBody { code: self.code, message: self.message, field: self.field } };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge =
                if self.bearer_challenge { "Bearer realm=\"colloquy\"" } else { "Basic realm=\"colloquy\"" };
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response.extensions_mut().insert(refused);
        response
    }
}
