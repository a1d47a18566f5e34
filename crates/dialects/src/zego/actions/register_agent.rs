//! `RegisterAgent`: saves an agent template (`AgentId`, `Name`, and the `LLM`, `TTS` and `ASR`
//! groups, each checked by applying it to a spec) under its `AgentId`; answers `{}`, or 410001008
//! when the `AgentId` is already registered.

use colloquy_http::AppState;
use colloquy_model::AppId;
use serde_json::{Value, json};

use super::{TEMPLATES, checked_text};
use crate::zego::errors::{ZegoError, ZegoResult, codes};
use crate::zego::fields::agent_id;
use crate::zego::wire;

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::AgentTemplate) -> ZegoResult<Value> {
    let id = agent_id(body.agent_id)?;
    let saved = wire::SavedTemplate {
        agent_id: id.clone(),
        name: body.name.unwrap_or_default(),
        llm: body.llm.unwrap_or_default(),
        tts: body.tts.unwrap_or_default(),
        asr: body.asr.unwrap_or_default(),
    };
    let text = checked_text(state, app, &saved)?;
    let store = state.supervisor().store();
    if !store.insert_template(app, TEMPLATES, &id, &text, colloquy_supervisor::now()).await? {
        return Err(ZegoError::new(codes::AGENT_EXISTS, format!("AgentId {id:?} is already registered")));
    }
    Ok(json!({}))
}
