//! `generateAIAgentCall`: start an agent in a new channel for `user_id`. Takes `user_id`,
//! `ai_agent_id`, `workflow_type`, `agent_config` / `template_config`, `expire`, `user_data`,
//! `session_id`; answers `{rtc_auth_token, ai_agent_id, ai_agent_instance_id, ai_agent_user_id,
//! channel_id, workflow_type}`.

use serde_json::Value;

use super::start_call;
use crate::alibaba::errors::Failure;
use crate::alibaba::wire::Body;
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, body: Body) -> Result<Value, Failure> {
    start_call(state, app, body, None).await
}
