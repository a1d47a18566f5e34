//! ZEGOCLOUD AI Agent. (Being written.)

pub mod webhooks;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::RawRequest;
use crate::AppState;

pub async fn action(_state: AppState, _request: RawRequest) -> Response {
    StatusCode::NOT_IMPLEMENTED.into_response()
}
