//! Alibaba Cloud AICallKit and IMS/ICE: the AICallKit app-server API (`POST /api/v1|v2/aiagent/{action}`,
//! HTTP Basic, snake_case JSON), the IMS/ICE OpenAPI (`POST /` with `Action` and `Version=2020-11-09`,
//! signed with the V3 or the RPC signature), ARTC `rtc_auth_token`s, and the agent callbacks.
//! `docs/dialects/alibaba.md` lists what is supported and the choices made.
//!
//! An instance id (`InstanceId`, `ai_agent_instance_id`) is the native agent id. What the vendor
//! API must echo later (`AIAgentId`, the ids in the channel, `SessionId`, `UserData`, the configs as
//! sent) is kept as [`OriginData`] in the spec's origin.

pub mod app_server;
pub mod config;
pub mod openapi;
pub mod signature;
pub mod token;
pub mod webhooks;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::StatusCode;
use colloquy_model::{
    AgentId, AgentName, AgentRecord, AgentSpec, ChannelName, Dialect, IdleTimeout, Origin, RemoteUids, Uid,
};
use colloquy_supervisor::SupervisorError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use colloquy_http::AppState;
use colloquy_http::apps::App;
use colloquy_http::error::ApiError;

/// Alibaba's dialect, with what it keeps between events: which instances had their
/// `session_start` callback.
#[derive(Debug, Default)]
pub struct Alibaba {
    session_starts: webhooks::SessionStarts,
}

impl Alibaba {
    /// The app-server routes (the OpenAPI is reached through `POST /`, which the crate routes by
    /// [`openapi::is_openapi_request`]).
    pub fn routes(&self) -> Router<AppState> {
        app_server::routes()
    }

    /// An OpenAPI action.
    pub async fn action(&self, state: AppState, request: crate::RawRequest) -> axum::response::Response {
        openapi::action(state, request).await
    }

    /// The callbacks of `event`.
    pub fn webhooks(&self, event: &colloquy_model::AgentEvent) -> Vec<colloquy_store::OutgoingWebhook> {
        webhooks::format(event, &self.session_starts)
    }
}

/// The only `workflow_type` this server runs.
pub const VOICE_CHAT: &str = "VoiceChat";

/// Why a request failed, before it is put in either envelope.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    /// Alibaba's error code (`InvalidParameter`, `MissingParameter`, …).
    pub code: String,
    pub message: String,
    /// Seconds, for `Retry-After` on `Throttling.User`.
    pub retry_after_secs: Option<u64>,
}

impl Failure {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Failure {
        Failure { status, code: code.to_owned(), message: message.into(), retry_after_secs: None }
    }

    /// 400 `InvalidParameter`.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, "InvalidParameter", message)
    }

    /// 400 `MissingParameter`, naming the parameter as Alibaba does.
    pub fn missing(name: &str) -> Failure {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
        )
    }

    /// 404: no instance with this id for this app.
    pub fn instance_not_found(id: &str) -> Failure {
        Failure::new(
            StatusCode::NOT_FOUND,
            "InvalidInstanceId.NotFound",
            format!("The specified instance {id:?} does not exist."),
        )
    }
}

