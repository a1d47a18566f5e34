//! Alibaba ARTC `rtc_auth_token`s, as the AICallKit app server mints them:
//!
//! ```text
//! token          = hex(sha256(appid + appkey + channelid + userid + timestamp))
//! rtc_auth_token = base64(JSON{appid, channelid, userid, nonce: "", timestamp, gslb: ["https://gw.rtn.aliyuncs.com"], token})
//! ```
//!
//! `appid` is the app's `id`, `appkey` the app's `secret`, `timestamp` the expiry in unix seconds.
//! Our channel server accepts such a token for its channel and user (see `rtc::check_token`).
//!
//! The hash has no separators, so a token for `room`/`user1` also signs `roo`/`muser1`, and
//! `…1` + timestamp digits can move into the timestamp. A timestamp later than now plus the
//! longest expiry the API allows (Alibaba's `Expire`, 604800 s) is refused, which ends the
//! never-expiring variants; the channel/user boundary is closed only by `[[apps]] artc_tokens =
//! "issued_only"` ([`ArtcTokens::IssuedOnly`]): the tokens this server issues carry, in `nonce`,
//! an HMAC-SHA256 with the app's secret over the fields with their lengths, and such an app takes
//! no token without it.

use base64::Engine;
use colloquy_model::{ChannelName, Uid};
use colloquy_rtc::token::{Grant, MAX_LIFETIME_SECS};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use colloquy_http::apps::{App, Apps, ArtcTokens};

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

/// What a token this server issued carries in `nonce`: `"cq1-"` and a hex HMAC-SHA256, with the
/// app's secret, over each field prefixed by its length, so no field can borrow from the next.
fn issued_nonce(app: &App, channel: &str, user: &str, timestamp: u64) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(app.secret.expose().as_bytes()).expect("HMAC takes any key");
    for field in [app.id.as_str(), channel, user, &timestamp.to_string()] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field.as_bytes());
    }
    format!("cq1-{}", hex::encode(mac.finalize().into_bytes()))
}

/// The `rtc_auth_token` for `user` in `channel`, valid until `expires_at` (unix seconds).
pub fn rtc_auth_token(app: &App, channel: &str, user: &str, expires_at: u64) -> String {
    let json = TokenJson {
        appid: app.id.as_str().to_owned(),
        channelid: channel.to_owned(),
        userid: user.to_owned(),
        nonce: issued_nonce(app, channel, user, expires_at),
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
    if timestamp > now.saturating_add(MAX_LIFETIME_SECS) {
        return Err(format!(
            "the token's timestamp {timestamp} is more than {MAX_LIFETIME_SECS} s (the longest Expire) from now"
        ));
    }
    if app.artc_tokens == ArtcTokens::IssuedOnly {
        let expected = issued_nonce(app, &json.channelid, &json.userid, timestamp);
        if !bool::from(expected.as_bytes().ct_eq(json.nonce.as_bytes())) {
            return Err("this app takes only the ARTC tokens this server issued (artc_tokens = \"issued_only\")".into());
        }
    }
    let channel = ChannelName::new(json.channelid).map_err(|e| format!("the token's channelid: {e}"))?;
    let uid = Uid::new(json.userid).map_err(|e| format!("the token's userid: {e}"))?;
    Ok(Grant { app: app.id.to_string(), channel: channel.to_string(), uid: uid.to_string(), expires_at: timestamp })
}

#[cfg(test)]
mod tests {
    use colloquy_model::{AppId, Secret};

    use super::*;

    fn apps() -> Apps {
        Apps::new(vec![App {
            id: AppId::new("app1").unwrap(),
            key: Some("k".into()),
            secret: Secret::new("s"),
            webhook: None,
            artc_tokens: ArtcTokens::Signed,
            agents: Vec::new(),
            substitute_unsupported_vendors: false,
            vendor_keys: Default::default(),
        }])
    }

    /// A token as Alibaba's own app server mints it: no nonce.
    fn vendor_token(secret: &str, channel: &str, user: &str, timestamp: u64) -> String {
        let json = serde_json::json!({
            "appid": "app1", "channelid": channel, "userid": user, "nonce": "", "timestamp": timestamp,
            "gslb": [GSLB], "token": digest("app1", secret, channel, user, timestamp),
        });
        base64::engine::general_purpose::STANDARD.encode(json.to_string())
    }

    #[test]
    fn re_split_tokens_never_outlive_the_longest_expiry_and_issued_only_refuses_them() {
        let now = 1_800_000_000;
        let mut apps = apps();
        // The holder of room/user1 until now+60 moves characters across the boundaries.
        let original = vendor_token("s", "room", "user1", now + 60);
        let json: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(&original).unwrap()).unwrap();
        let resplit = |channel: &str, user: &str, timestamp: u64| {
            let mut forged = json.clone();
            forged["channelid"] = channel.into();
            forged["userid"] = user.into();
            forged["timestamp"] = timestamp.into();
            base64::engine::general_purpose::STANDARD.encode(forged.to_string())
        };
        // "user" + "1" + timestamp: a timestamp ~280 years away.
        let forever = resplit("room", "user", format!("1{}", now + 60).parse().unwrap());
        assert!(verify_rtc_auth_token(&apps, &forever, now).unwrap().unwrap_err().contains("604800"));
        // Moving the channel/user boundary keeps the signature: the vendor's scheme allows it.
        let moved = resplit("roo", "muser1", now + 60);
        assert_eq!(verify_rtc_auth_token(&apps, &moved, now).unwrap().unwrap().channel, "roo");
        // An app that takes only issued tokens refuses it, and the vendor's own unmoved token,
        // and takes ours.
        apps = Apps::new(vec![App { artc_tokens: ArtcTokens::IssuedOnly, ..apps.all()[0].clone() }]);
        for token in [&moved, &original] {
            assert!(verify_rtc_auth_token(&apps, token, now).unwrap().unwrap_err().contains("issued_only"));
        }
        let ours = rtc_auth_token(&apps.all()[0], "room", "user1", now + 60);
        assert_eq!(verify_rtc_auth_token(&apps, &ours, now).unwrap().unwrap().uid, "user1");
        let json: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(&ours).unwrap()).unwrap();
        let mut forged = json.clone();
        forged["channelid"] = "roo".into();
        forged["userid"] = "muser1".into();
        let forged = base64::engine::general_purpose::STANDARD.encode(forged.to_string());
        assert!(verify_rtc_auth_token(&apps, &forged, now).unwrap().unwrap_err().contains("issued_only"));
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
