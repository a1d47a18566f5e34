//! `SendAgentInstanceLLM`: `Text` goes to the instance's LLM as the user's turn, cutting off what
//! the agent says; `SystemPrompt` and the history flags are ignored. Answers `{}`.

use colloquy_http::{AppState, fields};
use colloquy_model::{AgentCommand, AppId, SpeakPriority};
use serde_json::{Value, json};

use super::live_record;
use crate::zego::errors::ZegoResult;
use crate::zego::fields::{instance_id, prefix, required};
use crate::zego::{to_model, wire};

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::SendLlm) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let text = fields::command_text(required("Text", body.text)?).map_err(|e| prefix("Text", e))?;
    // Checked for its values; the LLM turn always cuts off what the agent says.
    let priority = to_model::speak_priority(body.priority.as_deref(), body.same_priority_option.as_deref())?;
    if priority != SpeakPriority::Interrupt {
        tracing::warn!(field = "Priority", "SendAgentInstanceLLM always interrupts the agent; Priority ignored");
    }
    if body.system_prompt.is_some() {
        tracing::warn!(field = "SystemPrompt", "a per-request system prompt is not supported; ignored");
    }
    if body.add_question_to_history == Some(false) || body.add_answer_to_history == Some(false) {
        tracing::warn!(field = "AddQuestionToHistory", "the question and the answer always go to the history");
    }
    live_record(state, app, &id).await?;
    state.supervisor().command(app, &id, AgentCommand::think(text)).await?;
    Ok(json!({}))
}
