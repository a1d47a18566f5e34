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
use super::{Zego, actions, auth};
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
    state.rate_limit(app.rate_key()).await?;
    auth::take_nonce(state, app, &nonce).await?;
    let body = &request.body;
    let app_id = &app.id;
    match action.as_str() {
        "RegisterAgent" => actions::register_agent::run(state, app_id, parse(body)?).await,
        "UnregisterAgent" => actions::unregister_agent::run(state, app_id, parse(body)?).await,
        "UpdateAgent" => actions::update_agent::run(state, app_id, parse(body)?).await,
        "ListAgents" => actions::list_agents::run(state, app_id, parse(body)?).await,
        "QueryAgents" => actions::query_agents::run(state, app_id, parse(body)?).await,
        "CreateAgentInstance" => actions::create_agent_instance::run(&zego.instances, state, app, parse(body)?).await,
        "DeleteAgentInstance" => actions::delete_agent_instance::run(state, app_id, parse(body)?).await,
        "UpdateAgentInstance" => actions::update_agent_instance::run(state, app_id, parse(body)?).await,
        "QueryAgentInstanceStatus" => actions::query_agent_instance_status::run(state, app_id, parse(body)?).await,
        "SendAgentInstanceTTS" => actions::send_agent_instance_tts::run(state, app_id, parse(body)?).await,
        "SendAgentInstanceLLM" => actions::send_agent_instance_llm::run(state, app_id, parse(body)?).await,
        "InterruptAgentInstance" => actions::interrupt_agent_instance::run(state, app_id, parse(body)?).await,
        "GetAgentInstanceMsgList" => actions::get_agent_instance_msg_list::run(state, app_id, parse(body)?).await,
        "ResetAgentInstanceMsgList" => actions::reset_agent_instance_msg_list::run(state, app_id, parse(body)?).await,
        other => Err(ZegoError::new(codes::ACTION_UNSUPPORTED, format!("unsupported Action {other:?}"))),
    }
}
