//! Agora Conversational AI Engine, REST v2, under `/api/conversational-ai-agent/v2/projects/{appid}`.
//!
//! Auth: `{appid}` must be a configured app; then `Authorization: Basic base64(key:secret)` with
//! that app's key and secret (every agent of the app), or `Authorization: agora token=<AccessToken2>`
//! signed with the app's secret as its app certificate, which reaches only the agents of the
//! token's RTC channel and uid ([`Scope`]). Errors answer `{"detail", "reason"}` with Agora's status codes
//! and reasons. See `docs/dialects/agora.md`.

pub mod to_model;
pub mod token;
pub mod webhooks;
pub mod wire;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use colloquy_model::{AgentCommand, AgentId, AgentRecord, AgentStatus, ChannelName, TurnRecord};
use colloquy_store::{AgentFilter, ListCursor};
use colloquy_supervisor::SupervisorError;
use serde::Serialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use colloquy_http::AppState;
use colloquy_http::apps::App;
use colloquy_http::brake::Peer;
use colloquy_http::error::{ApiError, ErrorCode};

/// The path every route of this dialect starts with.
pub const BASE: &str = "/api/conversational-ai-agent/v2/projects/{appid}";

/// Agora's dialect. It keeps nothing between requests: its tokens and signatures say all.
#[derive(Clone, Copy, Debug, Default)]
pub struct Agora;

impl Agora {
    /// This dialect's routes.
    pub fn routes(&self) -> Router<AppState> {
        routes()
    }

    /// The notifications of `event`; an ended agent's carry its history and turns from `store`.
    pub async fn webhooks(
        &self,
        event: &colloquy_model::AgentEvent,
        store: &colloquy_store::Store,
    ) -> Vec<colloquy_store::OutgoingWebhook> {
        webhooks::format(event, store).await
    }
}

fn routes() -> Router<AppState> {
    let route = |path: &str| format!("{BASE}{path}");
    Router::new()
        .route(&route("/join"), post(join))
        .route(&route("/agents"), get(list))
        .route(&route("/agents/{agent_id}"), get(query))
        .route(&route("/agents/{agent_id}/leave"), post(leave))
        .route(&route("/agents/{agent_id}/update"), post(update))
        .route(&route("/agents/{agent_id}/speak"), post(speak))
        .route(&route("/agents/{agent_id}/interrupt"), post(interrupt))
        .route(&route("/agents/{agent_id}/think"), post(think))
        .route(&route("/agents/{agent_id}/history"), get(history))
        .route(&route("/agents/{agent_id}/turns"), get(turns))
}

// ---- errors ----

/// An error answer in Agora's form: `{"detail": "...", "reason": "..."}`.
#[derive(Debug)]
pub struct AgoraError {
    pub status: StatusCode,
    pub reason: &'static str,
    pub detail: String,
    retry_after_secs: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    detail: &'a str,
    reason: &'a str,
}

impl AgoraError {
    fn new(status: StatusCode, reason: &'static str, detail: impl Into<String>) -> AgoraError {
        AgoraError { status, reason, detail: detail.into(), retry_after_secs: None }
    }

    fn unauthorized(detail: impl Into<String>) -> AgoraError {
        AgoraError::new(StatusCode::UNAUTHORIZED, "InvalidPermission", detail)
    }

    fn forbidden(detail: impl Into<String>) -> AgoraError {
        AgoraError::new(StatusCode::FORBIDDEN, "InvalidPermission", detail)
    }
    fn not_found() -> AgoraError {
        AgoraError::new(StatusCode::NOT_FOUND, "TaskNotFound", "agent not found or has exited")
    }
}

