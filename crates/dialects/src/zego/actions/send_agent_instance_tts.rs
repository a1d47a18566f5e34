//! `SendAgentInstanceTTS`: the instance says `Text`, as `Priority` and `SamePriorityOption` say
//! (see `to_model::speak_priority`); answers `{}`.

use colloquy_http::{AppState, fields};
use colloquy_model::{AgentCommand, AppId};
use serde_json::{Value, json};

use super::live_record;
use crate::zego::errors::ZegoResult;
use crate::zego::fields::{instance_id, prefix, required};
use crate::zego::{to_model, wire};

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::SendTts) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let text = fields::command_text(required("Text", body.text)?).map_err(|e| prefix("Text", e))?;
    let priority = to_model::speak_priority(body.priority.as_deref(), body.same_priority_option.as_deref())?;
    if body.add_history == Some(false) {
        tracing::warn!(field = "AddHistory", "spoken text always goes to the history; AddHistory=false ignored");
    }
    live_record(state, app, &id).await?;
    state.supervisor().command(app, &id, AgentCommand::Speak { text, priority, interruptible: true }).await?;
    Ok(json!({}))
}
