//! `POST /join`: start an agent in a channel (`properties` into an `AgentSpec`, see `to_model.rs`);
//! answers `{agent_id, create_ts, status}`. A token caller may start agents in its own channel only.

use axum::http::StatusCode;
use colloquy_http::extract::RawBody;
use colloquy_supervisor::SupervisorError;
use serde_json::Value;

use super::parse;
use crate::agora::auth::{Call, Caller};
use crate::agora::errors::{AgoraError, AgoraResult};
use crate::agora::from_model::agent_info;
use crate::agora::{to_model, wire};

pub(crate) async fn handle(
    Call { state, caller }: Call,
    RawBody(body): RawBody,
) -> AgoraResult<axum::Json<wire::AgentInfo>> {
    let Caller { app, scope } = caller;
    let unknown = serde_json::from_slice::<Value>(&body).map(|v| to_model::unknown_properties(&v)).unwrap_or_default();
    let request: wire::JoinRequest = parse(&body)?;
    let spec = to_model::spec_from_join(
        request,
        app.callbacks(None),
        unknown,
        state.local_models(),
        state.vendor_scope(Some(&app)),
    )?;
    scope.check(spec.channel.as_str(), spec.agent_uid.as_str())?;
    let name = spec.name.clone();
    let record = state.supervisor().start(app.id.clone(), spec).await.map_err(|e| match e {
        SupervisorError::NameTaken(_) => AgoraError::new(
            StatusCode::CONFLICT,
            "TaskConflict",
            format!("a running agent of this app is already named {name:?}"),
        ),
        e => e.into(),
    })?;
    Ok(axum::Json(agent_info(&record)))
}
