//! ZEGO's actions, one file per action, named after it (as mini-redis keeps one file per command).
//! Each has one entry, `run`, which [`routes`](super::routes) dispatches to with the parsed body;
//! the helpers several actions share are here.

pub(crate) mod create_agent_instance;
pub(crate) mod delete_agent_instance;
pub(crate) mod get_agent_instance_msg_list;
pub(crate) mod interrupt_agent_instance;
pub(crate) mod list_agents;
pub(crate) mod query_agent_instance_status;
pub(crate) mod query_agents;
pub(crate) mod register_agent;
pub(crate) mod reset_agent_instance_msg_list;
pub(crate) mod send_agent_instance_llm;
pub(crate) mod send_agent_instance_tts;
pub(crate) mod unregister_agent;
pub(crate) mod update_agent;
pub(crate) mod update_agent_instance;

use colloquy_http::AppState;
use colloquy_model::{AgentId, AgentRecord, AppId};

use super::errors::{ZegoError, ZegoResult, codes};
use super::{to_model, wire};

/// The templates' dialect key in the records.
const TEMPLATES: &str = "zego";
/// Where the time of each instance's last `ResetAgentInstanceMsgList` is kept (one row per
/// instance, in the templates table).
const RESETS: &str = "zego.msgreset";

/// No template has the `AgentId`.
pub(crate) fn agent_not_found(id: &str) -> ZegoError {
    ZegoError::new(codes::AGENT_NOT_FOUND, format!("no agent is registered with AgentId {id:?}"))
}

/// The template saved under `id`.
pub(crate) async fn load_template(state: &AppState, app: &AppId, id: &str) -> ZegoResult<wire::SavedTemplate> {
    find_template(state, app, id).await?.ok_or_else(|| agent_not_found(id))
}

/// The template saved under `id`, if there is one.
async fn find_template(state: &AppState, app: &AppId, id: &str) -> ZegoResult<Option<wire::SavedTemplate>> {
    let Some(template) = state.supervisor().store().template(app, TEMPLATES, id).await? else { return Ok(None) };
    serde_json::from_str(&template.body)
        .map(Some)
        .map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, format!("a saved agent could not be read: {e}")))
}

/// A template as it is saved, once it is checked.
fn checked_text(state: &AppState, app: &AppId, saved: &wire::SavedTemplate) -> ZegoResult<String> {
    to_model::check_template(saved, state.vendor_scope(state.apps().by_id(app.as_str())))?;
    serde_json::to_string(saved).map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.to_string()))
}

/// The live record of an instance; a deleted one is "not found", as at ZEGO.
pub(crate) async fn live_record(state: &AppState, app: &AppId, id: &AgentId) -> ZegoResult<AgentRecord> {
    let record = state.supervisor().get(app, id).await?;
    if record.state.status().is_terminal() {
        return Err(ZegoError::new(codes::INSTANCE_NOT_FOUND, "agent instance not found: it was deleted"));
    }
    Ok(record)
}
