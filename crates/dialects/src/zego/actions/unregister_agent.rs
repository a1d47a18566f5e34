//! `UnregisterAgent`: deletes the template with the body's `AgentId` (its live instances go on);
//! answers `{}`, or 410001009 when no agent has the `AgentId`.

use colloquy_http::AppState;
use colloquy_model::AppId;
use serde_json::{Value, json};

use super::{TEMPLATES, agent_not_found};
use crate::zego::errors::ZegoResult;
use crate::zego::fields::agent_id;
use crate::zego::wire;

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::AgentIdOnly) -> ZegoResult<Value> {
    let id = agent_id(body.agent_id)?;
    if !state.supervisor().store().delete_template(app, TEMPLATES, &id).await? {
        return Err(agent_not_found(&id));
    }
    Ok(json!({}))
}
