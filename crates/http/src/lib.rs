//! The HTTP edge of colloquy: the server's router, the native `/v1` API with its auth, limits and
//! error envelope, `/healthz`, `/metrics`, `/openapi.json`, WHIP and the playground page at `/`, and
//! the [`dialects::Dialects`] seam the vendor dialects (`colloquy-dialects`) plug into.
//!
//! **API boundary:** this crate and the dialects are the only ones that know HTTP and JSON wire
//! formats. They turn requests into the model and call the [`Supervisor`]; nothing below them sees a
//! request or a dialect.

pub mod apps;
pub mod auth;
pub mod brake;
pub mod dialects;
pub mod error;
pub mod extract;
pub mod fields;
pub mod listener;
pub mod metrics;
pub mod native;
pub mod openapi;
pub mod playground;
pub mod rtc;
pub mod tools;
pub mod vendors;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router, middleware};
use colloquy_supervisor::Supervisor;

use crate::apps::Apps;
use crate::auth::{Credential, RateLimit, RateLimiter};
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;

/// How the HTTP edge is set up.
#[derive(Debug)]
pub struct HttpConfig {
    /// Who may call the native API, and as which app.
    pub credentials: Vec<Credential>,
    /// The apps of the vendor dialects (their keys and secrets also work on the native API).
    pub apps: Apps,
    /// Requests per second per credential.
    pub rate_limit: RateLimit,
    /// The brute-force brake on failed authentications.
    pub brake: brake::BrakeConfig,
    /// RTC tokens and WHIP.
    pub rtc: rtc::RtcEdge,
    /// Whether `POST /playground/session` starts agents without credentials (the page at `/` is
    /// served either way).
    pub playground: bool,
    /// The vendor dialects served beside the native API ([`dialects::NoDialects`] for none).
    pub dialects: Arc<dyn dialects::Dialects>,
    /// The embedded models requests may name.
    pub local_models: Arc<dyn fields::LocalModels>,
    /// The speech vendors requests may name ([`vendors::NoVendors`] for none).
    pub speech_vendors: Arc<dyn vendors::SpeechVendors>,
}

/// What every handler can reach; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    supervisor: Supervisor,
    credentials: Vec<Credential>,
    apps: Apps,
    rate_limiter: RateLimiter,
    brake: brake::AuthBrake,
    dialects: Arc<dyn dialects::Dialects>,
    local_models: Arc<dyn fields::LocalModels>,
    speech_vendors: Arc<dyn vendors::SpeechVendors>,
    metrics: Metrics,
    rtc: rtc::RtcEdge,
    playground: playground::Playground,
}

/// The whole HTTP API as one router, ready to serve or to call in process with `oneshot`.
pub fn router(supervisor: Supervisor, config: HttpConfig) -> Router {
    let mut credentials = config.credentials;
    credentials.extend(
        config.apps.all().iter().filter_map(|app| {
            Some(Credential { key: app.key.clone()?, secret: app.secret.clone(), app: app.id.clone() })
        }),
    );
    let state = AppState {
        inner: Arc::new(StateInner {
            metrics: Metrics::new(supervisor.clone(), config.rtc.server.clone()),
            supervisor,
            credentials,
            apps: config.apps,
            rate_limiter: RateLimiter::new(config.rate_limit),
            brake: brake::AuthBrake::new(config.brake),
            dialects: config.dialects.clone(),
            local_models: config.local_models,
            speech_vendors: config.speech_vendors,
            rtc: config.rtc,
            playground: playground::Playground::new(config.playground),
        }),
    };
    let v1 = native::routes()
        .route("/v1/tokens", axum::routing::post(rtc::issue_token))
        .route("/v1/channels/{channel}", get(rtc::channel))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_basic_auth))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .merge(v1)
        .merge(playground::routes())
        .merge(config.dialects.routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        // Every route so far answers a method it does not take in an envelope (WHIP's answers
        // its CORS preflights itself).
        .method_not_allowed_fallback(method_not_allowed)
        .merge(rtc::whip_routes())
        .fallback(native::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), metrics::record_request))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(middleware::from_fn(extract::refuse_oversize))
        .layer(middleware::from_fn_with_state(config.dialects, dialects::in_dialect_envelope))
        .with_state(state)
}

impl AppState {
    pub fn supervisor(&self) -> &Supervisor {
        &self.inner.supervisor
    }

    /// The apps of the vendor dialects.
    pub fn apps(&self) -> &Apps {
        &self.inner.apps
    }

    /// Takes one request from `key`'s rate limit.
    pub fn rate_limit(&self, key: &str) -> Result<(), ApiError> {
        self.inner.rate_limiter.check(key)
    }

    /// Runs `authenticate` under the brute-force brake, for `peer` naming `credential`: refused
    /// with 429 while the pair or the address is closed, counted when it fails, cleared when it
    /// succeeds.
    pub fn braked<T, E: From<ApiError>>(
        &self,
        peer: brake::Peer,
        credential: &str,
        authenticate: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.inner.brake.check(peer, credential)?;
        let result = authenticate();
        match &result {
            Ok(_) => self.inner.brake.succeeded(peer, credential),
            Err(_) => self.inner.brake.failed(peer, credential),
        }
        result
    }

    /// The embedded models requests may name.
    pub fn local_models(&self) -> &dyn fields::LocalModels {
        self.inner.local_models.as_ref()
    }

    /// The speech vendors requests may name.
    pub fn speech_vendors(&self) -> &dyn vendors::SpeechVendors {
        self.inner.speech_vendors.as_ref()
    }

    /// How a request of `app` may choose speech vendors: the app's substitution choice and vendor
    /// keys (`None`: neither).
    pub fn vendor_scope<'a>(&'a self, app: Option<&'a apps::App>) -> vendors::VendorScope<'a> {
        vendors::VendorScope {
            vendors: self.inner.speech_vendors.as_ref(),
            substitute_unsupported: app.is_some_and(|app| app.substitute_unsupported_vendors),
            keys: app.map(|app| &app.vendor_keys),
        }
    }

    pub(crate) fn dialects(&self) -> &dyn dialects::Dialects {
        self.inner.dialects.as_ref()
    }

    pub(crate) fn rtc(&self) -> &rtc::RtcEdge {
        &self.inner.rtc
    }
}

/// Is the server up? Answers without auth.
#[utoipa::path(get, path = "/healthz", tag = "server", responses((status = 200, body = native::wire::Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<native::wire::Health> {
    Json(native::wire::Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        live_agents: state.inner.supervisor.live_counts().values().sum(),
    })
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed, "this route does not take this method")
}
