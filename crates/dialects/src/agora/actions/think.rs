//! `POST /agents/{agent_id}/think`: put a text to the LLM as if the user had said it.

use colloquy_http::extract::RawBody;

use super::{command, parse};
use crate::agora::auth::AgentCall;
use crate::agora::errors::AgoraResult;
use crate::agora::{to_model, wire};

pub(crate) async fn handle(
    AgentCall { state, caller, id }: AgentCall,
    RawBody(body): RawBody,
) -> AgoraResult<axum::Json<wire::CommandResponse>> {
    let command_ = to_model::think_from_request(parse(&body)?)?;
    Ok(axum::Json(command(&state, &caller, id, command_).await?))
}
