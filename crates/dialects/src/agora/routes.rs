//! Agora's REST v2 paths, each to its action.

use axum::Router;
use axum::routing::{get, post};
use colloquy_http::AppState;

use super::{BASE, actions};

pub(crate) fn routes() -> Router<AppState> {
    let route = |path: &str| format!("{BASE}{path}");
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
