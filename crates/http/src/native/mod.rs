//! The native API under `/v1`: HTTP Basic auth, one error envelope, the routes below.

pub mod to_model;
pub mod webhooks;
pub mod wire;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use colloquy_model::{AgentCommand, AgentId, AgentStatus, ChannelName};
use colloquy_store::AgentFilter;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extract::{OptionalJson, ValidJson, ValidQuery};
use crate::fields::{decode_cursor, encode_cursor};

/// The routes of `/v1`, without auth (the caller layers it on).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agents", post(start_agent).get(list_agents))
        .route("/v1/agents/{id}", get(get_agent))
        .route("/v1/agents/{id}/leave", post(leave_agent))
        .route("/v1/agents/{id}/update", post(update_agent))
        .route("/v1/agents/{id}/speak", post(speak))
        .route("/v1/agents/{id}/interrupt", post(interrupt))
        .route("/v1/agents/{id}/think", post(think))
        .route("/v1/agents/{id}/history", get(history))
        .route("/v1/agents/{id}/turns", get(turns))
}

type ApiResult<T> = Result<Json<T>, ApiError>;

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;
/// Start an agent in a channel.
#[utoipa::path(
    post, path = "/v1/agents", tag = "agents",
    request_body = wire::AgentConfig,
    responses(
        (status = 200, description = "The agent is RUNNING", body = wire::Agent),
        (status = 400, description = "A field is missing, unknown or out of range; `field` names it", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 409, description = "A running agent of this app has the name", body = ErrorEnvelope),
        (status = 422, description = "The node runs its maximum of agents", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ),
    security(("basic" = []))
)]
pub async fn start_agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidJson(config): ValidJson<wire::AgentConfig>,
) -> ApiResult<wire::Agent> {
    let spec = to_model::spec_from_wire(config, state.vendor_scope(state.apps().by_id(caller.app.as_str())))?;
    crate::fields::local_llm_of("llm.model", &spec, state.local_models())?;
    let record = state.inner.supervisor.start(caller.app, spec).await?;
    Ok(Json(to_model::agent_to_wire(&record, true)))
}

/// List agents, newest first.
#[utoipa::path(
    get, path = "/v1/agents", tag = "agents",
    params(wire::ListQuery),
    responses((status = 200, body = wire::AgentList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)),
    security(("basic" = []))
)]
pub async fn list_agents(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidQuery(query): ValidQuery<wire::ListQuery>,
) -> ApiResult<wire::AgentList> {
    let mut filter = AgentFilter::default();
    if let Some(channel) = query.channel {
        filter.channel = Some(ChannelName::new(channel).map_err(|e| ApiError::invalid("channel", e.0))?);
    }
    if let Some(statuses) = query.status {
        for name in statuses.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            filter.statuses.push(name.parse::<AgentStatus>().map_err(|e| ApiError::invalid("status", e.to_string()))?);
        }
    }
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("limit is {limit}; it must be between 1 and {MAX_PAGE}")));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let page = state.inner.supervisor.list(&caller.app, &filter, after, limit).await?;
    Ok(Json(wire::AgentList {
        agents: page.agents.iter().map(|record| to_model::agent_to_wire(record, false)).collect(),
        next_cursor: page.next.map(encode_cursor),
    }))
}

/// An agent with its status, reason and configuration.
#[utoipa::path(
    get, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "The agent_id")),
    responses((status = 200, body = wire::Agent), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("basic" = []))
)]
pub async fn get_agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<wire::Agent> {
    let record = state.inner.supervisor.get(&caller.app, &AgentId::from_string(id)).await?;
    Ok(Json(to_model::agent_to_wire(&record, true)))
}

/// Make the agent leave its channel. Answers once it is STOPPED; leaving an agent that is already
/// over answers its record unchanged.
#[utoipa::path(
    post, path = "/v1/agents/{id}/leave", tag = "agents",
    params(("id" = String, Path, description = "The agent_id")),
    responses((status = 200, body = wire::Agent), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("basic" = []))
)]
pub async fn leave_agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<wire::Agent> {
    let record = state.inner.supervisor.leave(&caller.app, &AgentId::from_string(id)).await?;
    Ok(Json(to_model::agent_to_wire(&record, true)))
}

