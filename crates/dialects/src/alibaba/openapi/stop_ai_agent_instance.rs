//! `StopAIAgentInstance`: stop the instance `InstanceId`; answers `{}`.

use serde_json::{Value, json};

use super::Params;
use crate::alibaba::errors::Failure;
use crate::alibaba::instance;
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let record = instance(state, app, params.required("InstanceId")?).await?;
    state.supervisor().leave(&app.id, &record.id).await?;
    Ok(json!({}))
}
