//! `GET /agents/{agent_id}`: an agent's state, times and, once it ended, why.

use colloquy_model::AgentStatus;

use crate::agora::auth::AgentCall;
use crate::agora::errors::AgoraResult;
use crate::agora::from_model::{exit_reason, secs, status_name};
use crate::agora::wire;

pub(crate) async fn handle(AgentCall { state, caller, id }: AgentCall) -> AgoraResult<axum::Json<wire::QueryResponse>> {
    let record = caller.agent(&state, &id).await?;
    let message = match record.state.reason() {
        Some(reason) if record.state.status() == AgentStatus::Failed => {
            format!("agent exits with reason: {}", exit_reason(reason))
        }
        Some(reason) => exit_reason(reason),
        None => String::new(),
    };
    Ok(axum::Json(wire::QueryResponse {
        message,
        start_ts: secs(record.created_at.0),
        stop_ts: record.stopped_at.map(|t| secs(t.0)),
        name: record.spec.name.to_string(),
        status: status_name(&record),
        agent_id: record.id.to_string(),
    }))
}
