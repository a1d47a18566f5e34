//! `CreateAgentInstance`: starts an agent from a template (`AgentId`: one registered through the
//! API, else one of the app's configured agents) for `UserId` in the `RTC` room, with the body's
//! `LLM`, `TTS` and `ASR` over the template's, `MessageHistory`,
//! `CallbackConfig` and `AdvancedConfig`; answers `{AgentInstanceId}`. One instance per room and
//! `RTC.AgentUserId` (410001012), at most [`MAX_INSTANCES`](crate::zego::MAX_INSTANCES) per app
//! (410001011).

use colloquy_http::AppState;
use colloquy_http::apps::App;
use colloquy_supervisor::SupervisorError;
use serde_json::{Value, json};

use super::{agent_not_found, find_template};
use crate::zego::errors::ZegoResult;
use crate::zego::instances::InstanceGate;
use crate::zego::{to_model, wire};

pub(crate) async fn run(
    instances: &InstanceGate,
    state: &AppState,
    app: &App,
    mut body: wire::CreateInstance,
) -> ZegoResult<Value> {
    let placement = to_model::placement(&mut body)?;
    let id = placement.template_id();
    let (template, configured) = match find_template(state, &app.id, id).await? {
        Some(template) => (template, None),
        None => match app.configured_agent(id) {
            Ok(Some(agent)) => (wire::SavedTemplate { agent_id: agent.id.clone(), ..Default::default() }, Some(agent)),
            Ok(None) | Err(_) => return Err(agent_not_found(id)),
        },
    };
    let spec = to_model::instance_spec(app, placement, template, configured, body, state.vendor_scope(Some(app)))?;
    if state.supervisor().name_is_live(&app.id, &spec.name) {
        return Err(SupervisorError::NameTaken(spec.name.to_string()).into());
    }
    let _place = instances.reserve(state, &app.id, &spec.name).await?;
    let record = state.supervisor().start(app.id.clone(), spec).await?;
    Ok(json!({ "AgentInstanceId": record.id.as_str() }))
}
