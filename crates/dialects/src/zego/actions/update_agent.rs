//! `UpdateAgent`: changes a registered template: `Name` is replaced and each of the `LLM`, `TTS`
//! and `ASR` groups given overrides the saved group's keys; the result is checked as at
//! `RegisterAgent`. Answers `{}`, or 410001009 when no agent has the `AgentId`.

use colloquy_http::AppState;
use colloquy_model::AppId;
use serde_json::{Value, json};

use super::{TEMPLATES, agent_not_found, checked_text, load_template};
use crate::zego::errors::ZegoResult;
use crate::zego::fields::agent_id;
use crate::zego::wire;

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::AgentTemplate) -> ZegoResult<Value> {
    let id = agent_id(body.agent_id)?;
    let mut saved = load_template(state, app, &id).await?;
    if let Some(name) = body.name {
        saved.name = name;
    }
    saved.merge_groups(body.llm, body.tts, body.asr);
    let text = checked_text(state, app, &saved)?;
    let store = state.supervisor().store();
    if !store.update_template(app, TEMPLATES, &id, &text, colloquy_supervisor::now()).await? {
        return Err(agent_not_found(&id));
    }
    Ok(json!({}))
}
