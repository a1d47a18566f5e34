//! Alibaba Cloud AICallKit and IMS/ICE: the AICallKit app-server API (`POST /api/v1|v2/aiagent/{action}`,
//! HTTP Basic, snake_case JSON), the IMS/ICE OpenAPI (`POST /` with `Action` and `Version=2020-11-09`,
//! signed with the V3 or the RPC signature), ARTC `rtc_auth_token`s, and the agent callbacks.
//! `docs/dialects/alibaba.md` lists what is supported and the choices made.
//!
//! An instance id (`InstanceId`, `ai_agent_instance_id`) is the native agent id. What the vendor
//! API must echo later (`AIAgentId`, the ids in the channel, `SessionId`, `UserData`, the configs as
//! sent) is kept as [`wire::OriginData`] in the spec's origin.
//!
//! Both APIs have one file per action (`app_server/`, `openapi/`); they share the request shapes
//! (`wire.rs`), their reading into the model (`to_model.rs`) and back (`from_model.rs`), the
//! failures and their two envelopes (`errors.rs`) and the authentication (`auth.rs`).

mod app_server;
mod auth;
mod errors;
mod from_model;
pub mod openapi;
pub mod signature;
mod to_model;
pub mod token;
mod webhooks;
mod wire;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use colloquy_model::{AgentId, AgentRecord, SpecUpdate};
use colloquy_supervisor::SupervisorError;

use colloquy_http::AppState;
use colloquy_http::apps::App;
use errors::Failure;

/// Alibaba's dialect, with what it keeps between events: which instances had their
/// `session_start` callback.
#[derive(Debug, Default)]
pub struct Alibaba {
    session_starts: webhooks::SessionStarts,
}

/// Whether `path` is under the app server's paths.
pub fn serves_app_server(path: &str) -> bool {
    path.starts_with("/api/v1/aiagent/") || path.starts_with("/api/v2/aiagent/")
}

/// An edge error in the app server's envelope.
pub fn app_server_edge_error(error: colloquy_http::error::ApiError) -> axum::response::Response {
    errors::app_server_response(errors::Failure::edge(error))
}

/// An edge error in the OpenAPI's envelope.
pub fn openapi_edge_error(error: colloquy_http::error::ApiError) -> axum::response::Response {
    errors::openapi_response(errors::Failure::edge(error))
}

impl Alibaba {
    /// The app-server routes (the OpenAPI is reached through `POST /`, which the crate routes by
    /// [`openapi::is_openapi_request`]).
    pub fn routes(&self) -> Router<AppState> {
        app_server::routes()
    }

    /// An OpenAPI action.
    pub async fn action(&self, state: AppState, request: crate::RawRequest) -> axum::response::Response {
        openapi::action(state, request).await
    }

    /// The callbacks of `event`.
    pub fn webhooks(&self, event: &colloquy_model::AgentEvent) -> Vec<colloquy_store::OutgoingWebhook> {
        webhooks::format(event, &self.session_starts)
    }
}

/// The only `workflow_type` this server runs.
pub const VOICE_CHAT: &str = "VoiceChat";

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// 32 random lower-case hex digits: a UUID without dashes, as AICallKit's ids are.
pub(crate) fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A request id in Alibaba's upper-case UUID form.
pub(crate) fn request_id() -> String {
    let hex = hex::encode_upper(rand::random::<[u8; 16]>());
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// The app's instance `id`.
pub(crate) async fn instance(state: &AppState, app: &App, id: &str) -> Result<AgentRecord, Failure> {
    state.supervisor().get(&app.id, &AgentId::from_string(id.to_owned())).await.map_err(|e| match e {
        SupervisorError::NotFound => Failure::instance_not_found(id),
        other => other.into(),
    })
}

/// Every agent of `app`, newest first (bounded).
pub(crate) async fn all_instances(state: &AppState, app: &App) -> Result<Vec<AgentRecord>, Failure> {
    const PAGE: u32 = 100;
    const MAX: usize = 10_000;
    let filter = colloquy_store::AgentFilter::default();
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = state.supervisor().list(&app.id, &filter, after, PAGE).await?;
        out.extend(page.agents);
        match page.next {
            Some(next) if out.len() < MAX => after = Some(next),
            _ => return Ok(out),
        }
    }
}

/// Applies an update to a running instance; an empty update only checks that it runs.
pub(crate) async fn apply_update(
    state: &AppState,
    app: &App,
    record: &AgentRecord,
    update: SpecUpdate,
) -> Result<(), Failure> {
    if update.is_empty() {
        if record.state.status().is_terminal() {
            return Err(SupervisorError::NotRunning(record.state.status()).into());
        }
        return Ok(());
    }
    state.supervisor().update(&app.id, &record.id, update).await?;
    Ok(())
}
