//! `getRtcAuthToken`: an ARTC `rtc_auth_token` for `user_id` in `channel_id` (a new channel when it
//! is empty), valid for `expire` seconds; answers `{rtc_auth_token, timestamp, app_id, user_id,
//! channel_id}`.

use serde_json::{Value, json};

use super::{expire, required};
use crate::alibaba::errors::Failure;
use crate::alibaba::wire::Body;
use crate::alibaba::{random_id, to_model, token, unix_now};
use colloquy_http::apps::App;

pub(super) fn handle(app: &App, body: Body) -> Result<Value, Failure> {
    let user = to_model::uid_param("user_id", required(body.user_id.as_deref(), "user_id")?)?;
    let channel = body.channel_id.filter(|c| !c.is_empty()).unwrap_or_else(random_id);
    let channel = to_model::channel_param("channel_id", &channel)?;
    let expires_at = unix_now() + expire(body.expire)?;
    Ok(json!({
        "rtc_auth_token": token::rtc_auth_token(app, channel.as_str(), user.as_str(), expires_at),
        "timestamp": expires_at,
        "app_id": app.id.as_str(),
        "user_id": user.as_str(),
        "channel_id": channel.as_str(),
    }))
}
