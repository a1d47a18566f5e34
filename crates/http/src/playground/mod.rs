//! The playground: a page at `/` where a person talks to an agent from the browser, and the
//! endpoint behind its Talk button.
//!
//! - `GET /`, `GET /playground/app.js`, `GET /playground/style.css`: plain HTML, CSS and the page's
//!   JavaScript, built into the binary. Always served. The page is a small consumer of
//!   `@colloquy/client` (`clients/js`), served as `GET /playground/colloquy-client.js`: its ES module
//!   bundle, committed here by `npm run build` so that `cargo build` needs no npm (`npm test` in
//!   `clients/js`, run by `scripts/test`, fails when the committed bundle is not that of the sources).
//! - `POST /playground/session` (no Basic auth): starts an agent of the native app with the embedded
//!   defaults in a fresh channel, and answers an RTC token for the person. Only when the playground
//!   is enabled (`colloquy serve` turns it on by default only with generated dev credentials);
//!   otherwise 404 with the native error envelope.
//! - `POST /playground/session/{session}/token`: a fresh RTC token for the session's person, for the
//!   page to renew its call with (WHIP PATCH) before the old one expires.
//! - `DELETE /playground/session/{session}`: the agent leaves. The session id is 128-bit random, so
//!   the URL is the capability, as with WHIP resources.
//!
//! It is a safe dev toy: at most [`MAX_LIVE_SESSIONS`] playground agents live at once, each leaves
//! by itself [`IDLE_TIMEOUT_SECS`] after its person is gone, and the token lasts [`TOKEN_LIFETIME_SECS`].
//! No CORS headers: only the page's own origin can read the answers, and JSON bodies need a preflight
//! from any other origin.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use colloquy_model::{AgentId, AgentName, AppId};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::extract::OptionalJson;
use crate::native::{to_model, wire};

/// The most playground agents live at once on this node.
pub const MAX_LIVE_SESSIONS: usize = 3;
/// A playground agent leaves this long after its person is gone (or after its start, if nobody joins).
pub const IDLE_TIMEOUT_SECS: u32 = 30;
/// How long the person's RTC token is valid: the longest a playground call lasts.
pub const TOKEN_LIFETIME_SECS: u64 = 30 * 60;
/// The person's uid in the channel.
pub const UID: &str = "you";
/// What the agent says when the person joins.
pub const GREETING: &str = "Hi! Ask me anything.";
/// Keywords that interrupt in `keywords` mode when the page sends none.
pub const DEFAULT_KEYWORDS: &[&str] = &["stop", "wait"];

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const CLIENT_JS: &str = include_str!("colloquy-client.js");
const STYLE_CSS: &str = include_str!("style.css");

/// The page's own assets and nothing else: no inline scripts or styles, no other origins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The playground's state: whether it is on, and its live sessions.
#[derive(Debug)]
pub struct Playground {
    enabled: bool,
    /// By session id.
    sessions: Mutex<HashMap<String, Session>>,
}

#[derive(Clone, Debug)]
struct Session {
    name: AgentName,
    channel: String,
    /// `None` while the agent is starting.
    agent: Option<AgentId>,
}

impl Playground {
    pub fn new(enabled: bool) -> Playground {
        Playground { enabled, sessions: Mutex::new(HashMap::new()) }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// The page and its assets, always; the session endpoints, which answer 404 when the playground is off.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/playground/app.js", get(app_js))
        .route("/playground/style.css", get(style_css))
        .route("/playground/colloquy-client.js", get(client_js))
        .route("/playground/session", post(start_session))
        .route("/playground/session/{session}/token", post(renew_token))
        .route("/playground/session/{session}", delete(end_session))
        .method_not_allowed_fallback(crate::method_not_allowed)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The page with the defaults filled in: the default system prompt and the local voices.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let voices: String = crate::fields::LOCAL_VOICES
        .iter()
        .map(|voice| format!("<option value=\"{0}\">{0} (Piper, local)</option>", escape_html(voice)))
        .collect();
    INDEX_HTML
        .replace("{{DEFAULT_PROMPT}}", &escape_html(colloquy_model::Llm::DEFAULT_SYSTEM_PROMPT))
        .replace("{{VOICE_OPTIONS}}", &voices)
});

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn index() -> Response {
    let mut response = asset("text/html; charset=utf-8", PAGE.as_str());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn client_js() -> Response {
    asset("text/javascript; charset=utf-8", CLIENT_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// `POST /playground/session`: the agent's settings, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The agent's system prompt. Default: the embedded default prompt.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// A local voice. Default `en_US-joe-medium`.
    #[serde(default)]
    pub voice: Option<String>,
    /// Default `start_of_speech`.
    #[serde(default)]
    pub interruption_mode: Option<PlaygroundInterruption>,
    /// The words that interrupt in `keywords` mode. Default `["stop", "wait"]`.
    #[serde(default)]
    pub keywords: Option<Vec<String>>,
}

/// How the person can cut the agent off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaygroundInterruption {
    /// Speaking over the agent for a moment interrupts it.
    StartOfSpeech,
    /// Only the keywords interrupt.
    Keywords,
    /// Nothing interrupts; speech over the agent is answered after it.
    Off,
}

/// The answer: everything the page needs to join the call.
#[derive(Debug, Serialize)]
pub struct SessionAnswer {
    /// DELETE `/playground/session/{session}` to end the call.
    pub session: String,
    pub agent_id: String,
    pub channel: String,
    pub uid: String,
    /// The RTC token for `uid` in `channel`.
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// Where to POST the SDP offer (WHIP) with `Authorization: Bearer <token>`.
    pub whip_url: String,
}

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "the playground is off on this server: it is on by default only when the server runs with the API \
         credentials it generated; set `[playground] enabled = true` in its config file to turn it on",
    )
}

