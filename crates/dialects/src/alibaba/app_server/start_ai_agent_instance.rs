//! `startAIAgentInstance`: start an agent for `user_id` in `channel_id` (a new channel when it is
//! empty). Takes what `generateAIAgentCall` takes and `channel_id`; answers as it does.

use serde_json::Value;

use super::start_call;
use crate::alibaba::errors::Failure;
use crate::alibaba::random_id;
use crate::alibaba::wire::Body;
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, body: Body) -> Result<Value, Failure> {
    let channel = body.channel_id.clone().filter(|c| !c.is_empty());
    start_call(state, app, body, Some(channel.unwrap_or_else(random_id))).await
}
