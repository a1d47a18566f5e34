//! `SendAIAgentText`: give the instance `InstanceId` the text `Text` as if the user had said it,
//! to answer; answers `{}`.

use colloquy_model::{AgentCommand, AgentSpec};
use serde_json::{Value, json};

use super::{Params, text_up_to};
use crate::alibaba::errors::Failure;
use crate::alibaba::instance;
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let id = params.required("InstanceId")?;
    let text = text_up_to("Text", params.required("Text")?, AgentSpec::MAX_TEXT_CHARS)?;
    let record = instance(state, app, id).await?;
    state.supervisor().command(&app.id, &record.id, AgentCommand::think(text)).await?;
    Ok(json!({}))
}
