//! Agora Conversational AI Engine v2. (Being written.)

pub mod webhooks;

use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
