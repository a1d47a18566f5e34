//! An in-process API over a real SQLite file: requests go straight to the router with `oneshot`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use colloquy_http::HttpConfig;
use colloquy_http::apps::{App, AppWebhook, Apps};
use colloquy_http::auth::{Credential, RateLimit};
use colloquy_http::webhooks::WebhookConfig;
use colloquy_model::{AgentCommand, AgentRecord, AppId, ConversationEvent, ExitReason, Secret, SpecUpdate};
use colloquy_store::Store;
use colloquy_supervisor::{
    ConversationEvents, MediaCommand, MediaRuntime, MediaSession, MediaStart, Supervisor, SupervisorConfig, TurnStats,
};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const KEY: &str = "test-key";
pub const SECRET: &str = "test-secret";

/// A vendor-dialect app (`[[apps]]`). Its id is numeric, as ZEGO's AppIds are.
pub const APP_ID: &str = "1234567890";
pub const APP_KEY: &str = "app-key-1";
pub const APP_SECRET: &str = "app-secret-1";
/// A second app, to check that apps do not see each other's agents.
pub const OTHER_APP_ID: &str = "987654321";
pub const OTHER_APP_KEY: &str = "app-key-2";
pub const OTHER_APP_SECRET: &str = "app-secret-2";
/// The secret the apps' webhooks are signed with.
/// An app with no key, as a ZEGO-only app is configured.
pub const KEYLESS_APP_ID: &str = "555555555";
pub const KEYLESS_APP_SECRET: &str = "app-secret-5";

pub const WEBHOOK_SECRET: &str = "webhook-secret-1";

#[derive(Debug)]
pub struct Api {
    pub router: Router,
    pub supervisor: Supervisor,
    pub store: Store,
    /// With `Options::media`: the commands the agents received, and a way to make them emit events.
    pub media: Option<RecordingMedia>,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Debug)]
pub struct Options {
    pub max_agents: u32,
    pub rate_limit: RateLimit,
    /// Off by default: the auth tests fail on purpose, many times (see `tests/brake.rs`).
    pub brake: colloquy_http::brake::BrakeConfig,
    pub channel_server: Option<colloquy_rtc::server::ChannelServer>,
    /// Whether `POST /playground/session` starts agents.
    pub playground: bool,
    /// Agents get a [`RecordingMedia`] session, so speak/interrupt/think/update are carried to it.
    pub media: bool,
    /// Where the apps' webhooks go; deliveries run when set.
    pub webhook_url: Option<String>,
    /// The vendor dialects mounted beside the native API (none by default; the dialects' own
    /// tests mount theirs).
    pub dialects: Arc<dyn colloquy_http::dialects::Dialects>,
    /// The agents configured for the first app (`APP_ID`).
    pub agents: Vec<colloquy_http::apps::ConfiguredAgent>,
    /// `[[apps]] substitute_unsupported_vendors` of the first app.
    pub substitute_unsupported_vendors: bool,
    /// `[[apps]] vendor_keys` of the first app.
    pub vendor_keys: std::collections::BTreeMap<String, Secret>,
    /// Caps the records' file (4 KiB pages), so a test can fill the "disk" for real.
    pub max_page_count: Option<u32>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_agents: 100,
            rate_limit: RateLimit { per_second: 0, burst: 0 },
            brake: colloquy_http::brake::BrakeConfig::OFF,
            channel_server: None,
            playground: false,
            media: false,
            webhook_url: None,
            dialects: Arc::new(colloquy_http::dialects::NoDialects),
            agents: Vec::new(),
            substitute_unsupported_vendors: false,
            vendor_keys: Default::default(),
            max_page_count: None,
        }
    }
}

pub async fn api(options: Options) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store_options = colloquy_store::StoreOptions { max_page_count: options.max_page_count };
    let store = Store::open_with(&dir.path().join("colloquy.db"), store_options).await.unwrap();
    api_on(store, options, Some(dir)).await
}

