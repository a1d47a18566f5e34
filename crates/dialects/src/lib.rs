//! The vendor dialects: Agora's Conversational AI Engine v2, ZEGOCLOUD's AI Agent and Alibaba
//! Cloud's AICallKit / IMS. Each is a thin adapter over the native model: it checks its own auth,
//! reads its own request shapes into [`AgentSpec`](colloquy_model::AgentSpec),
//! [`AgentCommand`](colloquy_model::AgentCommand) and [`SpecUpdate`](colloquy_model::SpecUpdate),
//! answers in its own envelope with its own error codes and state names, and formats its own
//! webhooks. The HTTP edge reaches them only through its [`Dialects`] seam, which
//! [`VendorDialects`] implements; nothing below the HTTP edge knows which dialect an agent came
//! from except as the opaque [`Origin`](colloquy_model::Origin) the dialect keeps in the spec.
//!
//! Routes:
//! - Agora: `/api/conversational-ai-agent/v2/projects/{appid}/…`
//! - ZEGO: `POST /?Action=…` and `POST /zego/?Action=…`
//! - Alibaba app server: `POST /api/v1/aiagent/{action}` and `POST /api/v2/aiagent/{action}`
//! - Alibaba IMS/ICE OpenAPI: `POST /` with `Action` and `Version=2020-11-09` (in the query or a form
//!   body), or Alibaba's signature headers. `POST /` without them is ZEGO's.

pub mod agora;
pub mod alibaba;
pub mod zego;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use colloquy_http::AppState;
use colloquy_http::apps::Apps;
use colloquy_http::dialects::{Dialects, Formatted, RequestHead};
use colloquy_http::error::ApiError;
use colloquy_http::extract::RawBody;
use colloquy_model::{AgentEvent, Dialect};
use colloquy_rtc::token::Grant;
use colloquy_store::Store;

/// The three vendor dialects, as the HTTP edge's [`Dialects`]. Each keeps its own state (ZEGO's
/// instance gate and callback sequences, Alibaba's session starts) here, not in a process global,
/// so two servers in one process do not share it.
#[derive(Debug, Default)]
pub struct VendorDialects {
    agora: agora::Agora,
    zego: Arc<zego::Zego>,
    alibaba: Arc<alibaba::Alibaba>,
}

impl VendorDialects {
    pub fn new() -> VendorDialects {
        VendorDialects::default()
    }

    /// The dialects of a node of `cluster`: what they count per agent (ZEGO's callback sequences)
    /// is kept in the cluster's state.
    pub fn in_cluster(cluster: colloquy_cluster::Cluster) -> VendorDialects {
        let dialects = VendorDialects::default();
        dialects.zego.share_sequences(cluster);
        dialects
    }
}

impl Dialects for VendorDialects {
    fn routes(&self) -> Router<AppState> {
        let (zego, alibaba) = (Arc::clone(&self.zego), Arc::clone(&self.alibaba));
        // `POST /`: Alibaba's OpenAPI when the request says so (its `Version` parameter or its
        // signature headers), ZEGO's otherwise.
        let root = post(move |State(state): State<AppState>, request: RawRequest| async move {
            if alibaba::openapi::is_openapi_request(&request) {
                alibaba.action(state, request).await
            } else {
                zego.action(state, request).await
            }
        });
        Router::new().merge(self.agora.routes()).merge(self.alibaba.routes()).merge(self.zego.routes()).route("/", root)
    }

    fn format_webhooks<'a>(&'a self, event: &'a AgentEvent, store: &'a Store) -> Formatted<'a> {
        Box::pin(async move {
            match event.agent.spec.origin.dialect {
                Dialect::Native => Vec::new(),
                Dialect::Agora => self.agora.webhooks(event, store).await,
                Dialect::Zego => self.zego.webhooks(event, store).await,
                Dialect::Alibaba => self.alibaba.webhooks(event),
            }
        })
    }

    fn verify_rtc_token(&self, apps: &Apps, token: &str, now_secs: u64) -> Option<Result<Grant, String>> {
        alibaba::token::verify_rtc_auth_token(apps, token, now_secs)
    }

    fn edge_error(&self, request: &RequestHead, error: ApiError) -> Option<Response> {
        let path = request.uri.path();
        if agora::serves(path) {
            return Some(agora::AgoraError::edge(error).into_response());
        }
        if alibaba::serves_app_server(path) {
            return Some(alibaba::app_server_edge_error(error));
        }
        if zego::serves(path) {
            return Some(zego::edge_error(error));
        }
        // `/` is shared: Alibaba's OpenAPI by its markers, ZEGO's by its `Action` (the
        // playground's page is there too, for a plain GET).
        let query = request.uri.query();
        if path == "/" && alibaba::openapi::is_openapi_head(query, &request.headers) {
            return Some(alibaba::openapi_edge_error(error));
        }
        let zego_action = query.is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "Action"));
        if path == "/" && (zego_action || request.method == Method::POST) {
            return Some(zego::edge_error(error));
        }
        None
    }
}

/// A request as it came, for the dialects that read their parameters from the query, a form body
/// or a JSON body, and sign over them.
#[derive(Debug)]
pub struct RawRequest {
    pub method: Method,
    pub uri: Uri,
    /// The query string, undecoded, without the `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's address, for the brute-force brake.
    pub peer: colloquy_http::brake::Peer,
}

impl<S: Send + Sync> FromRequest<S> for RawRequest {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<RawRequest, Response> {
        let (parts, body) = request.into_parts();
        let RawBody(body) = RawBody::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(RawRequest {
            peer: colloquy_http::brake::Peer::of(&parts),
            method: parts.method,
            query: parts.uri.query().map(str::to_owned),
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}
