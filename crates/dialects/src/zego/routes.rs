//! ZEGO's routes and its dispatch: every request is authenticated, rate limited and its
//! `SignatureNonce` taken before its `Action` runs, and every answer is ZEGO's envelope.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use colloquy_http::AppState;
use serde_json::Value;

use super::errors::{ZegoError, ZegoResult, codes, envelope};
use super::fields::parse;
use super::{Zego, auth};
use crate::RawRequest;

/// `POST /zego?Action=…` and `POST /zego/?Action=…`.
pub(crate) fn router(zego: Arc<Zego>) -> Router<AppState> {
    let action =
        post(
            move |State(state): State<AppState>, request: RawRequest| async move { zego.action(state, request).await },
        );
    Router::new().route("/zego", action.clone()).route("/zego/", action)
}

/// One request, answered in ZEGO's envelope.
pub(crate) async fn action(zego: &Zego, state: &AppState, request: &RawRequest) -> Response {
    envelope(handle(zego, state, request).await)
}

async fn handle(zego: &Zego, state: &AppState, request: &RawRequest) -> ZegoResult<Value> {
    let app_id = auth::query_app_id(request);
    let (app, action, nonce) =
        state.braked(request.peer, &format!("zego:{app_id}"), || auth::authenticate(state, request))?;
    state.rate_limit(&app.key)?;
    auth::take_nonce(state, app, &nonce).await?;
    let body = &request.body;
    let app_id = &app.id;
    match action.as_str() {
        "RegisterAgent" => super::register_agent(state, app_id, parse(body)?).await,
        "UnregisterAgent" => super::unregister_agent(state, app_id, parse(body)?).await,
        "UpdateAgent" => super::update_agent(state, app_id, parse(body)?).await,
        "ListAgents" => super::list_agents(state, app_id, parse(body)?).await,
        "QueryAgents" => super::query_agents(state, app_id, parse(body)?).await,
        "CreateAgentInstance" => super::create_instance(zego, state, app, parse(body)?).await,
        "DeleteAgentInstance" => super::delete_instance(state, app_id, parse(body)?).await,
        "UpdateAgentInstance" => super::update_instance(state, app_id, parse(body)?).await,
        "QueryAgentInstanceStatus" => super::query_status(state, app_id, parse(body)?).await,
        "SendAgentInstanceTTS" => super::send_tts(state, app_id, parse(body)?).await,
        "SendAgentInstanceLLM" => super::send_llm(state, app_id, parse(body)?).await,
        "InterruptAgentInstance" => super::interrupt(state, app_id, parse(body)?).await,
        "GetAgentInstanceMsgList" => super::msg_list(state, app_id, parse(body)?).await,
        "ResetAgentInstanceMsgList" => super::reset_msg_list(state, app_id, parse(body)?).await,
        other => Err(ZegoError::new(codes::ACTION_UNSUPPORTED, format!("unsupported Action {other:?}"))),
    }
}
