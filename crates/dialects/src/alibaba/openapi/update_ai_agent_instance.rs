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
    let user_data = params.get("UserData").is_some();
    let config = to_model::read_configs(
        "AgentConfig",
        params.get("AgentConfig"),
        "TemplateConfig",
        params.get("TemplateConfig"),
    )?;
    let mut update = to_model::update("AgentConfig", config, &record.spec)?;
    if user_data {
        update.warnings.push(colloquy_model::SpecWarning {
            field: "UserData".to_owned(),
            message: "UserData cannot be changed after the start here".to_owned(),
        });
    }
    apply_update(state, app, &record, update).await?;
    Ok(json!({}))
}