/// [`api`] over `store` (a PostgreSQL database, say), keeping `dir` until the API is dropped.
pub async fn api_on(store: Store, options: Options, dir: Option<tempfile::TempDir>) -> Api {
    let config = SupervisorConfig { max_agents: options.max_agents };
    let media = options.media.then(RecordingMedia::default);
    let supervisor = match &media {
        Some(media) => Supervisor::with_media(store.clone(), config, Arc::new(media.clone())),
        None => Supervisor::new(store.clone(), config),
    };
    supervisor.recover().await.unwrap();
    if options.webhook_url.is_some() {
        colloquy_http::webhooks::spawn(&supervisor, FAST_WEBHOOKS, options.dialects.clone());
    }
    let webhook = options.webhook_url.map(|url| AppWebhook { url, secret: Some(Secret::new(WEBHOOK_SECRET)) });
    let apps = Apps::new(vec![
        App {
            id: AppId::new(APP_ID).unwrap(),
            key: Some(APP_KEY.into()),
            secret: Secret::new(APP_SECRET),
            webhook: webhook.clone(),
            artc_tokens: Default::default(),
            agents: options.agents,
            substitute_unsupported_vendors: options.substitute_unsupported_vendors,
            vendor_keys: options.vendor_keys.clone(),
        },
        App {
            id: AppId::new(OTHER_APP_ID).unwrap(),
            key: Some(OTHER_APP_KEY.into()),
            secret: Secret::new(OTHER_APP_SECRET),
            webhook,
            artc_tokens: Default::default(),
            agents: Vec::new(),
            substitute_unsupported_vendors: false,
            vendor_keys: Default::default(),
        },
        App {
            id: AppId::new(KEYLESS_APP_ID).unwrap(),
            key: None,
            secret: Secret::new(KEYLESS_APP_SECRET),
            webhook: None,
            artc_tokens: Default::default(),
            agents: Vec::new(),
            substitute_unsupported_vendors: false,
            vendor_keys: Default::default(),
        },
    ]);
    let router = colloquy_http::router(
        supervisor.clone(),
        HttpConfig {
            credentials: vec![
                Credential { key: KEY.into(), secret: Secret::new(SECRET), app: AppId::native() },
                Credential {
                    key: "other-key".into(),
                    secret: Secret::new("other-secret"),
                    app: AppId::new("other").unwrap(),
                },
            ],
            apps,
            rate_limit: options.rate_limit,
            brake: options.brake,
            rtc: colloquy_http::rtc::RtcEdge::new(
                colloquy_rtc::token::TokenSigner::new(SECRET.as_bytes()),
                options.channel_server.clone(),
            ),
            playground: options.playground,
            dialects: options.dialects,
            local_models: std::sync::Arc::new(colloquy_http::fields::ListedModels::default_llm()),
            speech_vendors: std::sync::Arc::new(colloquy_providers::vendors::Registry),
        },
    );
    Api { router, supervisor, store, media, _dir: dir }
}

/// Webhook retries fast enough for tests.
pub const FAST_WEBHOOKS: WebhookConfig = WebhookConfig {
    max_pending: 1000,
    max_attempts: 50,
    first_backoff: Duration::from_millis(20),
    max_backoff: Duration::from_millis(100),
    connect_timeout: Duration::from_secs(1),
    request_timeout: Duration::from_secs(2),
    max_in_flight: 64,
    max_in_flight_per_app: 16,
    shutdown_grace: Duration::from_millis(500),
};

/// What a [`RecordingMedia`] session was told.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    Command(AgentCommand),
    Update(SpecUpdate),
}

/// A media runtime for the HTTP tests: it joins no channel and runs no conversation, but keeps
/// what each agent was told, and lets a test make an agent report conversation events. It checks
/// the edge's translation into the model; the real media is tested in `crates/colloquy/tests`.
#[derive(Clone, Debug, Default)]
pub struct RecordingMedia {
    received: Arc<Mutex<HashMap<String, Vec<Received>>>>,
    events: Arc<Mutex<HashMap<String, ConversationEvents>>>,
}

impl RecordingMedia {
    /// What agent `id` was told, in order.
    pub fn received(&self, id: &str) -> Vec<Received> {
        self.received.lock().unwrap().get(id).cloned().unwrap_or_default()
    }

    /// Makes agent `id` report `event`, as its conversation would.
    pub fn emit(&self, id: &str, event: ConversationEvent) {
        let sink = self.events.lock().unwrap().get(id).cloned().expect("the agent has a media session");
        sink.send(event, colloquy_supervisor::now());
    }
}

impl MediaRuntime for RecordingMedia {
    fn start(&self, agent: AgentRecord, _stats: Arc<TurnStats>, events: ConversationEvents) -> MediaStart {
        let media = self.clone();
        Box::pin(async move {
            let id = agent.id.to_string();
            media.events.lock().unwrap().insert(id.clone(), events);
            let (commands_tx, mut commands) = tokio::sync::mpsc::channel(16);
            let (ended_tx, ended) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                while let Some(command) = commands.recv().await {
                    let received = match command {
                        MediaCommand::Agent(command) => Received::Command(command),
                        MediaCommand::Update(update) => Received::Update(update),
                        MediaCommand::Stop => break,
                    };
                    media.received.lock().unwrap().entry(id.clone()).or_default().push(received);
                }
                let _ = ended_tx.send(ExitReason::Left);
            });
            Ok(MediaSession { commands: commands_tx, ended })
        })
    }
}

