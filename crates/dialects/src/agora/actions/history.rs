//! `GET /agents/{agent_id}/history`: the agent's short-term memory, `{role, content}` in order.

use crate::agora::auth::AgentCall;
use crate::agora::errors::AgoraResult;
use crate::agora::from_model::{secs, status_name};
use crate::agora::wire;

pub(crate) async fn handle(
    AgentCall { state, caller, id }: AgentCall,
) -> AgoraResult<axum::Json<wire::HistoryResponse>> {
    let record = caller.agent(&state, &id).await?;
    let entries = state.supervisor().history(&caller.app.id, &id).await?;
    Ok(axum::Json(wire::HistoryResponse {
        agent_id: id.to_string(),
        start_ts: secs(record.created_at.0),
        status: status_name(&record),
        contents: entries
            .into_iter()
            // Agora's history has user and assistant lines only: tool calls have no place.
            .filter(|e| e.speaker != colloquy_model::Speaker::Tool)
            .map(|e| wire::HistoryItem { role: e.speaker.as_str(), content: e.content })
            .collect(),
    }))
}
