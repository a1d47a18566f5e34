//! `UpdateAIAgentInstance`: change the prompt or the speech rate of the running instance
//! `InstanceId`, from `AgentConfig` / `TemplateConfig` (`UserData` cannot change); answers `{}`.

use serde_json::{Value, json};

use super::Params;
use crate::alibaba::errors::Failure;
use crate::alibaba::{apply_update, instance, to_model};
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let record = instance(state, app, params.required("InstanceId")?).await?;
    if params.get("UserData").is_some() {
        tracing::warn!(field = "UserData", "UserData cannot be changed after start here; ignored");
    }
    let config = to_model::read_configs(
        "AgentConfig",
        params.get("AgentConfig"),
        "TemplateConfig",
        params.get("TemplateConfig"),
    )?;
    let update = to_model::update("AgentConfig", config, &record.spec)?;
    apply_update(state, app, &record, update).await?;
    Ok(json!({}))
}