/// A local webhook receiver: keeps every request, answers 503 to the first `refuse_first`.
#[derive(Clone, Debug, Default)]
pub struct Receiver {
    /// Each request's headers and body, including refused ones.
    pub requests: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    /// The requests answered 200, in order.
    pub accepted: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    /// How many requests to refuse with 503 before accepting.
    pub refuse_first: Arc<Mutex<usize>>,
}

impl Receiver {
    /// Listens on a fresh loopback port; answers the URL to post to.
    pub async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        self.listen(listener).await;
        url
    }

    /// Serves `POST /hook` on `listener`.
    pub async fn listen(&self, listener: tokio::net::TcpListener) {
        let receiver = self.clone();
        let app = Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let receiver = receiver.clone();
                async move {
                    receiver.requests.lock().unwrap().push((headers.clone(), body.clone()));
                    let mut refuse = receiver.refuse_first.lock().unwrap();
                    if *refuse > 0 {
                        *refuse -= 1;
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        receiver.accepted.lock().unwrap().push((headers, body));
                        StatusCode::OK
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    /// The accepted deliveries, once at least `count` arrived (panics after 5 s).
    pub async fn accepted(&self, count: usize) -> Vec<(HeaderMap, String)> {
        for _ in 0..500 {
            let accepted = self.accepted.lock().unwrap().clone();
            if accepted.len() >= count {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{count} deliveries did not arrive; got {:?}", self.requests.lock().unwrap());
    }
}

pub fn basic(key: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}")))
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Api {
    /// Sends a request; `auth` defaults to the native test credentials when `Some("")` is not given.
    pub async fn send(&self, method: &str, path: &str, auth: Option<&str>, body: Option<&str>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let request = match body {
            Some(body) => request.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_owned())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, json, text }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, Some(&basic(KEY, SECRET)), None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.send("POST", path, Some(&basic(KEY, SECRET)), Some(body)).await
    }

    /// Starts an agent that never idles out; answers its id.
    pub async fn start(&self, name: &str, channel: &str) -> String {
        let reply =
            self.post("/v1/agents", &format!(r#"{{"name":"{name}","channel":"{channel}","idle_timeout":0}}"#)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json["agent_id"].as_str().unwrap().to_owned()
    }
}

/// Asserts an error answer: its status, its envelope's code, and the field it names.
#[track_caller]
pub fn assert_error(reply: &Reply, status: StatusCode, code: &str, field: Option<&str>) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json["error"]["code"], code, "{}", reply.text);
    assert!(reply.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", reply.text);
    assert_eq!(reply.json["error"]["field"].as_str(), field, "{}", reply.text);
}

/// A configured agent (`[[apps.agents]]`) whose settings are written as the native API writes an
/// agent's (`prompt`, `llm`, `greeting`, …), checked as the config file's are.
pub fn configured_agent(id: &str, settings: Value, webhook_url: Option<&str>) -> colloquy_http::apps::ConfiguredAgent {
    let wire = serde_json::from_value(settings).expect("the settings are a native profile");
    let scope = colloquy_http::vendors::VendorScope {
        vendors: &colloquy_providers::vendors::Registry,
        substitute_unsupported: false,
        keys: None,
    };
    colloquy_http::apps::ConfiguredAgent {
        id: id.to_owned(),
        profile: colloquy_http::native::to_model::profile_from_wire(wire, scope).expect("the settings are valid"),
        webhook: webhook_url.map(|url| AppWebhook { url: url.to_owned(), secret: Some(Secret::new("agent-hook")) }),
    }
}

/// A support agent with its own LLM, prompt, greeting and idle time, and its own webhook.
pub fn support_agent() -> colloquy_http::apps::ConfiguredAgent {
    configured_agent(
        "support",
        serde_json::json!({
            "prompt": "You are Ada, Acme's support agent.",
            "llm": { "vendor": "openai", "url": "http://127.0.0.1:9/v1", "model": "acme-chat" },
            "greeting": { "text": "Welcome to Acme." },
            "idle_timeout": 90,
            "turn_detection": { "silence_duration_ms": 500 }
        }),
        Some("http://127.0.0.1:9/support-hook"),
    )
}
