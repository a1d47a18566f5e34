//! Who is calling: `{appid}` must be a configured app; then `Authorization: Basic
//! base64(key:secret)` with that app's key and secret (every agent of the app), or
//! `Authorization: agora token=<AccessToken2>` signed with the app's secret as its app certificate,
//! which reaches only the agents of the token's RTC channel and uid ([`Scope`]). Every attempt runs
//! under the brute-force brake, and a caller's requests under its app's rate limit.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use colloquy_http::AppState;
use colloquy_http::apps::App;
use colloquy_http::brake::Peer;
use colloquy_model::{AgentId, AgentRecord};
use subtle::ConstantTimeEq;

use super::errors::{AgoraError, AgoraResult};
use super::{now_secs, token};

/// Who called, and what their credentials reach.
pub(crate) struct Caller {
    pub(crate) app: App,
    pub(crate) scope: Scope,
}

/// What a caller's credentials reach.
pub(crate) enum Scope {
    /// Basic credentials: every agent of the app.
    App,
    /// An RTC token: the agents in its channel with its uid (any uid for a uid-0 token).
    Channel(token::RestGrant),
}

impl Scope {
    /// Refuses, with 403, an agent in `channel` as `uid` that the credentials do not reach.
    pub(crate) fn check(&self, channel: &str, uid: &str) -> AgoraResult<()> {
        let Scope::Channel(grant) = self else { return Ok(()) };
        if grant.channel == channel && grant.uid.as_ref().is_none_or(|granted| granted == uid) {
            return Ok(());
        }
        let granted = match &grant.uid {
            Some(granted) => format!("channel {:?} uid {granted:?}", grant.channel),
            None => format!("channel {:?}", grant.channel),
        };
        Err(AgoraError::forbidden(format!(
            "the token grants {granted} only; this agent is in another channel or has another uid \
             (properties.channel and properties.agent_rtc_uid must match the token)"
        )))
    }
}

impl Caller {
    /// The agent `id` of the caller's app, if the credentials reach it.
    pub(crate) async fn agent(&self, state: &AppState, id: &AgentId) -> AgoraResult<AgentRecord> {
        let record = state.supervisor().get(&self.app.id, id).await?;
        self.scope.check(record.spec.channel.as_str(), record.spec.agent_uid.as_str())?;
        Ok(record)
    }
}

/// Authenticates under the brute-force brake (per client address and `{appid}`), then takes one
/// request from the app's rate limit.
pub(crate) async fn authorize(state: &AppState, peer: Peer, appid: &str, headers: &HeaderMap) -> AgoraResult<Caller> {
    let caller = state.braked(peer, &format!("agora:{appid}"), || authenticate(state, appid, headers))?;
    state.rate_limit(caller.app.rate_key()).await?;
    Ok(caller)
}

/// Checks `{appid}` and the `Authorization` header.
fn authenticate(state: &AppState, appid: &str, headers: &HeaderMap) -> AgoraResult<Caller> {
    let app = state.apps().by_id(appid).ok_or_else(|| AgoraError::unauthorized("invalid appid"))?.clone();
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AgoraError::unauthorized("missing Authorization header"))?
        .trim();
    let scope = if let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| AgoraError::unauthorized("the Basic credentials are not base64 of \"key:secret\""))?;
        let (key, secret) = decoded
            .split_once(':')
            .ok_or_else(|| AgoraError::unauthorized("the Basic credentials must be \"customer_id:customer_secret\""))?;
        let Some(app_key) = app.key.as_deref() else {
            return Err(AgoraError::unauthorized("this app has no key in [[apps]]: use an agora token"));
        };
        let key_ok = app_key.as_bytes().ct_eq(key.as_bytes());
        let secret_ok = app.secret.expose().as_bytes().ct_eq(secret.as_bytes());
        if !bool::from(key_ok & secret_ok) {
            return Err(AgoraError::unauthorized("wrong customer id or secret for this appid"));
        }
        Scope::App
    } else if let Some(token) = value.strip_prefix("agora token=") {
        // Agora's newer docs quote the token: `agora token="<token>"`.
        let token = token.trim().trim_matches('"');
        let grant = token::verify_for_rest(token, app.id.as_str(), app.secret.expose(), now_secs() as u64)
            .map_err(|e| AgoraError::unauthorized(e.to_string()))?;
        Scope::Channel(grant)
    } else {
        return Err(AgoraError::unauthorized(
            "the Authorization header must be \"Basic base64(key:secret)\" or \"agora token=<token>\"",
        ));
    };
    Ok(Caller { app, scope })
}

/// A call authorized for the path's `{appid}`: the server's state and the caller.
pub(crate) struct Call {
    pub(crate) state: AppState,
    pub(crate) caller: Caller,
}

/// A call about the agent of the path's `{agent_id}`.
pub(crate) struct AgentCall {
    pub(crate) state: AppState,
    pub(crate) caller: Caller,
    pub(crate) id: AgentId,
}

impl FromRequestParts<AppState> for Call {
    type Rejection = AgoraError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AgoraResult<Call> {
        let params = path_params(parts, state).await?;
        let appid = params.get("appid").map(String::as_str).unwrap_or_default();
        let caller = authorize(state, Peer::of(parts), appid, &parts.headers).await?;
        Ok(Call { state: state.clone(), caller })
    }
}

impl FromRequestParts<AppState> for AgentCall {
    type Rejection = AgoraError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AgoraResult<AgentCall> {
        let mut params = path_params(parts, state).await?;
        let Call { state, caller } = Call::from_request_parts(parts, &state.clone()).await?;
        let id = AgentId::from_string(params.remove("agent_id").unwrap_or_default());
        Ok(AgentCall { state, caller, id })
    }
}

async fn path_params(parts: &mut Parts, state: &AppState) -> AgoraResult<HashMap<String, String>> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|e| AgoraError::invalid(format!("the path: {e}")))?;
    Ok(params)
}
