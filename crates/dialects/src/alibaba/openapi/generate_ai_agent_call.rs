//! `GenerateAIAgentCall`: start an agent in a new channel for `UserId` (a new user when it is
//! empty). Takes `AIAgentId`, `AgentConfig` / `TemplateConfig`, `Expire` (seconds, 0 to 604800;
//! 3600 when 0 or absent), `UserId`, `SessionId`, `UserData`, `ChatSyncConfig` (ignored); answers
//! `{AIAgentUserId, ChannelId, InstanceId, Token, UserId}`, `Token` being the user's ARTC token.

use serde_json::{Value, json};

use super::{Params, read_start};
use crate::alibaba::errors::Failure;
use crate::alibaba::to_model::{self, Launch};
use crate::alibaba::wire::OriginData;
use crate::alibaba::{random_id, token, unix_now};
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let (origin, config) = read_start(params)?;
    let expire = match params.int("Expire", 3600, 0..=604_800)? {
        0 => 3600,
        secs => secs.unsigned_abs(),
    };
    let user = match params.get("UserId").filter(|u| !u.is_empty()) {
        Some(user) => to_model::uid_param("UserId", user)?,
        None => to_model::uid_param("UserId", &random_id())?,
    };
    let channel = to_model::channel_param("ChannelId", &random_id())?;
    let agent_uid = to_model::uid_param("AIAgentUserId", &random_id())?;
    let origin = OriginData {
        channel_id: channel.to_string(),
        agent_user_id: agent_uid.to_string(),
        user_id: Some(user.to_string()),
        ..origin
    };
    let launch = Launch {
        channel: channel.clone(),
        agent_uid: agent_uid.clone(),
        user: Some(user.clone()),
        config,
        config_field: "AgentConfig",
        origin,
    };
    let record = to_model::launch(state, app, launch).await?;
    let expires_at = unix_now() + expire;
    Ok(json!({
        "AIAgentUserId": agent_uid.as_str(),
        "ChannelId": channel.as_str(),
        "InstanceId": record.id.as_str(),
        "Token": token::rtc_auth_token(app, channel.as_str(), user.as_str(), expires_at),
        "UserId": user.as_str(),
    }))
}
