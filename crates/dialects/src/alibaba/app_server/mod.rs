//! The AICallKit app-server API (the AUI kits' `/api/v1|v2/aiagent/*`): POST JSON with snake_case
//! fields, HTTP Basic with an app's key and secret, answers `{code: 200, …, request_id}` or
//! `{code, message, error_code, request_id}` with the same HTTP status as `code` (403 on an
//! authentication error, as the AUI server).
//!
//! One file per action, named after it; `run` dispatches on the action (its first letter in either
//! case). generateAIAgentCall and startAIAgentInstance share [`start_call`].

mod describe_ai_agent_instance;
mod generate_ai_agent_call;
mod get_rtc_auth_token;
mod start_ai_agent_instance;
mod stop_ai_agent_instance;
mod update_ai_agent_instance;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::errors::{Failure, app_server_response};
use super::to_model::{self, Launch};
use super::wire::{AgentConfig, Body, OriginData, Text};
use super::{VOICE_CHAT, auth, random_id, request_id, token, unix_now};
use colloquy_http::AppState;
use colloquy_http::apps::App;

/// Default lifetime of a client's `rtc_auth_token`, seconds (the AUI server's 24 h).
pub(crate) const DEFAULT_EXPIRE_SECS: i64 = 24 * 3600;
/// The longest lifetime accepted, seconds (7 days).
pub(crate) const MAX_EXPIRE_SECS: i64 = 7 * 24 * 3600;

/// `POST /api/v1/aiagent/{action}` and `POST /api/v2/aiagent/{action}`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/aiagent/{action}", post(handle::<1>))
        .route("/api/v2/aiagent/{action}", post(handle::<2>))
}

/// Which version of the app-server API a request came through. They differ in one unit: `expire`
/// is in hours on v1 (the AUI app-server page, default 24) and in seconds on v2 (what the current
/// AUI clients send, `expire: 86400`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl Version {
    /// `expire` as seconds, whatever unit this version takes it in.
    fn expire_secs(self, expire: Option<i64>) -> Result<Option<i64>, Failure> {
        match (self, expire) {
            (Version::V1, Some(hours)) => {
                let max = MAX_EXPIRE_SECS / 3600;
                if !(1..=max).contains(&hours) {
                    return Err(Failure::invalid(format!(
                        "expire is {hours}; on /api/v1 it is in hours and must be 1 to {max}"
                    )));
                }
                Ok(Some(hours * 3600))
            }
            (_, expire) => Ok(expire),
        }
    }
}

fn ok(mut body: Value) -> Response {
    if let Value::Object(map) = &mut body {
        map.insert("code".to_owned(), json!(200));
        map.insert("request_id".to_owned(), json!(request_id()));
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// One action, on `/api/v{VERSION}/aiagent/`.
async fn handle<const VERSION: u8>(
    State(state): State<AppState>,
    Path(action): Path<String>,
    peer: colloquy_http::brake::Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let version = if VERSION == 1 { Version::V1 } else { Version::V2 };
    answer(run(&state, peer, version, &action, &headers, &body).await)
}

fn answer(result: Result<Value, Failure>) -> Response {
    match result {
        Ok(body) => ok(body),
        Err(failure) => app_server_response(failure),
    }
}

async fn run(
    state: &AppState,
    peer: colloquy_http::brake::Peer,
    version: Version,
    action: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, Failure> {
    let app = auth::app_server_caller(state, peer, headers).await?;
    let mut body: Body = if body.iter().all(u8::is_ascii_whitespace) {
        Body::default()
    } else {
        let mut de = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut de)
            .map_err(|e| Failure::invalid(format!("the body is not the JSON expected: {}: {}", e.path(), e.inner())))?
    };
    body.expire = version.expire_secs(body.expire)?;
    if let Some(region) = &body.region {
        tracing::debug!(region, "region is not used: this server is the region");
    }
    let mut chars = action.chars();
    let normalized = match chars.next() {
        Some(first) => format!("{}{}", first.to_ascii_lowercase(), chars.as_str()),
        None => String::new(),
    };
    match normalized.as_str() {
        "generateAIAgentCall" => generate_ai_agent_call::handle(state, app, body).await,
        "startAIAgentInstance" => start_ai_agent_instance::handle(state, app, body).await,
        "stopAIAgentInstance" => stop_ai_agent_instance::handle(state, app, body).await,
        "updateAIAgentInstance" => update_ai_agent_instance::handle(state, app, body).await,
        "describeAIAgentInstance" => describe_ai_agent_instance::handle(state, app, body).await,
        "getRtcAuthToken" => get_rtc_auth_token::handle(app, body),
        _ => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "ActionNotFound",
            format!(
                "no action {action:?}; this server has generateAIAgentCall, startAIAgentInstance, stopAIAgentInstance, \
                 updateAIAgentInstance, describeAIAgentInstance and getRtcAuthToken"
            ),
        )),
    }
}

