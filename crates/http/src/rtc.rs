//! RTC tokens (`POST /v1/tokens`) and WHIP signaling (RFC 9725) into the channel server:
//! `POST /rtc/whip` with `Authorization: Bearer <token>` and an SDP offer answers 201 with the SDP
//! answer and a `Location`; `PATCH` on that resource with a newer token renews it; `DELETE` leaves.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use colloquy_model::{ChannelName, Uid};
use colloquy_rtc::server::{ChannelServer, JoinError, ParticipantId};
use colloquy_rtc::token::{Grant, MAX_LIFETIME_SECS, TokenSigner};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extract::{ValidJson, ValidQuery};

/// The RTC side of the HTTP edge.
#[derive(Debug)]
pub struct RtcEdge {
    /// Signs and checks RTC tokens with the server secret.
    pub signer: TokenSigner,
    /// The channel server, when this node runs one.
    pub server: Option<ChannelServer>,
    /// WHIP resources: an unguessable id per joined participant, so the resource URL itself is the
    /// capability to leave or renew.
    resources: Mutex<HashMap<String, Resource>>,
}

#[derive(Clone, Debug)]
struct Resource {
    participant: ParticipantId,
    app: String,
    channel: String,
    uid: String,
}

impl RtcEdge {
    pub fn new(signer: TokenSigner, server: Option<ChannelServer>) -> RtcEdge {
        RtcEdge { signer, server, resources: Mutex::new(HashMap::new()) }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `POST /v1/tokens`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The channel the token lets into.
    pub channel: String,
    /// The participant's uid in it.
    pub uid: String,
    /// Lifetime in seconds, 1–604800 (7 days). Default 3600.
    #[serde(default)]
    pub expire_s: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub channel: String,
    pub uid: String,
}

/// Mint an RTC token for a participant in one of the caller's app's channels (channels belong to
/// apps: another app's channel of the same name is another channel). Ask again before it expires to renew (see PATCH /rtc/whip/{resource}).
#[utoipa::path(
    post, path = "/v1/tokens", tag = "rtc",
    request_body = TokenRequest,
    responses((status = 200, body = TokenAnswer), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)),
    security(("basic" = []))
)]
pub async fn issue_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidJson(request): ValidJson<TokenRequest>,
) -> Result<Json<TokenAnswer>, ApiError> {
    let channel = ChannelName::new(request.channel).map_err(|e| ApiError::invalid("channel", e.0))?;
    let uid = Uid::new(request.uid).map_err(|e| ApiError::invalid("uid", e.0))?;
    let lifetime = request.expire_s.unwrap_or(3600);
    if !(1..=MAX_LIFETIME_SECS).contains(&lifetime) {
        return Err(ApiError::invalid(
            "expire_s",
            format!("expire_s is {lifetime}; it must be between 1 and {MAX_LIFETIME_SECS}"),
        ));
    }
    let expires_at = unix_now() + lifetime;
    let token = state.inner.rtc.signer.issue(caller.app.as_str(), channel.as_str(), uid.as_str(), expires_at);
    Ok(Json(TokenAnswer { token, expires_at, channel: channel.to_string(), uid: uid.to_string() }))
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| token_refused("WHIP needs Authorization: Bearer <RTC token>"))
}

/// A 401 for a missing or refused RTC token, with a Bearer challenge.
fn token_refused(message: impl Into<String>) -> ApiError {
    ApiError { bearer_challenge: true, ..ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message) }
}

/// Checks a WHIP bearer token: our own RTC token, else a vendor's RTC token that a dialect
/// recognizes (Alibaba's ARTC `rtc_auth_token`, signed with an app's key). Whatever signed it, its channel and uid
/// pass the same rules as `POST /v1/tokens` ([`ChannelName`], [`Uid`]).
fn check_token(state: &AppState, headers: &HeaderMap) -> Result<Grant, ApiError> {
    let token = bearer(headers)?;
    let now = unix_now();
    let grant = state.rtc().signer.verify(token, now).or_else(|e| {
        match state.dialects().verify_rtc_token(state.apps(), token, now) {
            Some(result) => result.map_err(token_refused),
            None => Err(token_refused(e.to_string())),
        }
    })?;
    ChannelName::new(grant.channel.clone()).map_err(|e| token_refused(format!("the token's channel: {}", e.0)))?;
    Uid::new(grant.uid.clone()).map_err(|e| token_refused(format!("the token's uid: {}", e.0)))?;
    Ok(grant)
}

fn channel_server(edge: &RtcEdge) -> Result<&ChannelServer, ApiError> {
    edge.server.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NoChannelServer, "this node runs no channel server")
    })
}

impl From<JoinError> for ApiError {
    fn from(e: JoinError) -> ApiError {
        let message = e.to_string();
        match e {
            JoinError::BadOffer(_) => ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidSdp, message),
            JoinError::ChannelFull { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ChannelFull, message)
            }
            JoinError::TooManyChannels { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NodeFull, message)
            }
            JoinError::UidTaken { .. } => ApiError::new(StatusCode::CONFLICT, ErrorCode::UidTaken, message),
            JoinError::Busy { .. } => ApiError {
                retry_after_secs: Some(1),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NodeBusy, message)
            },
            JoinError::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ShuttingDown, message),
        }
    }
}

