//! Alibaba Cloud AICallKit app server and IMS/ICE OpenAPI. (Being written.)

pub mod openapi;
pub mod webhooks;

use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
