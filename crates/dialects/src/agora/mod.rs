//! Agora Conversational AI Engine, REST v2, under `/api/conversational-ai-agent/v2/projects/{appid}`.
//!
//! Auth: `{appid}` must be a configured app; then `Authorization: Basic base64(key:secret)` with
//! that app's key and secret (every agent of the app), or `Authorization: agora token=<AccessToken2>`
//! signed with the app's secret as its app certificate, which reaches only the agents of the
//! token's RTC channel and uid (`auth.rs`). Errors answer `{"detail", "reason"}` with Agora's status codes
//! and reasons. See `docs/dialects/agora.md`.

mod actions;
pub mod auth;
pub mod errors;
pub mod from_model;
mod routes;
pub mod to_model;
pub mod token;
pub mod webhooks;
pub mod wire;

use axum::Router;
use colloquy_http::AppState;
use colloquy_model::AgentEvent;
use colloquy_store::{OutgoingWebhook, Store};

pub use errors::AgoraError;

/// The path every route of this dialect starts with.
pub const BASE: &str = "/api/conversational-ai-agent/v2/projects/{appid}";

/// Agora's dialect. It keeps nothing between requests: its tokens and signatures say all.
#[derive(Clone, Copy, Debug, Default)]
pub struct Agora;

impl Agora {
    /// This dialect's routes.
    pub fn routes(&self) -> Router<AppState> {
        routes::routes()
    }

    /// The notifications of `event`; an ended agent's carry its history and turns from `store`.
    pub async fn webhooks(&self, event: &AgentEvent, store: &Store) -> Vec<OutgoingWebhook> {
        webhooks::format(event, store).await
    }
}

/// Whether `path` is under Agora's paths.
pub fn serves(path: &str) -> bool {
    routes::serves(path)
}

/// Now, in Agora's seconds.
pub(crate) fn now_secs() -> i64 {
    colloquy_supervisor::now().0 / 1000
}