/// `POST /rtc/whip` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WhipQuery {
    /// The channel the client means to join; refused unless the token is for it.
    pub channel: Option<String>,
}

/// Join a channel: an SDP offer in, the SDP answer out (WHIP, RFC 9725).
#[utoipa::path(
    post, path = "/rtc/whip", tag = "rtc",
    params(WhipQuery),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer: audio (send-receive, plus receive-only lines to hear more participants) and a data channel"),
    responses(
        (status = 201, description = "The SDP answer; `Location` is the resource to PATCH (renew) or DELETE (leave)", body = String, content_type = "application/sdp"),
        (status = 400, body = ErrorEnvelope), (status = 401, description = "The token is missing, malformed, tampered or expired", body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn whip_join(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<WhipQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let edge = &state.inner.rtc;
    let grant = check_token(&state, &headers)?;
    if let Some(channel) = &query.channel
        && grant.channel != *channel
    {
        return Err(token_refused(format!("the token is for channel {:?}, not {channel:?}", grant.channel)));
    }
    let is_sdp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/sdp")));
    if !is_sdp {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "the offer must be sent as application/sdp",
        ));
    }
    let offer = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidSdp, "the offer is not UTF-8"))?;
    let server = channel_server(edge)?;
    let (app, channel, uid) = (grant.app.clone(), grant.channel.clone(), grant.uid.clone());
    let (participant, answer) = server.join(grant, offer).await?;
    let resource = hex_id();
    edge.resources.lock().expect("lock").insert(resource.clone(), Resource { participant, app, channel, uid });
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/sdp".to_owned()), (header::LOCATION, format!("/rtc/whip/{resource}"))],
        answer,
    )
        .into_response())
}

fn hex_id() -> String {
    rand::random::<[u8; 16]>().iter().map(|b| format!("{b:02x}")).collect()
}

/// The WHIP routes, open to browsers on any origin (RFC 9725 §4.5 asks WHIP endpoints for CORS):
/// they are authorized by bearer tokens, never by cookies, so no origin can borrow a session.
pub fn whip_routes() -> axum::Router<AppState> {
    use axum::http::Method;
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::LOCATION]);
    axum::Router::new()
        .route("/rtc/whip", axum::routing::post(whip_join))
        .route("/rtc/whip/{resource}", axum::routing::patch(whip_renew).delete(whip_leave))
        .layer(cors)
}

/// Renew a participant's token: send a newer token for the same channel and uid.
#[utoipa::path(
    patch, path = "/rtc/whip/{resource}", tag = "rtc",
    params(("resource" = String, Path, description = "From the Location of the join")),
    responses((status = 204, description = "Renewed"), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn whip_renew(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let edge = &state.inner.rtc;
    let grant = check_token(&state, &headers)?;
    let found = edge.resources.lock().expect("lock").get(&resource).cloned();
    let found = found.ok_or_else(|| ApiError::not_found("WHIP resource"))?;
    if grant.app != found.app || grant.channel != found.channel || grant.uid != found.uid {
        return Err(token_refused(format!(
            "the token is for {}/{}, not {}/{}",
            grant.channel, grant.uid, found.channel, found.uid
        )));
    }
    if channel_server(edge)?.renew(found.participant, grant.expires_at).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        edge.resources.lock().expect("lock").remove(&resource);
        Err(ApiError::not_found("WHIP resource"))
    }
}

/// Leave the channel.
#[utoipa::path(
    delete, path = "/rtc/whip/{resource}", tag = "rtc",
    params(("resource" = String, Path, description = "From the Location of the join")),
    responses((status = 200, description = "Left"), (status = 404, body = ErrorEnvelope)),
)]
pub async fn whip_leave(State(state): State<AppState>, Path(resource): Path<String>) -> Result<StatusCode, ApiError> {
    let edge = &state.inner.rtc;
    let found = edge.resources.lock().expect("lock").remove(&resource);
    let found = found.ok_or_else(|| ApiError::not_found("WHIP resource"))?;
    if channel_server(edge)?.leave(found.participant).await {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::not_found("WHIP resource (the participant had already left)"))
    }
}

/// One participant of a channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelParticipant {
    pub uid: String,
    /// `person` (on WebRTC) or `agent` (in process).
    pub kind: String,
    /// For people: the WebRTC connection is up.
    pub connected: bool,
    /// Seconds since it joined.
    pub joined_secs: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    pub channel: String,
    pub participants: Vec<ChannelParticipant>,
}

/// Who is in one of the caller's app's channels on this node now.
#[utoipa::path(
    get, path = "/v1/channels/{channel}", tag = "rtc",
    params(("channel" = String, Path, description = "The channel name")),
    responses((status = 200, body = ChannelView), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)),
    security(("basic" = []))
)]
pub async fn channel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(channel): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    let channel = ChannelName::new(channel).map_err(|e| ApiError::invalid("channel", e.0))?;
    let server = channel_server(&state.inner.rtc)?;
    let participants = server
        .participants(caller.app.as_str(), channel.as_str())
        .await
        .into_iter()
        .map(|p| ChannelParticipant {
            uid: p.uid,
            kind: if p.agent { "agent" } else { "person" }.to_owned(),
            connected: p.connected,
            joined_secs: p.joined_secs,
        })
        .collect();
    Ok(Json(ChannelView { channel: channel.to_string(), participants }))
}
