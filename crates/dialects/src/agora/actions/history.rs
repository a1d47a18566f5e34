//! `GET /agents/{agent_id}/history`: the agent's short-term memory, `{role, content}` in order.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use colloquy_http::AppState;
use colloquy_http::brake::Peer;
use colloquy_model::AgentId;

use crate::agora::auth::authorize;
use crate::agora::errors::AgoraResult;
use crate::agora::from_model::{secs, status_name};
use crate::agora::wire;

pub(crate) async fn handle(
    State(state): State<AppState>,
    Path((appid, agent_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
) -> AgoraResult<axum::Json<wire::HistoryResponse>> {
    let caller = authorize(&state, peer, &appid, &headers)?;
    let id = AgentId::from_string(agent_id);
    let record = caller.agent(&state, &id).await?;
    let entries = state.supervisor().history(&caller.app.id, &id).await?;
    Ok(axum::Json(wire::HistoryResponse {
        agent_id: id.to_string(),
        start_ts: secs(record.created_at.0),
        status: status_name(&record),
        contents: entries
            .into_iter()
            .map(|e| wire::HistoryItem { role: e.speaker.as_str(), content: e.content })
            .collect(),
    }))
}
