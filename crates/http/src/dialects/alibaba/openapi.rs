//! Alibaba IMS/ICE OpenAPI actions. (Being written.)

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::dialects::RawRequest;

pub fn is_openapi_request(_request: &RawRequest) -> bool {
    false
}

pub async fn action(_state: AppState, _request: RawRequest) -> Response {
    StatusCode::NOT_IMPLEMENTED.into_response()
}