impl From<SupervisorError> for Failure {
    fn from(e: SupervisorError) -> Failure {
        let message = e.to_string();
        match e {
            SupervisorError::NotFound => Failure::instance_not_found(""),
            SupervisorError::NameTaken(_) => Failure::invalid(message),
            SupervisorError::AgentLimit { .. } => {
                Failure::new(StatusCode::FORBIDDEN, "Forbidden.ConcurrencyLimitExceeded", message)
            }
            SupervisorError::NotRunning(_) => {
                Failure::new(StatusCode::FORBIDDEN, "Forbidden.InstanceNotExecuting", message)
            }
            SupervisorError::NoMediaSession => Failure::new(StatusCode::FORBIDDEN, "Forbidden.NoMediaSession", message),
            SupervisorError::ShuttingDown | SupervisorError::StartFailed(_) | SupervisorError::NotRecorded(_) => {
                Failure::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message)
            }
            SupervisorError::Store(colloquy_store::StoreError::Database(e)) => {
                tracing::error!(error = %e, "records failed");
                Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    format!("the records could not be written ({e}); nothing was done"),
                )
            }
            SupervisorError::Store(e) => {
                tracing::error!(error = %e, "records failed");
                Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "the records could not be read or written",
                )
            }
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        if e.status == StatusCode::TOO_MANY_REQUESTS {
            return Failure {
                retry_after_secs: e.retry_after_secs,
                ..Failure::new(StatusCode::TOO_MANY_REQUESTS, "Throttling.User", e.message)
            };
        }
        let message = match &e.field {
            Some(field) if !e.message.contains(field.as_str()) => format!("{field}: {}", e.message),
            _ => e.message,
        };
        Failure::new(e.status, "InvalidParameter", message)
    }
}

/// Puts a failure's `Retry-After` on its answer, in either envelope.
pub fn with_retry_after(
    mut response: axum::response::Response,
    failure_retry: Option<u64>,
) -> axum::response::Response {
    if let Some(secs) = failure_retry {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    }
    response
}

/// What the dialect keeps about an instance, in `spec.origin.data`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OriginData {
    pub ai_agent_id: String,
    pub channel_id: String,
    pub agent_user_id: String,
    /// The user the agent listens to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    pub workflow_type: String,
    /// `AgentConfig` as it was sent (a JSON string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_config: Option<String>,
    /// `TemplateConfig` as it was sent (a JSON string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_config: Option<String>,
}