pub(super) fn required<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, Failure> {
    value.filter(|v| !v.trim().is_empty()).ok_or_else(|| Failure::missing(name))
}

pub(super) fn expire(expire: Option<i64>) -> Result<u64, Failure> {
    let secs = expire.unwrap_or(DEFAULT_EXPIRE_SECS);
    if !(1..=MAX_EXPIRE_SECS).contains(&secs) {
        return Err(Failure::invalid(format!("expire is {secs}; it must be 1 to {MAX_EXPIRE_SECS} seconds")));
    }
    Ok(secs.unsigned_abs())
}

/// Checks `workflow_type`: only `VoiceChat` runs here.
fn workflow(field: &str, value: Option<&str>) -> Result<String, Failure> {
    match value.filter(|v| !v.is_empty()).unwrap_or(VOICE_CHAT) {
        VOICE_CHAT => Ok(VOICE_CHAT.to_owned()),
        other @ ("AvatarChat3D" | "VisionChat" | "AvatarChat2D" | "VideoChat") => Err(Failure::invalid(format!(
            "{field} {other} is not supported: this server runs voice agents only (VoiceChat)"
        ))),
        other => Err(Failure::invalid(format!("{field} is {other:?}; it must be VoiceChat"))),
    }
}

/// `agent_config` and `template_config` as they were sent (JSON strings), and read into one config.
pub(super) fn configs(
    agent_config: Option<Text>,
    template_config: Option<Text>,
) -> Result<(Option<String>, Option<String>, AgentConfig), Failure> {
    let agent_config = agent_config.map(Text::into_string);
    let template_config = template_config.map(Text::into_string);
    let config =
        to_model::read_configs("agent_config", agent_config.as_deref(), "template_config", template_config.as_deref())?;
    Ok((agent_config, template_config, config))
}

/// generateAIAgentCall (`channel` None: a new channel) and startAIAgentInstance: a call for
/// `user_id`, answered with the instance and the user's `rtc_auth_token`.
pub(super) async fn start_call(
    state: &AppState,
    app: &App,
    body: Body,
    channel: Option<String>,
) -> Result<Value, Failure> {
    let workflow_type = workflow("workflow_type", body.workflow_type.as_deref())?;
    let user = to_model::uid_param("user_id", required(body.user_id.as_deref(), "user_id")?)?;
    let expires_at = unix_now() + expire(body.expire)?;
    let channel = to_model::channel_param("channel_id", &channel.unwrap_or_else(random_id))?;
    let agent_uid = to_model::uid_param("ai_agent_user_id", &random_id())?;
    let (agent_config, template_config, mut config) = configs(body.agent_config, body.template_config)?;
    if body.chat_sync_config.is_some() {
        config.noticed.ignored("chat_sync_config", "IM chat sync is not supported");
    }
    let ai_agent_id = body.ai_agent_id.unwrap_or_default();
    let origin = OriginData {
        ai_agent_id: ai_agent_id.clone(),
        channel_id: channel.to_string(),
        agent_user_id: agent_uid.to_string(),
        user_id: Some(user.to_string()),
        session_id: body.session_id,
        user_data: body.user_data.map(Text::into_string),
        workflow_type: workflow_type.clone(),
        agent_config,
        template_config,
    };
    let launch = Launch {
        channel: channel.clone(),
        agent_uid: agent_uid.clone(),
        user: Some(user.clone()),
        config,
        config_field: "agent_config",
        origin,
    };
    let record = to_model::launch(state, app, launch).await?;
    Ok(json!({
        "rtc_auth_token": token::rtc_auth_token(app, channel.as_str(), user.as_str(), expires_at),
        "ai_agent_id": ai_agent_id,
        "ai_agent_instance_id": record.id.as_str(),
        "ai_agent_user_id": agent_uid.as_str(),
        "channel_id": channel.as_str(),
        "workflow_type": workflow_type,
    }))
}
