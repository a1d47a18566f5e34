//! `describeAIAgentInstance`: the instance `ai_agent_instance_id`, answered `{ai_agent_instance_id,
//! ai_agent_id, status, call_log_url, runtime_config, agent_config, template_config, user_data,
//! session_id, channel_id, ai_agent_user_id, workflow_type}`.

use serde_json::Value;

use super::required;
use crate::alibaba::errors::Failure;
use crate::alibaba::wire::Body;
use crate::alibaba::{from_model, instance};
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, body: Body) -> Result<Value, Failure> {
    let id = required(body.ai_agent_instance_id.as_deref(), "ai_agent_instance_id")?;
    let record = instance(state, app, id).await?;
    Ok(from_model::app_server_instance_json(&record))
}
