//! `POST /agents/{agent_id}/speak`: say a text now, with Agora's priorities (`INTERRUPT`,
//! `APPEND`, `IGNORE`) and `interruptable`.

use colloquy_http::extract::RawBody;

use super::{command, parse};
use crate::agora::auth::AgentCall;
use crate::agora::errors::AgoraResult;
use crate::agora::{to_model, wire};

pub(crate) async fn handle(
    AgentCall { state, caller, id }: AgentCall,
    RawBody(body): RawBody,
) -> AgoraResult<axum::Json<wire::CommandResponse>> {
    let command_ = to_model::speak_from_request(parse(&body)?)?;
    Ok(axum::Json(command(&state, &caller, id, command_).await?))
}
