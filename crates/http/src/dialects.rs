//! The seam where the vendor dialects plug into the HTTP edge. This crate serves the native API and
//! knows no vendor; `colloquy-dialects` implements [`Dialects`] for Agora, ZEGO and Alibaba, and the
//! binary hands it to [`router`](crate::router) and [`webhooks::spawn`](crate::webhooks::spawn).
//! A dialect reaches the rest of the server only through what it is given here: the
//! [`AppState`] its routes run with, the [`Store`] its webhooks read, and the [`Apps`] its RTC
//! tokens are signed with.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware::Next;
use axum::response::Response;
use colloquy_model::AgentEvent;
use colloquy_rtc::token::Grant;
use colloquy_store::{OutgoingWebhook, Store};

use crate::AppState;
use crate::apps::Apps;
use crate::error::{ApiError, Refused};

/// The webhooks of one event, formatted (the future borrows the event and the store).
pub type Formatted<'a> = Pin<Box<dyn Future<Output = Vec<OutgoingWebhook>> + Send + 'a>>;

/// The vendor dialects mounted beside the native API.
pub trait Dialects: Send + Sync + Debug + 'static {
    /// Their routes, merged into the server's router (each under its own paths).
    fn routes(&self) -> Router<AppState>;

    /// The webhooks of `event` for an agent a vendor dialect started, in that dialect's format;
    /// `store` gives the history and turns some send when an agent ends. Native agents' webhooks
    /// never come here.
    fn format_webhooks<'a>(&'a self, event: &'a AgentEvent, store: &'a Store) -> Formatted<'a>;

    /// A vendor's RTC token presented to WHIP, when it is one: `None` when no dialect recognizes
    /// `token`, else its grant or why it is refused.
    fn verify_rtc_token(&self, apps: &Apps, token: &str, now_secs: u64) -> Option<Result<Grant, String>>;

    /// An error the edge raised for `request` before or instead of a dialect's handler (an
    /// unknown path, 405, 413, 414), in the envelope of the dialect whose paths `request` is
    /// under; `None` when it is under no dialect's.
    fn edge_error(&self, request: &RequestHead, error: ApiError) -> Option<Response>;
}

/// What an edge error's envelope is chosen by.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// Puts the edge's errors (responses made from an [`ApiError`]) for requests under a dialect's
/// paths in that dialect's envelope. The router applies it outermost, and so does the listener,
/// around its own body limits.
pub async fn in_dialect_envelope(State(dialects): State<Arc<dyn Dialects>>, request: Request, next: Next) -> Response {
    let head = RequestHead {
        method: request.method().clone(),
        uri: request.uri().clone(),
        headers: request.headers().clone(),
    };
    let mut response = next.run(request).await;
    match response.extensions_mut().remove::<Refused>() {
        Some(Refused(error)) => dialects.edge_error(&head, error).unwrap_or(response),
        None => response,
    }
}

/// No vendor dialects: the native API alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDialects;

impl Dialects for NoDialects {
    fn routes(&self) -> Router<AppState> {
        Router::new()
    }

    fn format_webhooks<'a>(&'a self, _event: &'a AgentEvent, _store: &'a Store) -> Formatted<'a> {
        Box::pin(std::future::ready(Vec::new()))
    }

    fn verify_rtc_token(&self, _apps: &Apps, _token: &str, _now_secs: u64) -> Option<Result<Grant, String>> {
        None
    }

    fn edge_error(&self, _request: &RequestHead, _error: ApiError) -> Option<Response> {
        None
    }
}
