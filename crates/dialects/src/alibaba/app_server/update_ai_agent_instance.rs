//! `updateAIAgentInstance`: change the prompt or the speech rate of the running instance
//! `ai_agent_instance_id`, from `agent_config` / `template_config` (`user_data` cannot change);
//! answers `{result: true}`.

use serde_json::{Value, json};

use super::{configs, required};
use crate::alibaba::errors::Failure;
use crate::alibaba::wire::Body;
use crate::alibaba::{apply_update, instance, to_model};
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, body: Body) -> Result<Value, Failure> {
    let id = required(body.ai_agent_instance_id.as_deref(), "ai_agent_instance_id")?;
    let record = instance(state, app, id).await?;
    let user_data = body.user_data.is_some();
    let (_, _, config) = configs(body.agent_config, body.template_config)?;
    let mut update = to_model::update("agent_config", config, &record.spec)?;
    if user_data {
        update.warnings.push(colloquy_model::SpecWarning {
            field: "user_data".to_owned(),
            message: "user_data cannot be changed after the start here".to_owned(),
        });
    }
    apply_update(state, app, &record, update).await?;
    Ok(json!({ "result": true }))
}
