//! `DescribeAIAgentInstance`: the instance `InstanceId`, answered `{Instance: {InstanceId,
//! AIAgentId, Status, RuntimeConfig, AgentConfig, TemplateConfig, UserData, SessionId, CallLogUrl,
//! GmtCreate, GmtModified}}`.

use serde_json::{Value, json};

use super::Params;
use crate::alibaba::errors::Failure;
use crate::alibaba::{from_model, instance};
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let record = instance(state, app, params.required("InstanceId")?).await?;
    Ok(json!({ "Instance": from_model::instance_json(&record) }))
}
