//! `POST /agents/{agent_id}/leave`: stop an agent, answered `{}`; 404 for one that already
//! exited, as at Agora.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use colloquy_http::AppState;
use colloquy_http::brake::Peer;
use colloquy_model::AgentId;

use crate::agora::auth::authorize;
use crate::agora::errors::{AgoraError, AgoraResult};

pub(crate) async fn handle(
    State(state): State<AppState>,
    Path((appid, agent_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
) -> AgoraResult<axum::Json<serde_json::Value>> {
    let caller = authorize(&state, peer, &appid, &headers)?;
    let id = AgentId::from_string(agent_id);
    let current = caller.agent(&state, &id).await?;
    // Agora answers 404 for an agent that already exited.
    if current.state.status().is_terminal() {
        return Err(AgoraError::not_found());
    }
    state.supervisor().leave(&caller.app.id, &id).await?;
    // Agora's quickstart parses the answer as JSON.
    Ok(axum::Json(serde_json::json!({})))
}
