//! `QueryAgents`: the templates with the body's `AgentIds` (1 to 100; unknown ones are left out);
//! answers `{Agents}`, API keys redacted.

use colloquy_http::AppState;
use colloquy_model::AppId;
use serde_json::{Value, json};

use super::TEMPLATES;
use crate::zego::errors::{ZegoError, ZegoResult};
use crate::zego::fields::{AGENT_ID_PUNCTUATION, zego_id};
use crate::zego::{from_model, wire};

/// The most `AgentIds` one query takes.
const MAX_IDS: usize = 100;

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::QueryAgents) -> ZegoResult<Value> {
    let ids = body.agent_ids.unwrap_or_default();
    if ids.is_empty() {
        return Err(ZegoError::param("AgentIds is required"));
    }
    if ids.len() > MAX_IDS {
        return Err(ZegoError::param(format!("AgentIds has more than {MAX_IDS} ids")));
    }
    let store = state.supervisor().store();
    let mut agents = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        zego_id(&format!("AgentIds[{i}]"), id, 128, AGENT_ID_PUNCTUATION)?;
        if let Some(template) = store.template(app, TEMPLATES, id).await? {
            agents.push(from_model::template_to_wire(&template.body)?);
        }
    }
    Ok(json!({ "Agents": agents }))
}