/// Change a running agent's prompt, LLM parameters or voice.
#[utoipa::path(
    post, path = "/v1/agents/{id}/update", tag = "agents",
    params(("id" = String, Path, description = "The agent_id")),
    request_body = wire::UpdateRequest,
    responses(
        (status = 200, body = wire::Agent),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The agent is not running", body = ErrorEnvelope),
    ),
    security(("basic" = []))
)]
pub async fn update_agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ValidJson(request): ValidJson<wire::UpdateRequest>,
) -> ApiResult<wire::Agent> {
    let id = AgentId::from_string(id);
    let current = state.inner.supervisor.get(&caller.app, &id).await?;
    let update = to_model::update_from_wire(request, &current.spec)?;
    let record = state.inner.supervisor.update(&caller.app, &id, update).await?;
    Ok(Json(to_model::agent_to_wire(&record, true)))
}

/// Make the agent say a text.
#[utoipa::path(
    post, path = "/v1/agents/{id}/speak", tag = "conversation",
    params(("id" = String, Path, description = "The agent_id")),
    request_body = wire::SpeakRequest,
    responses(
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The agent is not running, or has no media session", body = ErrorEnvelope),
    ),
    security(("basic" = []))
)]
pub async fn speak(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ValidJson(request): ValidJson<wire::SpeakRequest>,
) -> Result<StatusCode, ApiError> {
    let command = to_model::speak_from_wire(request)?;
    state.inner.supervisor.command(&caller.app, &AgentId::from_string(id), command).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop what the agent is saying.
#[utoipa::path(
    post, path = "/v1/agents/{id}/interrupt", tag = "conversation",
    params(("id" = String, Path, description = "The agent_id")),
    request_body(content = wire::InterruptRequest, description = "Empty, or `{}`"),
    responses(
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The agent is not running, or has no media session", body = ErrorEnvelope),
    ),
    security(("basic" = []))
)]
pub async fn interrupt(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    OptionalJson(_request): OptionalJson<wire::InterruptRequest>,
) -> Result<StatusCode, ApiError> {
    state.inner.supervisor.command(&caller.app, &AgentId::from_string(id), AgentCommand::Interrupt).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Inject a text as a user turn.
#[utoipa::path(
    post, path = "/v1/agents/{id}/think", tag = "conversation",
    params(("id" = String, Path, description = "The agent_id")),
    request_body = wire::ThinkRequest,
    responses(
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The agent is not running, or has no media session", body = ErrorEnvelope),
    ),
    security(("basic" = []))
)]
pub async fn think(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ValidJson(request): ValidJson<wire::ThinkRequest>,
) -> Result<StatusCode, ApiError> {
    let command = AgentCommand::think(crate::fields::command_text(request.text)?);
    state.inner.supervisor.command(&caller.app, &AgentId::from_string(id), command).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The conversation so far: what the user said and what they heard of the agent.
#[utoipa::path(
    get, path = "/v1/agents/{id}/history", tag = "conversation",
    params(("id" = String, Path, description = "The agent_id")),
    responses((status = 200, body = wire::History), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("basic" = []))
)]
pub async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<wire::History> {
    let id = AgentId::from_string(id);
    let entries = state.inner.supervisor.history(&caller.app, &id).await?;
    Ok(Json(to_model::history_to_wire(&id, entries)))
}

/// Each turn with its latency breakdown.
#[utoipa::path(
    get, path = "/v1/agents/{id}/turns", tag = "conversation",
    params(("id" = String, Path, description = "The agent_id")),
    responses((status = 200, body = wire::Turns), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("basic" = []))
)]
pub async fn turns(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<wire::Turns> {
    let id = AgentId::from_string(id);
    let turns = state.inner.supervisor.turns(&caller.app, &id).await?;
    Ok(Json(to_model::turns_to_wire(&id, turns)))
}

/// Answers for `/v1` paths that match no route.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route; see /openapi.json")
}