fn hex_id(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// The native API's field names in errors, as the playground's request names them.
fn playground_error(mut error: ApiError) -> ApiError {
    const NAMES: [(&str, &str); 4] = [
        ("llm.system_messages[0].content", "system_prompt"),
        ("tts.voice", "voice"),
        ("interruption.keywords", "keywords"),
        ("interruption.mode", "interruption_mode"),
    ];
    for (native, ours) in NAMES {
        error.message = error.message.replace(native, ours);
        if let Some(rest) = error.field.as_deref().and_then(|f| f.strip_prefix(native)) {
            error.field = Some(format!("{ours}{rest}"));
        }
    }
    error
}

/// The agent's configuration: the embedded defaults, a fresh channel, the page's settings.
fn agent_config(request: SessionRequest, suffix: &str) -> Result<wire::AgentConfig, ApiError> {
    let interruption = match request.interruption_mode.unwrap_or(PlaygroundInterruption::StartOfSpeech) {
        PlaygroundInterruption::StartOfSpeech => {
            if request.keywords.is_some() {
                return Err(ApiError::invalid("keywords", "keywords applies only to interruption_mode \"keywords\""));
            }
            None
        }
        PlaygroundInterruption::Keywords => Some(wire::InterruptionConfig {
            mode: Some(wire::InterruptionMode::Keywords),
            keywords: Some(
                request.keywords.unwrap_or_else(|| DEFAULT_KEYWORDS.iter().map(|k| (*k).to_owned()).collect()),
            ),
            ..Default::default()
        }),
        PlaygroundInterruption::Off => {
            if request.keywords.is_some() {
                return Err(ApiError::invalid("keywords", "keywords applies only to interruption_mode \"keywords\""));
            }
            Some(wire::InterruptionConfig { enabled: Some(false), ..Default::default() })
        }
    };
    Ok(wire::AgentConfig {
        name: format!("playground-{suffix}"),
        channel: format!("play-{suffix}"),
        idle_timeout: Some(IDLE_TIMEOUT_SECS),
        llm: request.system_prompt.map(|content| wire::LlmConfig {
            system_messages: Some(vec![wire::PromptMessage { role: wire::PromptRole::System, content }]),
            ..Default::default()
        }),
        tts: request.voice.map(|voice| wire::TtsConfig { voice: Some(voice), ..Default::default() }),
        interruption,
        greeting: Some(wire::GreetingConfig { text: GREETING.to_owned(), interruptible: Some(true) }),
        ..Default::default()
    })
}

/// Starts a playground agent and answers the person's token. The body is JSON (`{}` for every
/// default), sent as `application/json`: other origins cannot send that without a CORS preflight,
/// which this route does not answer.
pub async fn start_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<OptionalJson<SessionRequest>, ApiError>,
) -> Result<Json<SessionAnswer>, ApiError> {
    let playground = &state.inner.playground;
    if !playground.enabled {
        return Err(disabled());
    }
    if !headers.contains_key(header::CONTENT_TYPE) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send the settings as JSON with Content-Type: application/json (`{}` for every default)",
        ));
    }
    let OptionalJson(request) = body?;
    let suffix = hex_id(8);
    let spec =
        to_model::spec_from_wire(agent_config(request, &suffix).map_err(playground_error)?, state.vendor_scope(None))
            .map_err(playground_error)?;
    let session_id = hex_id(16);
    let app = AppId::native();
    {
        let supervisor = &state.inner.supervisor;
        let mut sessions = playground.sessions.lock().expect("the playground lock is never held across a panic");
        sessions.retain(|_, s| s.agent.is_none() || supervisor.name_is_live(&app, &s.name));
        if sessions.len() >= MAX_LIVE_SESSIONS {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::QuotaExceeded,
                format!(
                    "the playground already runs its maximum of {MAX_LIVE_SESSIONS} calls; hang up one, or wait \
                     {IDLE_TIMEOUT_SECS} s after a closed page for its agent to leave"
                ),
            ));
        }
        sessions.insert(
            session_id.clone(),
            Session { name: spec.name.clone(), channel: spec.channel.to_string(), agent: None },
        );
    }
    let channel = spec.channel.to_string();
    let record = match state.inner.supervisor.start(app, spec).await {
        Ok(record) => record,
        Err(e) => {
            playground.sessions.lock().expect("lock").remove(&session_id);
            return Err(e.into());
        }
    };
    if let Some(session) = playground.sessions.lock().expect("lock").get_mut(&session_id) {
        session.agent = Some(record.id.clone());
    }
    let PersonToken { token, expires_at } = person_token(&state, &channel);
    tracing::info!(agent_id = %record.id, %channel, "playground session started");
    Ok(Json(SessionAnswer {
        session: session_id,
        agent_id: record.id.to_string(),
        whip_url: format!("/rtc/whip?channel={channel}"),
        channel,
        uid: UID.to_owned(),
        token,
        expires_at,
    }))
}

