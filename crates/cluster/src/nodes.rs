//! The node registry: `colloquy:node:<id>` holds a node's [`NodeInfo`] as JSON and lives the
//! cluster's TTL, renewed by each heartbeat; the set `colloquy:nodes` names every node that
//! registered and was not yet reaped, so that a node whose entry ran out is found (dead) by the
//! others. Reaping a dead node is taken by one node at a time (`colloquy:reap:<id>`, `SET NX` with a
//! TTL); the records make it happen once in any case (see the store's `fail_node`).

use serde::{Deserialize, Serialize};

use crate::{Cluster, ClusterError, NodeId, PREFIX, redis_now};

/// Whether a node takes new channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Takes new channels.
    Serving,
    /// Shutting down: keeps its calls for a while, takes no new channel.
    Draining,
}

/// What a node tells the others of itself at each heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Where the other nodes reach its HTTP API (`http://host:port`), to forward requests.
    pub http: String,
    /// Its RTC (UDP) address as its WHIP answers advertise it.
    pub rtc: String,
    pub state: NodeState,
    /// Live agents now, and the most it takes.
    pub agents: u32,
    pub max_agents: u32,
    /// Channels it owns now.
    pub channels: u32,
    /// When it started, and when it wrote this (Unix ms; the heartbeat's time is Redis's clock).
    pub started_at: i64,
    pub heartbeat_at: i64,
}

impl NodeInfo {
    /// How many more agents it takes.
    pub fn free(&self) -> u32 {
        self.max_agents.saturating_sub(self.agents)
    }
}

const NODES: &str = "colloquy:nodes";

fn node_key(id: &NodeId) -> String {
    format!("{PREFIX}node:{id}")
}

fn reap_key(id: &NodeId) -> String {
    format!("{PREFIX}reap:{id}")
}

impl Cluster {
    /// Writes this node's entry (its `heartbeat_at` set to Redis's time) for one TTL, and names it
    /// in the registry. Call at least twice per TTL.
    pub async fn heartbeat(&self, info: &NodeInfo) -> Result<(), ClusterError> {
        debug_assert_eq!(&info.id, self.me());
        let mut conn = self.conn().await?;
        let mut info = info.clone();
        info.heartbeat_at = redis_now(&mut conn).await?;
        let json = serde_json::to_string(&info).map_err(|e| ClusterError::Corrupt(e.to_string()))?;
        let ttl_ms = self.ttl.as_millis() as u64;
        let () = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(node_key(&info.id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("SADD")
            .arg(NODES)
            .arg(info.id.as_str())
            .ignore()
            .query_async(&mut *conn)
            .await?;
        Ok(())
    }

    /// Every node alive now (its entry not run out), by id.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        Ok(self.registered().await?.into_iter().filter_map(|(_, info)| info).collect())
    }

    /// The live node `id`, if it is alive.
    pub async fn node(&self, id: &NodeId) -> Result<Option<NodeInfo>, ClusterError> {
        let mut conn = self.conn().await?;
        let json: Option<String> = redis::cmd("GET").arg(node_key(id)).query_async(&mut *conn).await?;
        json.map(|json| parse(&json)).transpose()
    }

    /// The nodes that registered, were not reaped, and whose entry ran out: dead, or cut off from
    /// Redis for longer than the TTL. Never this node.
    pub async fn lost_nodes(&self) -> Result<Vec<NodeId>, ClusterError> {
        Ok(self
            .registered()
            .await?
            .into_iter()
            .filter(|(id, info)| info.is_none() && id != self.me())
            .map(|(id, _)| id)
            .collect())
    }

    /// Takes the right to reap `node` for a while (one node at a time does it); answers whether
    /// this node took it.
    pub async fn take_reaping(&self, node: &NodeId) -> Result<bool, ClusterError> {
        let mut conn = self.conn().await?;
        let taken: Option<String> = redis::cmd("SET")
            .arg(reap_key(node))
            .arg(self.me().as_str())
            .arg("NX")
            .arg("PX")
            .arg(30_000)
            .query_async(&mut *conn)
            .await?;
        Ok(taken.is_some())
    }

    /// Gives the reaping of `node` up (its agents could not be marked), so that it is tried again.
    pub async fn give_up_reaping(&self, node: &NodeId) -> Result<(), ClusterError> {
        let mut conn = self.conn().await?;
        let () = redis::cmd("DEL").arg(reap_key(node)).query_async(&mut *conn).await?;
        Ok(())
    }

    /// After its agents were marked lost: frees `node`'s channels (those it still owns) and takes it
    /// out of the registry.
    pub async fn forget(&self, node: &NodeId) -> Result<usize, ClusterError> {
        let freed = self.release_channels_of(node).await?;
        let mut conn = self.conn().await?;
        let () = redis::pipe()
            .cmd("SREM")
            .arg(NODES)
            .arg(node.as_str())
            .ignore()
            .cmd("DEL")
            .arg(reap_key(node))
            .ignore()
            .query_async(&mut *conn)
            .await?;
        Ok(freed)
    }

    /// This node leaves the cluster (at the end of a clean shutdown): its channels are freed and its
    /// entry removed at once, rather than when it runs out.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        self.release_channels_of(self.me()).await?;
        let mut conn = self.conn().await?;
        let () = redis::pipe()
            .cmd("DEL")
            .arg(node_key(self.me()))
            .ignore()
            .cmd("SREM")
            .arg(NODES)
            .arg(self.me().as_str())
            .ignore()
            .query_async(&mut *conn)
            .await?;
        Ok(())
    }

    /// Every registered node with its entry, `None` where it ran out.
    async fn registered(&self) -> Result<Vec<(NodeId, Option<NodeInfo>)>, ClusterError> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = redis::cmd("SMEMBERS").arg(NODES).query_async(&mut *conn).await?;
        let ids: Vec<NodeId> = ids.into_iter().filter_map(|id| NodeId::new(id).ok()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(node_key).collect();
        let entries: Vec<Option<String>> = redis::cmd("MGET").arg(keys).query_async(&mut *conn).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, json) in ids.into_iter().zip(entries) {
            out.push((id, json.map(|json| parse(&json)).transpose()?));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

fn parse(json: &str) -> Result<NodeInfo, ClusterError> {
    serde_json::from_str(json).map_err(|e| ClusterError::Corrupt(format!("a node entry: {e}")))
}
