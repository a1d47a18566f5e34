//! One file per REST action, as mini-redis keeps one file per command. Each has one `handle`, the
//! axum handler `routes.rs` mounts; the readers and the command path they share are here.

pub(crate) mod history;
pub(crate) mod interrupt;
pub(crate) mod join;
pub(crate) mod leave;
pub(crate) mod list;
pub(crate) mod query;
pub(crate) mod speak;
pub(crate) mod think;
pub(crate) mod turns;
pub(crate) mod update;

use axum::body::Bytes;
use colloquy_http::AppState;
use colloquy_model::{AgentCommand, AgentId};

use super::auth::Caller;
use super::errors::{AgoraError, AgoraResult};
use super::{now_secs, wire};

/// A JSON body (an empty one is refused).
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> AgoraResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AgoraError::bad_body("the request body is empty"));
    }
    Ok(colloquy_http::extract::parse_json(body)?)
}

pub(crate) fn parse_query<T: serde::de::DeserializeOwned + Default>(query: Option<&str>) -> AgoraResult<T> {
    let Some(query) = query.filter(|q| !q.is_empty()) else { return Ok(T::default()) };
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        AgoraError::invalid(format!("{field}: {}", e.into_inner()))
    })
}

/// `speak`, `interrupt` and `think`: the command to an agent the caller reaches, answered with the
/// agent, its channel and when the command was taken.
pub(crate) async fn command(
    state: &AppState,
    caller: &Caller,
    id: AgentId,
    command: AgentCommand,
) -> AgoraResult<wire::CommandResponse> {
    let record = caller.agent(state, &id).await?;
    state.supervisor().command(&caller.app.id, &id, command).await?;
    Ok(wire::CommandResponse {
        agent_id: id.to_string(),
        channel: record.spec.channel.to_string(),
        start_ts: now_secs(),
    })
}