impl IntoResponse for AgoraError {
    fn into_response(self) -> Response {
        let body = ErrorBody { detail: &self.detail, reason: self.reason };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The shared checks answer in the native envelope; this puts them in Agora's.
impl From<ApiError> for AgoraError {
    fn from(e: ApiError) -> AgoraError {
        let (status, reason) = match e.code {
            ErrorCode::MissingField => (StatusCode::BAD_REQUEST, "MissingRequiredField"),
            ErrorCode::InvalidField | ErrorCode::UnknownField => (StatusCode::BAD_REQUEST, "InvalidFieldValue"),
            ErrorCode::InvalidJson
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::PayloadTooLarge
            | ErrorCode::RequestTimeout => (e.status, "InvalidRequestBody"),
            ErrorCode::Unauthorized => (StatusCode::UNAUTHORIZED, "InvalidPermission"),
            ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ErrorCode::QuotaExceeded => (StatusCode::UNPROCESSABLE_ENTITY, "ResourceQuotaLimitExceeded"),
            ErrorCode::NotFound | ErrorCode::AgentNotRunning => (StatusCode::NOT_FOUND, "TaskNotFound"),
            ErrorCode::NameConflict => (StatusCode::CONFLICT, "TaskConflict"),
            ErrorCode::ShuttingDown | ErrorCode::NoMediaSession | ErrorCode::RecordsUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
            }
            ErrorCode::StartFailed => (StatusCode::SERVICE_UNAVAILABLE, "ResourceAllocationFailed"),
            _ => (e.status, "InternalError"),
        };
        AgoraError { status, reason, detail: e.message, retry_after_secs: e.retry_after_secs }
    }
}

impl From<SupervisorError> for AgoraError {
    fn from(e: SupervisorError) -> AgoraError {
        match e {
            // Agora answers 404 for an agent that is "not found or has exited".
            SupervisorError::NotFound => AgoraError::not_found(),
            SupervisorError::NotRunning(status) => {
                AgoraError::new(StatusCode::NOT_FOUND, "TaskNotFound", format!("the agent has exited ({status})"))
            }
            e => ApiError::from(e).into(),
        }
    }
}

type AgoraResult<T> = Result<T, AgoraError>;

// ---- auth ----

/// Who called, and what their credentials reach.
struct Caller {
    app: App,
    scope: Scope,
}

/// What a caller's credentials reach.
enum Scope {
    /// Basic credentials: every agent of the app.
    App,
    /// An RTC token: the agents in its channel with its uid (any uid for a uid-0 token).
    Channel(token::RestGrant),
}

impl Scope {
    /// Refuses, with 403, an agent in `channel` as `uid` that the credentials do not reach.
    fn check(&self, channel: &str, uid: &str) -> AgoraResult<()> {
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
    async fn agent(&self, state: &AppState, id: &AgentId) -> AgoraResult<AgentRecord> {
        let record = state.supervisor().get(&self.app.id, id).await?;
        self.scope.check(record.spec.channel.as_str(), record.spec.agent_uid.as_str())?;
        Ok(record)
    }
}

/// Authenticates under the brute-force brake (per client address and `{appid}`), then takes one
/// request from the app's rate limit.
fn authorize(state: &AppState, peer: Peer, appid: &str, headers: &HeaderMap) -> AgoraResult<Caller> {
    let caller = state.braked(peer, &format!("agora:{appid}"), || authenticate(state, appid, headers))?;
    state.rate_limit(&caller.app.key)?;
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
        let key_ok = app.key.as_bytes().ct_eq(key.as_bytes());
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

fn now_secs() -> i64 {
    colloquy_supervisor::now().0 / 1000
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> AgoraResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AgoraError::new(StatusCode::BAD_REQUEST, "InvalidRequestBody", "the request body is empty"));
    }
    Ok(colloquy_http::extract::parse_json(body)?)
}

fn parse_query<T: serde::de::DeserializeOwned + Default>(query: Option<&str>) -> AgoraResult<T> {
    let Some(query) = query.filter(|q| !q.is_empty()) else { return Ok(T::default()) };
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        AgoraError::new(StatusCode::BAD_REQUEST, "InvalidFieldValue", format!("{field}: {}", e.into_inner()))
    })
}

fn status_name(record: &AgentRecord) -> &'static str {
    record.state.status().as_str()
}

fn agent_info(record: &AgentRecord) -> wire::AgentInfo {
    wire::AgentInfo {
        agent_id: record.id.to_string(),
        create_ts: secs(record.created_at.0),
        status: status_name(record),
    }
}

// ---- handlers ----

