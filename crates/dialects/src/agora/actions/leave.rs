//! `POST /agents/{agent_id}/leave`: stop an agent, answered `{}`; 404 for one that already
//! exited, as at Agora.

use crate::agora::auth::AgentCall;
use crate::agora::errors::{AgoraError, AgoraResult};

pub(crate) async fn handle(AgentCall { state, caller, id }: AgentCall) -> AgoraResult<axum::Json<serde_json::Value>> {
    let current = caller.agent(&state, &id).await?;
    // Agora answers 404 for an agent that already exited.
    if current.state.status().is_terminal() {
        return Err(AgoraError::not_found());
    }
    state.supervisor().leave(&caller.app.id, &id).await?;
    // Agora's quickstart parses the answer as JSON.
    Ok(axum::Json(serde_json::json!({})))
}
