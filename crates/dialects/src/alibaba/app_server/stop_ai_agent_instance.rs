//! `stopAIAgentInstance`: stop the instance `ai_agent_instance_id`; answers `{result: true}`.

use serde_json::{Value, json};

use super::required;
use crate::alibaba::errors::Failure;
use crate::alibaba::instance;
use crate::alibaba::wire::Body;
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, body: Body) -> Result<Value, Failure> {
    let id = required(body.ai_agent_instance_id.as_deref(), "ai_agent_instance_id")?;
    let record = instance(state, app, id).await?;
    state.supervisor().leave(&app.id, &record.id).await?;
    Ok(json!({ "result": true }))
}