async fn join(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> AgoraResult<axum::Json<wire::AgentInfo>> {
    let Caller { app, scope } = authorize(&state, peer, &appid, &headers)?;
    if let Ok(value) = serde_json::from_slice::<Value>(&body) {
        to_model::warn_unknown_properties(&value);
    }
    let request: wire::JoinRequest = parse(&body)?;
    let spec = to_model::spec_from_join(request, app.callbacks())?;
    scope.check(spec.channel.as_str(), spec.agent_uid.as_str())?;
    let name = spec.name.clone();
    let record = state.supervisor().start(app.id.clone(), spec).await.map_err(|e| match e {
        SupervisorError::NameTaken(_) => AgoraError::new(
            StatusCode::CONFLICT,
            "TaskConflict",
            format!("a running agent of this app is already named {name:?}"),
        ),
        e => e.into(),
    })?;
    Ok(axum::Json(agent_info(&record)))
}

async fn leave(
    State(state): State<AppState>,
    Path((appid, agent_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
) -> AgoraResult<StatusCode> {
    let caller = authorize(&state, peer, &appid, &headers)?;
    let id = AgentId::from_string(agent_id);
    let current = caller.agent(&state, &id).await?;
    // Agora answers 404 for an agent that already exited.
    if current.state.status().is_terminal() {
        return Err(AgoraError::not_found());
    }
    state.supervisor().leave(&caller.app.id, &id).await?;
    Ok(StatusCode::OK)
}

async fn update(
    State(state): State<AppState>,
    Path((appid, agent_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> AgoraResult<axum::Json<wire::AgentInfo>> {
    let caller = authorize(&state, peer, &appid, &headers)?;
    let request: wire::UpdateRequest = parse(&body)?;
    let update = to_model::update_from_request(request)?;
    let id = AgentId::from_string(agent_id);
    let record = caller.agent(&state, &id).await?;
    let record = if update.is_empty() {
        // Only a new token: the in-process agent needs none; check that it still runs.
        if record.state.status().is_terminal() {
            return Err(AgoraError::not_found());
        }
        record
    } else {
        state.supervisor().update(&caller.app.id, &id, update).await?
    };
    Ok(axum::Json(agent_info(&record)))
}

async fn query(
    State(state): State<AppState>,
    Path((appid, agent_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
) -> AgoraResult<axum::Json<wire::QueryResponse>> {
    let caller = authorize(&state, peer, &appid, &headers)?;
    let record = caller.agent(&state, &AgentId::from_string(agent_id)).await?;
    let message = match record.state.reason() {
        Some(reason) if record.state.status() == AgentStatus::Failed => {
            format!("agent exits with reason: {}", reason.message())
        }
        Some(reason) => reason.message(),
        None => String::new(),
    };
    Ok(axum::Json(wire::QueryResponse {
        message,
        start_ts: secs(record.created_at.0),
        stop_ts: record.stopped_at.map(|t| secs(t.0)),
        name: record.spec.name.to_string(),
        status: status_name(&record),
        agent_id: record.id.to_string(),
    }))
}

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;
/// `from_time` defaults to two hours ago.
const DEFAULT_WINDOW_SECS: i64 = 2 * 3600;

fn decode_cursor(cursor: &str) -> AgoraResult<ListCursor> {
    colloquy_http::fields::decode_cursor(cursor).map_err(AgoraError::from)
}

fn parse_states(states: &str) -> AgoraResult<Vec<AgentStatus>> {
    states
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u8>()
                .ok()
                .and_then(|code| AgentStatus::ALL.into_iter().find(|status| status.code() == code))
                .or_else(|| s.parse().ok())
                .ok_or_else(|| {
                    AgoraError::new(
                        StatusCode::BAD_REQUEST,
                        "InvalidFieldValue",
                        format!("state {s:?} is not a state; expected numbers 0 to 6 separated by commas"),
                    )
                })
        })
        .collect()
}

async fn list(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    peer: Peer,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> AgoraResult<axum::Json<wire::ListResponse>> {
    let Caller { app, scope } = authorize(&state, peer, &appid, &headers)?;
    let q: wire::ListQuery = parse_query(raw.as_deref())?;
    let mut filter = AgentFilter::default();
    let channel = match (q.channel.filter(|c| !c.is_empty()), &scope) {
        // A token lists its own channel only.
        (Some(channel), Scope::Channel(grant)) if channel != grant.channel => {
            return Err(AgoraError::forbidden(format!(
                "the token grants channel {:?} only, not {channel:?}",
                grant.channel
            )));
        }
        (None, Scope::Channel(grant)) => Some(grant.channel.clone()),
        (channel, _) => channel,
    };
    if let Some(channel) = channel {
        filter.channel =
            Some(ChannelName::new(channel).map_err(|e| {
                AgoraError::new(StatusCode::BAD_REQUEST, "InvalidFieldValue", format!("channel: {}", e.0))
            })?);
    }
    filter.statuses = match q.state.as_deref() {
        Some(states) => parse_states(states)?,
        None => vec![AgentStatus::Running],
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AgoraError::new(
            StatusCode::BAD_REQUEST,
            "InvalidFieldValue",
            format!("limit is {limit}; it must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let now = now_secs();
    let from = q.from_time.unwrap_or(now - DEFAULT_WINDOW_SECS);
    let to = q.to_time.unwrap_or(i64::MAX);
    let mut after = q.cursor.as_deref().filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
    let mut found: Vec<AgentRecord> = Vec::new();
    let mut next = None;
    // Newest first. Each store page asks for no more than is still missing, so that the store's
    // cursor never skips an agent this answer did not return.
    loop {
        let missing = limit - found.len() as u32;
        let page = state.supervisor().list(&app.id, &filter, after, missing).await?;
        let mut older_than_window = false;
        for record in page.agents {
            let created = secs(record.created_at.0);
            if created < from {
                older_than_window = true;
                break;
            }
            let reached = scope.check(record.spec.channel.as_str(), record.spec.agent_uid.as_str()).is_ok();
            if created <= to && reached {
                found.push(record);
            }
        }
        if older_than_window || page.next.is_none() {
            break;
        }
        if found.len() as u32 == limit {
            next = page.next;
            break;
        }
        after = page.next;
    }
    let list: Vec<wire::ListItem> = found
        .iter()
        .map(|r| wire::ListItem { start_ts: secs(r.created_at.0), status: status_name(r), agent_id: r.id.to_string() })
        .collect();
    Ok(axum::Json(wire::ListResponse {
        data: wire::ListData { count: list.len(), list },
        meta: wire::ListMeta {
            cursor: next.map(colloquy_http::fields::encode_cursor).unwrap_or_default(),
            total: found.len(),
        },
        status: "ok",
    }))
}

async fn command(
    state: &AppState,
    caller: &Caller,
    agent_id: String,
    command: AgentCommand,
) -> AgoraResult<wire::CommandResponse> {
    let id = AgentId::from_string(agent_id);
    let record = caller.agent(state, &id).await?;
    state.supervisor().command(&caller.app.id, &id, command).await?;
    Ok(wire::CommandResponse {
        agent_id: id.to_string(),
        channel: record.spec.channel.to_string(),
        start_ts: now_secs(),
    })
}

async fn speak(
    State(state): State<AppState>,
    Path((appid, agent_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> AgoraResult<axum::Json<wire::CommandResponse>> {
    let caller = authorize(&state, peer, &appid, &headers)?;
    let command_ = to_model::speak_from_request(parse(&body)?)?;
    Ok(axum::Json(command(&state, &caller, agent_id, command_).await?))
}

async fn interrupt(
    State(state): State<AppState>,
    Path((appid, agent_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> AgoraResult<axum::Json<wire::CommandResponse>> {
    let caller = authorize(&state, peer, &appid, &headers)?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let _: serde_json::Map<String, Value> = serde_json::from_slice(&body).map_err(|e| {
            AgoraError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequestBody",
                format!("the body must be a JSON object: {e}"),
            )
        })?;
    }
    Ok(axum::Json(command(&state, &caller, agent_id, AgentCommand::Interrupt).await?))
}

async fn think(
    State(state): State<AppState>,
    Path((appid, agent_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> AgoraResult<axum::Json<wire::CommandResponse>> {
    let caller = authorize(&state, peer, &appid, &headers)?;
    let command_ = to_model::think_from_request(parse(&body)?)?;
    Ok(axum::Json(command(&state, &caller, agent_id, command_).await?))
}

async fn history(
    State(state): State<AppState>,
    Path((appid, agent_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
) -> AgoraResult<axum::Json<wire::HistoryResponse>> {
    let caller = authorize(&state, peer, &appid, &headers)?;
    let id = AgentId::from_string(agent_id);
    let record = caller.agent(&state, &id).await?;
    let entries = state.supervisor().history(&caller.app.id, &id).await?;
    Ok(axum::Json(wire::HistoryResponse {
        agent_id: id.to_string(),
        start_ts: secs(record.created_at.0),
        status: status_name(&record),
        contents: entries
            .into_iter()
            .map(|e| wire::HistoryItem { role: e.speaker.as_str(), content: e.content })
            .collect(),
    }))
}

const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;

async fn turns(
    State(state): State<AppState>,
    Path((appid, agent_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> AgoraResult<axum::Json<wire::TurnsResponse>> {
    let caller = authorize(&state, peer, &appid, &headers)?;
    let q: wire::TurnsQuery = parse_query(raw.as_deref())?;
    let page_index = q.page_index.unwrap_or(1);
    let page_size = q.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page_index == 0 {
        return Err(AgoraError::new(StatusCode::BAD_REQUEST, "InvalidFieldValue", "page_index starts at 1"));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(AgoraError::new(
            StatusCode::BAD_REQUEST,
            "InvalidFieldValue",
            format!("page_size is {page_size}; it must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    let id = AgentId::from_string(agent_id);
    let record = caller.agent(&state, &id).await?;
    let all = state.supervisor().turns(&caller.app.id, &id).await?;
    let total = all.len();
    let total_pages = total.div_ceil(page_size as usize) as u32;
    let start = (page_index as usize - 1).saturating_mul(page_size as usize);
    let turns = all.iter().skip(start).take(page_size as usize).map(|t| turn_json(&record, t, false)).collect();
    Ok(axum::Json(wire::TurnsResponse {
        agent_id: id.to_string(),
        name: record.spec.name.to_string(),
        channel: record.spec.channel.to_string(),
        total_turn_count: total,
        pagination: wire::Pagination { page_index, total_pages, is_last_page: page_index >= total_pages },
        turns,
    }))
}

/// A turn as Agora shows it (§ turn object). `segments_by_name`: the webhook's form of the
/// segmented latency (an object), rather than the REST list of `{name, latency}`.
pub(crate) fn turn_json(record: &AgentRecord, turn: &TurnRecord, segments_by_name: bool) -> Value {
    use colloquy_model::{TurnEnd, TurnStart};
    let start_type = match turn.start {
        TurnStart::VoiceInput => "voice_input",
        TurnStart::Greeting => "greeting",
        TurnStart::SilencePrompt => "silence_timeout",
        TurnStart::ApiSpeak => "api_speak",
        TurnStart::ApiThink => "api_think",
    };
    let end_type = match turn.end {
        TurnEnd::Ok => "ok",
        TurnEnd::Interrupted => "interrupted",
        TurnEnd::Ignored => "ignored",
        TurnEnd::Error => "error",
    };
    let m = &turn.metrics;
    let segments: Vec<(&str, u32)> = [
        ("algorithm_processing", m.eou_delay_ms),
        ("asr_ttlw", m.asr_ttlw_ms),
        ("llm_ttft", m.llm_ttft_ms),
        ("llm_ftfs", m.llm_ttfs_ms),
        ("tts_ttfb", m.tts_ttfb_ms),
    ]
    .into_iter()
    .filter_map(|(name, v)| v.map(|v| (name, v)))
    .collect();
    let segmented = if segments_by_name {
        Value::Object(segments.iter().map(|(n, v)| ((*n).to_owned(), json!(v))).collect())
    } else {
        Value::Array(segments.iter().map(|(n, v)| json!({"name": n, "latency": v})).collect())
    };
    json!({
        "agent_id": record.id.to_string(),
        "channel": record.spec.channel.to_string(),
        "turn_id": turn.turn_id,
        "start": {"start_at": turn.started_at.0, "type": start_type, "metadata": {}},
        "end": {"end_at": turn.ended_at.0, "type": end_type, "metadata": {}},
        "metrics": {"e2e_latency_ms": m.e2e_ms, "segmented_latency_ms": segmented},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_states_parse() {
        assert_eq!(decode_cursor(&colloquy_http::fields::encode_cursor(ListCursor(7))).unwrap(), ListCursor(7));
        assert_eq!(decode_cursor("nope").unwrap_err().reason, "InvalidFieldValue");
        assert_eq!(parse_states("0, 2,6").unwrap(), [AgentStatus::Idle, AgentStatus::Running, AgentStatus::Failed]);
        assert_eq!(parse_states("RUNNING").unwrap(), [AgentStatus::Running]);
        assert!(parse_states("9").is_err());
    }
}
