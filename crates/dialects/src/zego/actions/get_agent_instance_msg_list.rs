//! `GetAgentInstanceMsgList`: the conversation of the instance with the body's `AgentInstanceId`
//! (a deleted one's too): the `MessageHistory` it was created with, then what was said, from the
//! last `ResetAgentInstanceMsgList` on; answers `{Total, MessageList: [{Role, Content}]}`.

use colloquy_http::AppState;
use colloquy_model::AppId;
use serde_json::Value;

use super::RESETS;
use crate::zego::errors::{ZegoError, ZegoResult, codes};
use crate::zego::fields::instance_id;
use crate::zego::{from_model, wire};

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::InstanceOnly) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let record = state.supervisor().get(app, &id).await?;
    let store = state.supervisor().store();
    let reset_at = match store.template(app, RESETS, id.as_str()).await? {
        Some(reset) => Some(reset.body.parse::<i64>().map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.to_string()))?),
        None => None,
    };
    let history = state.supervisor().history(app, &id).await?;
    Ok(from_model::message_list(&record.spec.llm.system_messages, &history, reset_at))
}
