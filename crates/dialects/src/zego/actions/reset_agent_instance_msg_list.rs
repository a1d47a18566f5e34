//! `ResetAgentInstanceMsgList`: clears the instance's conversation history, and keeps the time,
//! from which `GetAgentInstanceMsgList` lists; answers `{}`.

use colloquy_http::AppState;
use colloquy_model::{AgentCommand, AppId};
use serde_json::{Value, json};

use super::{RESETS, live_record};
use crate::zego::errors::ZegoResult;
use crate::zego::fields::instance_id;
use crate::zego::wire;

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::InstanceOnly) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    live_record(state, app, &id).await?;
    state.supervisor().command(app, &id, AgentCommand::ClearHistory).await?;
    let now = colloquy_supervisor::now();
    let store = state.supervisor().store();
    let at = now.0.to_string();
    if !store.update_template(app, RESETS, id.as_str(), &at, now).await? {
        store.insert_template(app, RESETS, id.as_str(), &at, now).await?;
    }
    Ok(json!({}))
}
