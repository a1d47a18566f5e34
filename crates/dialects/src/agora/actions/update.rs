//! `POST /agents/{agent_id}/update`: a new token, LLM system messages or params for a running
//! agent; answers the agent info.

use colloquy_http::extract::RawBody;

use super::parse;
use crate::agora::auth::AgentCall;
use crate::agora::errors::{AgoraError, AgoraResult};
use crate::agora::from_model::agent_info;
use crate::agora::{to_model, wire};

pub(crate) async fn handle(
    AgentCall { state, caller, id }: AgentCall,
    RawBody(body): RawBody,
) -> AgoraResult<axum::Json<wire::AgentInfo>> {
    let request: wire::UpdateRequest = parse(&body)?;
    let update = to_model::update_from_request(request)?;
    let record = caller.agent(&state, &id).await?;
    let record = if update.is_empty() {
        // Only a new token: the in-process agent needs none; check that it still runs.
        if record.state.status().is_terminal() {
            return Err(AgoraError::not_found());
        }
        record
    } else {
        state.supervisor().update(&caller.app.id, &id, update).await?
    };
    Ok(axum::Json(agent_info(&record)))
}
