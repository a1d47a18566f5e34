//! `POST /agents/{agent_id}/think`: put a text to the LLM as if the user had said it.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use colloquy_http::AppState;
use colloquy_http::brake::Peer;
use colloquy_http::extract::RawBody;

use super::{command, parse};
use crate::agora::auth::authorize;
use crate::agora::errors::AgoraResult;
use crate::agora::{to_model, wire};

pub(crate) async fn handle(
    State(state): State<AppState>,
    Path((appid, agent_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> AgoraResult<axum::Json<wire::CommandResponse>> {
    let caller = authorize(&state, peer, &appid, &headers)?;
    let command_ = to_model::think_from_request(parse(&body)?)?;
    Ok(axum::Json(command(&state, &caller, agent_id, command_).await?))
}
