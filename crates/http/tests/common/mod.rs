//! An in-process API over a real SQLite file: requests go straight to the router with `oneshot`.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use colloquy_http::HttpConfig;
use colloquy_http::auth::{Credential, RateLimit};
use colloquy_model::{AppId, Secret};
use colloquy_store::Store;
use colloquy_supervisor::{Supervisor, SupervisorConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const KEY: &str = "test-key";
pub const SECRET: &str = "test-secret";

#[derive(Debug)]
pub struct Api {
    pub router: Router,
    pub supervisor: Supervisor,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
pub struct Options {
    pub max_agents: u32,
    pub rate_limit: RateLimit,
    pub channel_server: Option<colloquy_rtc::server::ChannelServer>,
    /// Whether `POST /playground/session` starts agents.
    pub playground: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_agents: 100,
            rate_limit: RateLimit { per_second: 0, burst: 0 },
            channel_server: None,
            playground: false,
        }
    }
}

pub async fn api(options: Options) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("colloquy.db")).await.unwrap();
    let supervisor = Supervisor::new(store, SupervisorConfig { max_agents: options.max_agents });
    supervisor.recover().await.unwrap();
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
            rate_limit: options.rate_limit,
            rtc: colloquy_http::rtc::RtcEdge::new(
                colloquy_rtc::token::TokenSigner::new(SECRET.as_bytes()),
                options.channel_server.clone(),
            ),
            playground: options.playground,
        },
    );
    Api { router, supervisor, _dir: dir }
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
