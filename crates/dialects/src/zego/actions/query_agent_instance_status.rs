//! `QueryAgentInstanceStatus`: where the instance with the body's `AgentInstanceId` is
//! (`Status`: `IDLE`, `LISTENING`, `THINKING` or `SPEAKING`), with the `LLMFirstTokenLatency` and
//! `TTSFirstAudioLatency` of its last measured turn.

use colloquy_http::AppState;
use colloquy_model::AppId;
use serde_json::Value;

use super::live_record;
use crate::zego::errors::ZegoResult;
use crate::zego::fields::instance_id;
use crate::zego::{from_model, wire};

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::InstanceOnly) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let record = live_record(state, app, &id).await?;
    let status = from_model::status_name(record.state.status(), state.supervisor().conversation_state(app, &id));
    let turns = state.supervisor().turns(app, &id).await?;
    Ok(from_model::instance_status(status, &turns))
}