impl OriginData {
    /// The data of an agent's origin; an agent started elsewhere gets what its spec says.
    pub fn of(record: &AgentRecord) -> OriginData {
        let kept = match (&record.spec.origin.dialect, &record.spec.origin.data) {
            (Dialect::Alibaba, Some(data)) => serde_json::from_str(data).ok(),
            _ => None,
        };
        kept.unwrap_or_else(|| OriginData {
            channel_id: record.spec.channel.to_string(),
            agent_user_id: record.spec.agent_uid.to_string(),
            workflow_type: VOICE_CHAT.to_owned(),
            ..OriginData::default()
        })
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// 32 random lower-case hex digits: a UUID without dashes, as AICallKit's ids are.
pub fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A request id in Alibaba's upper-case UUID form.
pub fn request_id() -> String {
    let hex = hex::encode_upper(rand::random::<[u8; 16]>());
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Checks a uid-like parameter.
pub fn uid_param(field: &str, value: &str) -> Result<Uid, Failure> {
    Uid::new(value).map_err(|e| Failure::invalid(format!("{field}: {e}")))
}

/// Checks a channel parameter.
pub fn channel_param(field: &str, value: &str) -> Result<ChannelName, Failure> {
    ChannelName::new(value).map_err(|e| Failure::invalid(format!("{field}: {e}")))
}

/// Reads `AgentConfig` and/or the legacy `TemplateConfig` (JSON strings) into one config.
pub fn read_configs(
    agent_field: &str,
    agent_config: Option<&str>,
    template_field: &str,
    template_config: Option<&str>,
) -> Result<config::AgentConfig, Failure> {
    let agent_config = agent_config.filter(|s| !s.trim().is_empty());
    let template_config = template_config.filter(|s| !s.trim().is_empty());
    match (agent_config, template_config) {
        (Some(text), template) => {
            if template.is_some() {
                tracing::warn!(
                    field = template_field,
                    "ignored: AgentConfig takes precedence over the deprecated TemplateConfig"
                );
            }
            config::parse_json_param(agent_field, text)
        }
        (None, Some(text)) => {
            config::parse_json_param::<config::TemplateConfig>(template_field, text)?.into_agent_config(template_field)
        }
        (None, None) => Ok(config::AgentConfig::default()),
    }
}

/// An instance to start.
#[derive(Debug)]
pub struct Launch {
    pub channel: ChannelName,
    pub agent_uid: Uid,
    /// The user the agent listens to; anyone when `None`.
    pub user: Option<Uid>,
    pub config: config::AgentConfig,
    /// The parameter the config came in, for error messages.
    pub config_field: &'static str,
    pub origin: OriginData,
}

/// Starts an instance for `app`; answers once it runs.
pub async fn launch(state: &AppState, app: &App, launch: Launch) -> Result<AgentRecord, Failure> {
    let name = AgentName::new(format!("ali-{}", random_id())).map_err(|e| Failure::invalid(e.0))?;
    let mut spec = AgentSpec::with_defaults(name, launch.channel);
    spec.agent_uid = launch.agent_uid;
    spec.remote_uids = match launch.user {
        Some(user) => RemoteUids::Only(vec![user]),
        None => RemoteUids::Any,
    };
    spec.idle_timeout = IdleTimeout::from_secs(config::DEFAULT_MAX_IDLE_SECS);
    config::apply(launch.config_field, launch.config, &mut spec)?;
    spec.callbacks = app.callbacks();
    spec.origin = Origin {
        dialect: Dialect::Alibaba,
        data: Some(serde_json::to_string(&launch.origin).expect("origin data serializes")),
    };
    Ok(state.supervisor().start(app.id.clone(), spec).await?)
}

/// The app's instance `id`.
pub async fn instance(state: &AppState, app: &App, id: &str) -> Result<AgentRecord, Failure> {
    state.supervisor().get(&app.id, &AgentId::from_string(id.to_owned())).await.map_err(|e| match e {
        SupervisorError::NotFound => Failure::instance_not_found(id),
        other => other.into(),
    })
}

/// `Executing` while the agent lives, `Finished` once it is over.
pub fn status_name(record: &AgentRecord) -> &'static str {
    if record.state.status().is_terminal() { "Finished" } else { "Executing" }
}

fn parsed(text: Option<&String>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
}

/// An instance in the OpenAPI's shape (`DescribeAIAgentInstance.Instance`, `ListAIAgentInstance.Instances[]`).
pub fn instance_json(record: &AgentRecord) -> Value {
    let data = OriginData::of(record);
    let modified = record.stopped_at.unwrap_or(record.created_at);
    json!({
        "InstanceId": record.id.as_str(),
        "AIAgentId": data.ai_agent_id,
        "Status": status_name(record),
        "RuntimeConfig": { "VoiceChat": { "AgentUserId": data.agent_user_id, "ChannelId": data.channel_id },
                           "AgentUserId": data.agent_user_id, "ChannelId": data.channel_id },
        "AgentConfig": parsed(data.agent_config.as_ref()),
        "TemplateConfig": parsed(data.template_config.as_ref()),
        "UserData": data.user_data.unwrap_or_default(),
        "SessionId": data.session_id.unwrap_or_default(),
        "CallLogUrl": "",
        "GmtCreate": signature::format_iso8601(u64::try_from(record.created_at.0 / 1000).unwrap_or(0)),
        "GmtModified": signature::format_iso8601(u64::try_from(modified.0 / 1000).unwrap_or(0)),
    })
}

/// Every agent of `app`, newest first (bounded).
pub async fn all_instances(state: &AppState, app: &App) -> Result<Vec<AgentRecord>, Failure> {
    const PAGE: u32 = 100;
    const MAX: usize = 10_000;
    let filter = colloquy_store::AgentFilter::default();
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = state.supervisor().list(&app.id, &filter, after, PAGE).await?;
        out.extend(page.agents);
        match page.next {
            Some(next) if out.len() < MAX => after = Some(next),
            _ => return Ok(out),
        }
    }
}
