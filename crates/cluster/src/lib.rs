//! Cluster state in Redis: what several `colloquy serve` nodes sharing one API must agree on, and
//! nothing else (the records stay in the store).
//!
//! - the node registry (`nodes.rs`): each node's advertised addresses and load under a key that
//!   lives `ttl` (5 s by default) and that its heartbeat renews; a node whose key ran out is dead,
//!   and one other node (the one that takes the reaping lock) tells the records so;
//! - the channel-to-node map (`channels.rs`): a channel is taken with `SET NX`, so **a channel has
//!   one owner**, the node where its people and agents are; a new channel goes to the serving node
//!   with the most free capacity;
//! - what every node must count together (`shared.rs`): request nonces (a replay fails whichever
//!   node it reaches), per-credential rate limits, and per-agent callback sequence numbers.
//!
//! One [`Cluster`] handle per node, cheap to clone, over a pool of Redis connections (bb8 over
//! redis-rs's multiplexed connections: a connection broken by a Redis restart fails its PING at
//! checkout and is replaced, so the nodes reconnect by themselves).

use std::time::Duration;

mod channels;
mod nodes;
mod shared;

pub use channels::{Claim, Placement};
pub use nodes::{NodeInfo, NodeState};

/// Every key colloquy writes starts with this.
const PREFIX: &str = "colloquy:";

/// How long a node's registry entry lives without a heartbeat, unless configured.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

/// A node's name in the cluster: stable across its restarts (kept in its data dir or configured),
/// 1 to 64 of `A-Z a-z 0-9 _ - .`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    pub fn new(value: impl Into<String>) -> Result<NodeId, String> {
        let value = value.into();
        if value.is_empty() || value.len() > 64 {
            return Err(format!("a node id is 1 to 64 characters, not {}", value.len()));
        }
        if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || "_-.".contains(*c))) {
            return Err(format!("a node id may hold letters, digits, '_', '-' and '.', not {bad:?}"));
        }
        Ok(NodeId(value))
    }

    /// A fresh random id.
    pub fn generate() -> NodeId {
        // The random tail of a v7 UUID (its head is the time).
        NodeId(format!("node-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        NodeId::new(value)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Redis could not be reached or answered something unexpected.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("no redis connection: {0}")]
    Pool(String),
    #[error("corrupt cluster state: {0}")]
    Corrupt(String),
}

impl From<bb8::RunError<redis::RedisError>> for ClusterError {
    fn from(e: bb8::RunError<redis::RedisError>) -> ClusterError {
        match e {
            bb8::RunError::User(e) => ClusterError::Redis(e),
            bb8::RunError::TimedOut => ClusterError::Pool("timed out waiting for a connection".into()),
        }
    }
}

/// One node's handle on the cluster state; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    pool: bb8::Pool<redis::Client>,
    me: NodeId,
    ttl: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("me", &self.me).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to the Redis at `url` (`redis://host:port/db`) as node `me`, whose registry entry
    /// lives `ttl` without a heartbeat. Fails when Redis does not answer a PING within 3 s.
    pub async fn connect(url: &str, me: NodeId, ttl: Duration) -> Result<Cluster, ClusterError> {
        let client = redis::Client::open(url)?;
        let pool = bb8::Pool::builder().max_size(16).connection_timeout(Duration::from_secs(3)).build_unchecked(client);
        let cluster = Cluster { pool, me, ttl };
        {
            let mut conn = cluster.conn().await?;
            let _: String = redis::cmd("PING").query_async(&mut *conn).await?;
        }
        Ok(cluster)
    }

    /// This node's id.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// How long a registry entry lives without a heartbeat.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn conn(&self) -> Result<bb8::PooledConnection<'_, redis::Client>, ClusterError> {
        Ok(self.pool.get().await?)
    }
}

/// The time Redis keeps, in milliseconds: every node reads the same clock for expiries.
async fn redis_now(conn: &mut redis::aio::MultiplexedConnection) -> Result<i64, ClusterError> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(secs * 1000 + micros / 1000)
}
