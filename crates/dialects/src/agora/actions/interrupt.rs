//! `POST /agents/{agent_id}/interrupt`: stop what the agent is saying (the body, if any, must be a
//! JSON object).

use colloquy_http::extract::RawBody;
use colloquy_model::AgentCommand;
use serde_json::Value;

use super::command;
use crate::agora::auth::AgentCall;
use crate::agora::errors::{AgoraError, AgoraResult};
use crate::agora::wire;

pub(crate) async fn handle(
    AgentCall { state, caller, id }: AgentCall,
    RawBody(body): RawBody,
) -> AgoraResult<axum::Json<wire::CommandResponse>> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let _: serde_json::Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| AgoraError::bad_body(format!("the body must be a JSON object: {e}")))?;
    }
    Ok(axum::Json(command(&state, &caller, id, AgentCommand::Interrupt).await?))
}
