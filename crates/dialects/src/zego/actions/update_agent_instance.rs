//! `UpdateAgentInstance`: changes a running instance: `LLM.SystemPrompt`, `LLM.Temperature`,
//! `LLM.TopP`, `LLM.Params.max_tokens` and an embedded voice in `TTS.Params.voice` (the endpoint
//! cannot change: 410000003; `ASR` is ignored); answers `{}`.

use colloquy_http::AppState;
use colloquy_model::AppId;
use serde_json::{Value, json};

use super::live_record;
use crate::zego::errors::ZegoResult;
use crate::zego::fields::instance_id;
use crate::zego::{to_model, wire};

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::UpdateInstance) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let record = live_record(state, app, &id).await?;
    let update = to_model::running_update(&record.spec, body.llm, body.tts, body.asr)?;
    if !update.is_empty() {
        state.supervisor().update(app, &id, update).await?;
    }
    Ok(json!({}))
}
