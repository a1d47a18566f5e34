//! `CreateAgentInstance`: starts an agent from a template (`AgentId`) for `UserId` in the `RTC`
//! room, with the body's `LLM`, `TTS` and `ASR` over the template's, `MessageHistory`,
//! `CallbackConfig` and `AdvancedConfig`; answers `{AgentInstanceId}`. One instance per room and
//! `RTC.AgentUserId` (410001012), at most [`MAX_INSTANCES`](crate::zego::MAX_INSTANCES) per app
//! (410001011).

use colloquy_http::AppState;
use colloquy_http::apps::App;
use colloquy_supervisor::SupervisorError;
use serde_json::{Value, json};

use super::load_template;
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
    let template = load_template(state, &app.id, placement.template_id()).await?;
    let spec = to_model::instance_spec(app, placement, template, body)?;
    if state.supervisor().name_is_live(&app.id, &spec.name) {
        return Err(SupervisorError::NameTaken(spec.name.to_string()).into());
    }
    let _place = instances.reserve(state, &app.id, &spec.name).await?;
    let record = state.supervisor().start(app.id.clone(), spec).await?;
    Ok(json!({ "AgentInstanceId": record.id.as_str() }))
}