/// An RTC token for the playground's person in `channel`.
#[derive(Debug, Serialize)]
pub struct PersonToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

fn person_token(state: &AppState, channel: &str) -> PersonToken {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let expires_at = now + TOKEN_LIFETIME_SECS;
    PersonToken { token: state.inner.rtc.signer.issue(AppId::native().as_str(), channel, UID, expires_at), expires_at }
}

/// A fresh token for a live session's person, to renew the call with before its token expires.
pub async fn renew_token(
    State(state): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<PersonToken>, ApiError> {
    let playground = &state.inner.playground;
    if !playground.enabled {
        return Err(disabled());
    }
    let found = playground.sessions.lock().expect("lock").get(&session).cloned();
    let live = found.filter(|s| s.agent.is_some() && state.inner.supervisor.name_is_live(&AppId::native(), &s.name));
    let Some(Session { channel, .. }) = live else {
        return Err(ApiError::not_found("playground session"));
    };
    Ok(Json(person_token(&state, &channel)))
}

/// The agent of a playground session leaves. Answers its final status.
pub async fn end_session(
    State(state): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let playground = &state.inner.playground;
    if !playground.enabled {
        return Err(disabled());
    }
    let found = playground.sessions.lock().expect("lock").get(&session).cloned();
    let Some(Session { agent: Some(agent), .. }) = found else {
        return Err(ApiError::not_found("playground session"));
    };
    let record = state.inner.supervisor.leave(&AppId::native(), &agent).await?;
    playground.sessions.lock().expect("lock").remove(&session);
    let status = to_model::status_to_wire(record.state.status());
    Ok(Json(serde_json::json!({"agent_id": agent.to_string(), "status": status})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_field_names_become_the_playgrounds() {
        let error =
            ApiError::invalid("llm.system_messages[0].content", "llm.system_messages[0].content must not be empty");
        let error = playground_error(error);
        assert_eq!(error.field.as_deref(), Some("system_prompt"));
        assert_eq!(error.message, "system_prompt must not be empty");
        let error = playground_error(ApiError::invalid("interruption.keywords[1]", "interruption.keywords[1] is long"));
        assert_eq!((error.field.as_deref(), error.message.as_str()), (Some("keywords[1]"), "keywords[1] is long"));
    }

    #[test]
    fn the_settings_become_an_agent_with_the_defaults() {
        let config = agent_config(SessionRequest::default(), "ab").unwrap();
        let spec = to_model::spec_from_wire(
            config,
            crate::vendors::VendorScope {
                vendors: &colloquy_model::NoVendors,
                substitute_unsupported: false,
                keys: None,
            },
        )
        .unwrap();
        assert_eq!((spec.name.as_str(), spec.channel.as_str()), ("playground-ab", "play-ab"));
        assert_eq!(spec.idle_timeout.as_secs(), IDLE_TIMEOUT_SECS);
        assert!(spec.greeting.is_some());
        assert_eq!(spec.llm.system_messages, colloquy_model::Llm::default_system_messages());

        let request = SessionRequest {
            system_prompt: Some("Be a pirate.".into()),
            interruption_mode: Some(PlaygroundInterruption::Keywords),
            ..SessionRequest::default()
        };
        let spec = to_model::spec_from_wire(
            agent_config(request, "cd").unwrap(),
            crate::vendors::VendorScope {
                vendors: &colloquy_model::NoVendors,
                substitute_unsupported: false,
                keys: None,
            },
        )
        .unwrap();
        assert_eq!(spec.llm.system_messages[0].content, "Be a pirate.");
        assert_eq!(spec.interruption.keywords, ["stop", "wait"]);

        let request =
            SessionRequest { interruption_mode: Some(PlaygroundInterruption::Off), ..SessionRequest::default() };
        assert!(
            !to_model::spec_from_wire(
                agent_config(request, "ef").unwrap(),
                crate::vendors::VendorScope {
                    vendors: &colloquy_model::NoVendors,
                    substitute_unsupported: false,
                    keys: None
                }
            )
            .unwrap()
            .interruption
            .enabled
        );
    }
}
