//! Alibaba ARTC `rtc_auth_token`s, as the AICallKit app server mints them:
//!
//! ```text
//! token          = hex(sha256(appid + appkey + channelid + userid + timestamp))
//! rtc_auth_token = base64(JSON{appid, channelid, userid, nonce: "", timestamp, gslb: ["https://gw.rtn.aliyuncs.com"], token})
//! ```
//!
//! `appid` is the app's `id`, `appkey` the app's `secret`, `timestamp` the expiry in unix seconds.
//! Our channel server accepts such a token for its channel and user (see `rtc::check_token`).

use base64::Engine;
use colloquy_model::{ChannelName, Uid};
use colloquy_rtc::token::{Grant, MAX_LIFETIME_SECS};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::apps::{App, Apps};

/// The gateway list a client SDK expects in the token.
pub const GSLB: &str = "https://gw.rtn.aliyuncs.com";

#[derive(Serialize, Deserialize)]
struct TokenJson {
    appid: String,
    channelid: String,
    userid: String,
    #[serde(default)]
    nonce: String,
    timestamp: Timestamp,
    #[serde(default)]
    gslb: Vec<String>,
    token: String,
}

/// The SDKs write the timestamp as a number; some servers write it as a string.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Number(u64),
    Text(String),
}

fn digest(app_id: &str, app_key: &str, channel: &str, user: &str, timestamp: u64) -> String {
    super::signature::sha256_hex(format!("{app_id}{app_key}{channel}{user}{timestamp}").as_bytes())
}

/// The `rtc_auth_token` for `user` in `channel`, valid until `expires_at` (unix seconds).
pub fn rtc_auth_token(app: &App, channel: &str, user: &str, expires_at: u64) -> String {
    let json = TokenJson {
        appid: app.id.as_str().to_owned(),
        channelid: channel.to_owned(),
        userid: user.to_owned(),
        nonce: String::new(),
        timestamp: Timestamp::Number(expires_at),
        gslb: vec![GSLB.to_owned()],
        token: digest(app.id.as_str(), app.secret.expose(), channel, user, expires_at),
    };
    let json = serde_json::to_vec(&json).expect("a token serializes");
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// Checks an `rtc_auth_token`: `None` when `token` is not of this form at all (so another kind of
/// token may be tried), else the grant or why it is refused.
pub fn verify_rtc_auth_token(apps: &Apps, token: &str, now: u64) -> Option<Result<Grant, String>> {
    let token = token.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(token))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(token))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token))
        .ok()?;
    let json: TokenJson = serde_json::from_slice(&bytes).ok()?;
    Some(check(apps, json, now))
}

fn check(apps: &Apps, json: TokenJson, now: u64) -> Result<Grant, String> {
    let timestamp = match &json.timestamp {
        Timestamp::Number(n) => *n,
        Timestamp::Text(text) => text.trim().parse().map_err(|_| "the token's timestamp is not a number".to_owned())?,
    };
    let app = apps.by_id(&json.appid).ok_or_else(|| format!("the token is for an unknown appid {:?}", json.appid))?;
    let expected = digest(app.id.as_str(), app.secret.expose(), &json.channelid, &json.userid, timestamp);
    if !bool::from(expected.as_bytes().ct_eq(json.token.to_ascii_lowercase().as_bytes())) {
        return Err("the token's signature does not match: it was altered or made with another app key".to_owned());
    }
    if timestamp <= now {
        return Err(format!("the token expired {} s ago", now - timestamp));
    }
    let channel = ChannelName::new(json.channelid).map_err(|e| format!("the token's channelid: {e}"))?;
    let uid = Uid::new(json.userid).map_err(|e| format!("the token's userid: {e}"))?;
    Ok(Grant {
        channel: channel.to_string(),
        uid: uid.to_string(),
        expires_at: timestamp.min(now.saturating_add(MAX_LIFETIME_SECS)),
    })
}

#[cfg(test)]
mod tests {
    use colloquy_model::{AppId, Secret};

    use super::*;

    fn apps() -> Apps {
        Apps::new(vec![App {
            id: AppId::new("app1").unwrap(),
            key: "k".into(),
            secret: Secret::new("s"),
            webhook: None,
        }])
    }

    #[test]
    fn tokens_verify_for_their_channel_and_user_until_they_expire() {
        let apps = apps();
        let token = rtc_auth_token(&apps.all()[0], "room1", "user1", 2000);
        let grant = verify_rtc_auth_token(&apps, &token, 1000).unwrap().unwrap();
        assert_eq!((grant.channel.as_str(), grant.uid.as_str(), grant.expires_at), ("room1", "user1", 2000));
        assert!(verify_rtc_auth_token(&apps, &token, 2000).unwrap().unwrap_err().contains("expired"));
        // The documented hash: sha256("app1" + "s" + "room1" + "user1" + "2000").
        let json: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(&token).unwrap()).unwrap();
        assert_eq!(json["token"], "ec610c138b52aaa8161543640bf42ce530e0f645893d86ee5b3cf28a5a4ee1db");
    }

    #[test]
    fn other_tokens_are_not_taken_for_ours() {
        assert!(verify_rtc_auth_token(&apps(), "v1.abc.def", 0).is_none());
        assert!(verify_rtc_auth_token(&apps(), "e30=", 0).is_none());
    }
}
