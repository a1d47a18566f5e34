//! ZEGOCLOUD AI Agent server API: `POST /?Action=<Action>&AppId=…&SignatureNonce=…&Timestamp=…
//! &SignatureVersion=2.0&Signature=…` with a JSON body, answered with `{Code, Message, RequestId,
//! Data}` and HTTP 200. See `docs/dialects/zego.md` for the actions, fields and choices.
//!
//! The parts, as in every dialect: `routes` (the routes and the dispatch), `auth` (the
//! common parameters, the signature and the nonce), [`errors`] (the return codes and the
//! envelope), [`wire`] (ZEGO's shapes), `fields` (reading ZEGO's fields and ids),
//! [`to_model`] and [`from_model`] (the translation each way), and `actions`, one file per
//! action. [`signature`], [`instances`] (the per-app instance limit) and [`webhooks`] are ZEGO's
//! own.

mod actions;
mod auth;
pub mod errors;
mod fields;
pub mod from_model;
pub mod instances;
mod routes;
pub mod signature;
pub mod to_model;
pub mod webhooks;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use colloquy_http::AppState;
use colloquy_model::AgentEvent;
use colloquy_store::{OutgoingWebhook, Store};

use crate::RawRequest;

/// ZEGO's default: at most 10 agent instances per account at once.
pub const MAX_INSTANCES: usize = 10;
/// How far a request's `Timestamp` may be from our clock.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 600;
/// ZEGO's default room idle time before an instance is deleted (callback code 1202).
pub const DEFAULT_MAX_IDLE_SECS: u32 = 120;
/// `MessageHistory.WindowSize`: default and range.
pub const DEFAULT_WINDOW_SIZE: u32 = 20;
pub const MAX_WINDOW_SIZE: u32 = 100;
/// The most `MessageHistory.Messages`.
pub const MAX_HISTORY_MESSAGES: usize = 100;
/// The most templates `ListAgents` answers at once, and its default.
pub const MAX_LIST_LIMIT: u32 = 10;
pub const DEFAULT_LIST_LIMIT: u32 = 5;

/// ZEGO's dialect, with what it keeps between requests: the instance limit under racing creates,
/// and each instance's callback `Sequence`.
#[derive(Debug, Default)]
pub struct Zego {
    instances: instances::InstanceGate,
    sequences: webhooks::Sequences,
}

/// Whether `path` is one of ZEGO's own (`POST /` is shared with Alibaba's OpenAPI; see the crate).
pub fn serves(path: &str) -> bool {
    path == "/zego" || path.starts_with("/zego/")
}

/// An edge error in ZEGO's envelope (HTTP 200, `Code` saying what went wrong).
pub fn edge_error(error: colloquy_http::error::ApiError) -> axum::response::Response {
    errors::envelope(Err(errors::ZegoError::edge(error)))
}

impl Zego {
    /// `POST /zego?Action=…` and `POST /zego/?Action=…` (`POST /?Action=…` is shared with
    /// Alibaba's OpenAPI, and routed by the crate).
    pub fn routes(self: &Arc<Zego>) -> Router<AppState> {
        routes::router(Arc::clone(self))
    }

    /// The entry point for every action.
    pub async fn action(&self, state: AppState, request: RawRequest) -> Response {
        routes::action(self, &state, &request).await
    }

    /// Keeps the callback sequences in `cluster`'s state.
    pub fn share_sequences(&self, cluster: colloquy_cluster::Cluster) {
        self.sequences.share(cluster);
    }

    /// The callbacks of `event`.
    pub async fn webhooks(&self, event: &AgentEvent, store: &Store) -> Vec<OutgoingWebhook> {
        webhooks::format(event, store, &self.sequences).await
    }
}
