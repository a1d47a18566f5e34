//! `DeleteAgentInstance`: the instance with the body's `AgentInstanceId` leaves its room and
//! ends; answers `{}`, or 410001010 when there is no live instance with that id.

use colloquy_http::AppState;
use colloquy_model::AppId;
use serde_json::{Value, json};

use super::live_record;
use crate::zego::errors::ZegoResult;
use crate::zego::fields::instance_id;
use crate::zego::wire;

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::InstanceOnly) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    live_record(state, app, &id).await?;
    state.supervisor().leave(app, &id).await?;
    Ok(json!({}))
}
