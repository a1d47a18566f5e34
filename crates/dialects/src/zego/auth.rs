//! ZEGO's request authentication: the common query parameters (`AppId`, `Action`,
//! `SignatureNonce`, `Timestamp`, `SignatureVersion`, `Signature`), the timestamp window, the
//! signature (see [`signature`](super::signature)), and taking each `SignatureNonce` once.

use std::collections::HashMap;

use colloquy_http::AppState;
use colloquy_http::apps::App;

use super::errors::{ZegoError, ZegoResult, codes};
use super::{TIMESTAMP_TOLERANCE_SECS, signature};
use crate::RawRequest;

/// The `AppId` query parameter as given (empty when there is none), to name the request's brake
/// before it is authenticated.
pub(crate) fn query_app_id(request: &RawRequest) -> String {
    form_urlencoded::parse(request.query.as_deref().unwrap_or("").as_bytes())
        .find_map(|(key, value)| (key == "AppId").then(|| value.into_owned()))
        .unwrap_or_default()
}

/// Checks the common parameters and the signature; answers the app, the action and the nonce.
pub(crate) fn authenticate<'a>(state: &'a AppState, request: &RawRequest) -> ZegoResult<(&'a App, String, String)> {
    let mut params: HashMap<String, String> = HashMap::new();
    for (key, value) in form_urlencoded::parse(request.query.as_deref().unwrap_or("").as_bytes()) {
        params.entry(key.into_owned()).or_insert_with(|| value.into_owned());
    }
    let get = |name: &str| params.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let app_id = get("AppId").ok_or_else(|| ZegoError::new(codes::APP_ID_FORMAT, "AppId is empty"))?;
    let action = get("Action").ok_or_else(|| ZegoError::new(codes::ACTION_EMPTY, "Action is empty"))?;
    let nonce = get("SignatureNonce").ok_or_else(|| ZegoError::new(codes::NONCE_EMPTY, "SignatureNonce is empty"))?;
    let timestamp = get("Timestamp").ok_or_else(|| ZegoError::new(codes::TIMESTAMP_EMPTY, "Timestamp is empty"))?;
    let signature = get("Signature").ok_or_else(|| ZegoError::new(codes::SIGNATURE_EMPTY, "Signature is empty"))?;
    let version = get("SignatureVersion")
        .ok_or_else(|| ZegoError::new(codes::SIGNATURE_VERSION_EMPTY, "SignatureVersion is empty"))?;
    if version != "2.0" {
        return Err(ZegoError::new(codes::SIGNATURE_VERSION_UNSUPPORTED, "SignatureVersion only supports 2.0"));
    }
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| ZegoError::new(codes::TIMESTAMP_FORMAT, "Timestamp must be a Unix timestamp in seconds"))?;
    let app = state.apps().by_id(app_id).ok_or_else(|| {
        if app_id.bytes().all(|b| b.is_ascii_digit()) {
            ZegoError::new(codes::NO_SERVER_SECRET, "failed to get ServerSecret: unknown AppId")
        } else {
            ZegoError::new(codes::APP_ID_FORMAT, "AppId must be a number")
        }
    })?;
    let now_secs = colloquy_supervisor::now().0 / 1000;
    if (now_secs - seconds).abs() > TIMESTAMP_TOLERANCE_SECS {
        return Err(ZegoError::new(
            codes::SIGNATURE_EXPIRED,
            "signature expired: Timestamp is more than 10 minutes from the server's time",
        ));
    }
    if !signature::request_signature_matches(signature, app_id, nonce, app.secret.expose(), timestamp) {
        return Err(ZegoError::new(codes::SIGNATURE_ERROR, "signature error"));
    }
    Ok((app, action.to_owned(), nonce.to_owned()))
}

/// Takes `nonce` for `app`, once: the signature covers neither the Action nor the body, so a
/// signed URL must not be usable twice. The nonce is kept as long as a signature with it can pass.
pub(crate) async fn take_nonce(state: &AppState, app: &App, nonce: &str) -> ZegoResult<()> {
    let now = colloquy_supervisor::now();
    let keep_until = colloquy_model::UnixMillis(now.0 + 2 * TIMESTAMP_TOLERANCE_SECS * 1000);
    let scope = format!("zego:{}", app.id);
    let fresh = state
        .use_nonce(&scope, nonce, now, keep_until)
        .await
        .map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, format!("the request's nonce could not be recorded: {e}")))?;
    if !fresh {
        return Err(ZegoError::new(
            codes::SIGNATURE_ERROR,
            "signature error: this SignatureNonce was already used; sign every request with a fresh nonce",
        ));
    }
    Ok(())
}
