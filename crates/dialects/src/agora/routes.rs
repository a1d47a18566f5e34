//! Agora's REST v2 paths, each to its action, under [`BASE`] and under `/cn` + [`BASE`] (where
//! Agora's SDKs send an app of the Chinese mainland area).

use axum::Router;
use axum::routing::{get, post};
use colloquy_http::AppState;

use super::{BASE, actions};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().merge(under("")).merge(under(CN))
}

/// The prefix of the Chinese mainland area.
pub(crate) const CN: &str = "/cn";

/// Whether `path` is under Agora's paths (in either area).
pub(crate) fn serves(path: &str) -> bool {
    let base = BASE.split("/v2/").next().unwrap_or(BASE);
    path.starts_with(base) || path.strip_prefix(CN).is_some_and(|rest| rest.starts_with(base))
}

fn under(area: &str) -> Router<AppState> {
    let route = |path: &str| format!("{area}{BASE}{path}");
    Router::new()
        .route(&route("/join"), post(actions::join::handle))
        .route(&route("/agents"), get(actions::list::handle))
        .route(&route("/agents/{agent_id}"), get(actions::query::handle))
        .route(&route("/agents/{agent_id}/leave"), post(actions::leave::handle))
        .route(&route("/agents/{agent_id}/update"), post(actions::update::handle))
        .route(&route("/agents/{agent_id}/speak"), post(actions::speak::handle))
        .route(&route("/agents/{agent_id}/interrupt"), post(actions::interrupt::handle))
        .route(&route("/agents/{agent_id}/think"), post(actions::think::handle))
        .route(&route("/agents/{agent_id}/history"), get(actions::history::handle))
        .route(&route("/agents/{agent_id}/turns"), get(actions::turns::handle))
}
