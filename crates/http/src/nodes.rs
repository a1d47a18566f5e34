//! `GET /v1/nodes`: the nodes serving this API, their load and channels. Node-wide, so only the
//! native credentials may read it, not an app's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use colloquy_model::AppId;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};

#[derive(Debug, Serialize, ToSchema)]
pub struct Nodes {
    /// Whether this node is one of a cluster (`--cluster`); without one, `nodes` is this node.
    pub cluster: bool,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Node {
    /// The node's id in the cluster; absent for a node alone.
    pub id: Option<String>,
    /// Where the other nodes reach its HTTP API.
    pub http: Option<String>,
    /// Its RTC (UDP) address.
    pub rtc: Option<String>,
    /// `serving` (takes new channels) or `draining` (shutting down).
    pub state: String,
    /// Live agents, and the most it takes.
    pub agents: u32,
    pub max_agents: u32,
    /// Channels it owns.
    pub channels: u32,
    /// When it last beat (Unix ms, Redis's clock); absent for a node alone.
    pub heartbeat_at: Option<i64>,
    /// Whether it is the node that answered.
    pub this_node: bool,
}

/// The nodes serving this API.
#[utoipa::path(
    get, path = "/v1/nodes", tag = "server",
    responses(
        (status = 200, description = "Every live node", body = Nodes),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "An app's credentials: the nodes are the operator's", body = ErrorEnvelope),
        (status = 503, description = "The cluster state cannot be read", body = ErrorEnvelope),
    ),
    security(("basic" = []))
)]
pub async fn list_nodes(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Nodes>, ApiError> {
    if caller.app != AppId::native() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "the nodes are the operator's: use the server's own API key, not an app's",
        ));
    }
    let supervisor = state.supervisor();
    let Some(cluster) = state.cluster() else {
        let node = Node {
            id: None,
            http: None,
            rtc: None,
            state: "serving".into(),
            agents: supervisor.live_counts().values().sum::<usize>() as u32,
            max_agents: supervisor.config().max_agents,
            channels: supervisor.live_channels().len() as u32,
            heartbeat_at: None,
            this_node: true,
        };
        return Ok(Json(Nodes { cluster: false, nodes: vec![node] }));
    };
    let nodes = cluster
        .nodes()
        .await
        .map_err(|e| ApiError::cluster_unavailable(format!("the cluster state cannot be read: {e}")))?;
    let nodes = nodes
        .into_iter()
        .map(|info| Node {
            this_node: &info.id == cluster.me(),
            id: Some(info.id.to_string()),
            http: Some(info.http),
            rtc: Some(info.rtc),
            state: match info.state {
                colloquy_cluster::NodeState::Serving => "serving".into(),
                colloquy_cluster::NodeState::Draining => "draining".into(),
            },
            agents: info.agents,
            max_agents: info.max_agents,
            channels: info.channels,
            heartbeat_at: Some(info.heartbeat_at),
        })
        .collect();
    Ok(Json(Nodes { cluster: true, nodes }))
}
