//! The vendor dialects: Agora's Conversational AI Engine v2, ZEGOCLOUD's AI Agent and Alibaba
//! Cloud's AICallKit / IMS. Each is a thin adapter over the native model: it checks its own auth,
//! reads its own request shapes into [`AgentSpec`](colloquy_model::AgentSpec),
//! [`AgentCommand`](colloquy_model::AgentCommand) and [`SpecUpdate`](colloquy_model::SpecUpdate),
//! answers in its own envelope with its own error codes and state names, and formats its own
//! webhooks. Nothing below the HTTP edge knows which dialect an agent came from except as the
//! opaque [`Origin`](colloquy_model::Origin) the dialect keeps in the spec.
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

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use colloquy_model::{AgentEvent, Dialect};
use colloquy_store::{OutgoingWebhook, Store};

use crate::AppState;

/// Every dialect's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(agora::routes())
        .merge(alibaba::routes())
        .route("/", post(root_action))
        .route("/zego", post(zego_action))
        .route("/zego/", post(zego_action))
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
    pub peer: crate::brake::Peer,
}

impl<S: Send + Sync> FromRequest<S> for RawRequest {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<RawRequest, Response> {
        let (parts, body) = request.into_parts();
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(RawRequest {
            peer: crate::brake::Peer::of(&parts),
            method: parts.method,
            query: parts.uri.query().map(str::to_owned),
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

/// `POST /`: Alibaba's OpenAPI when the request says so (its `Version` parameter or its signature
/// headers), ZEGO's otherwise.
async fn root_action(State(state): State<AppState>, request: RawRequest) -> Response {
    if alibaba::openapi::is_openapi_request(&request) {
        alibaba::openapi::action(state, request).await
    } else {
        zego::action(state, request).await
    }
}

async fn zego_action(State(state): State<AppState>, request: RawRequest) -> Response {
    zego::action(state, request).await
}

/// The deliveries for `event`, in the form of the dialect that started the agent. `store` gives the
/// history and turns that some dialects send when an agent ends.
pub async fn format_webhooks(event: &AgentEvent, store: &Store) -> Vec<OutgoingWebhook> {
    match event.agent.spec.origin.dialect {
        Dialect::Native => crate::native::webhooks::format(event).into_iter().collect(),
        Dialect::Agora => agora::webhooks::format(event, store).await,
        Dialect::Zego => zego::webhooks::format(event, store).await,
        Dialect::Alibaba => alibaba::webhooks::format(event, store).await,
    }
}
