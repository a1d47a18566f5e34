//! `StartAIAgentInstance`: start an agent in the channel `RuntimeConfig.ChannelId` (as
//! `RuntimeConfig.AgentUserId`, a new uid when absent; `RuntimeConfig.AuthToken`, when given, must
//! be an ARTC token for that channel and uid), listening to anyone there. `RuntimeConfig` may be
//! nested under `VoiceChat` (an object, or one as a JSON string); the avatar and vision workflows are refused. Takes `AIAgentId`,
//! `RuntimeConfig`, `AgentConfig` / `TemplateConfig`, `SessionId`, `UserData`; answers `{InstanceId}`.

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
    let runtime: Value = to_model::parse_json_param("RuntimeConfig", params.required("RuntimeConfig")?)?;
    for unsupported in ["AvatarChat3D", "VisionChat"] {
        if runtime.get(unsupported).is_some() {
            return Err(Failure::invalid(format!(
                "RuntimeConfig.{unsupported} is not supported: this server runs voice agents only (VoiceChat)"
            )));
        }
    }
    // `VoiceChat` may hold the object, or the object as a JSON string (what Alibaba's AUI Java
    // sample server sends).
    let runtime = match runtime.get("VoiceChat") {
        Some(Value::String(text)) => to_model::parse_json_param("RuntimeConfig.VoiceChat", text)?,
        Some(voice_chat) => voice_chat.clone(),
        None => runtime,
    };
    let text = |name: &str| runtime.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let channel = text("ChannelId").ok_or_else(|| Failure::missing("RuntimeConfig.ChannelId"))?;
    let channel = to_model::channel_param("RuntimeConfig.ChannelId", &channel)?;
    let agent_uid = match text("AgentUserId") {
        Some(uid) => to_model::uid_param("RuntimeConfig.AgentUserId", &uid)?,
        None => to_model::uid_param("RuntimeConfig.AgentUserId", &random_id())?,
    };
    if let Some(auth) = text("AuthToken") {
        let grant = token::verify_rtc_auth_token(state.apps(), &auth, unix_now())
            .ok_or_else(|| Failure::invalid("RuntimeConfig.AuthToken is not an ARTC token"))?
            .map_err(|e| Failure::invalid(format!("RuntimeConfig.AuthToken: {e}")))?;
        if grant.channel != channel.as_str() || grant.uid != agent_uid.as_str() {
            return Err(Failure::invalid(format!(
                "RuntimeConfig.AuthToken is for {}/{}, not the ChannelId/AgentUserId {}/{}",
                grant.channel, grant.uid, channel, agent_uid
            )));
        }
    }
    let origin = OriginData { channel_id: channel.to_string(), agent_user_id: agent_uid.to_string(), ..origin };
    let launch = Launch { channel, agent_uid, user: None, config, config_field: "AgentConfig", origin };
    let record = to_model::launch(state, app, launch).await?;
    Ok(json!({ "InstanceId": record.id.as_str() }))
}
