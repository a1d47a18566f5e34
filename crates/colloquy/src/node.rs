//! This node's part in a cluster (`--cluster redis://…` / `[cluster]`): its id, and the task that
//! keeps its place. Every `ttl / 3` the task
//!
//! - beats: writes this node's entry (addresses, live agents, channels) for one TTL;
//! - holds its channels: takes again (`SET NX`) the channel of every live agent, so that the map
//!   is whole again after Redis restarted empty;
//! - frees its idle channels: one with no live agent and nobody in it at two sweeps in a row (a
//!   sweep apart, so a join or a start between its claim and its first participant keeps it);
//! - reaps dead nodes: a registered node whose entry ran out is dead (or cut off for longer than
//!   the TTL); the node that takes its reaping marks its live agents FAILED `node_lost` in the
//!   records (once, whoever races: see `Store::fail_node`), which releases their ending webhooks
//!   to the outbox, and then frees its channels.
//!
//! The conversation core and the media know nothing of this.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use colloquy_cluster::{Claim, Cluster, NodeId, NodeInfo, NodeState, Placement};
use colloquy_model::{AppId, ChannelName};
use colloquy_rtc::server::ChannelServer;
use colloquy_store::Store;
use colloquy_supervisor::Supervisor;
use tokio::sync::watch;

use crate::config::ClusterConfig;

/// Connects to the cluster's Redis as this node (its id configured, or kept in the data dir).
pub async fn connect(config: &ClusterConfig, data_dir: &Path) -> anyhow::Result<Cluster> {
    let id = match &config.node_id {
        Some(id) => NodeId::new(id.clone()).map_err(|e| anyhow::anyhow!("cluster.node_id: {e}"))?,
        None => kept_node_id(data_dir)?,
    };
    Cluster::connect(&config.url, id, config.ttl).await.context("connecting to the cluster's Redis (--cluster)")
}

/// The node id in `data_dir/node-id`, written the first time: a node keeps its id across restarts,
/// so that it finds its own agents when it comes back.
fn kept_node_id(data_dir: &Path) -> anyhow::Result<NodeId> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => NodeId::new(text.trim()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = NodeId::generate();
            std::fs::write(&path, id.as_str()).with_context(|| format!("writing {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The task keeping this node's place in the cluster.
#[derive(Debug)]
pub struct Membership {
    cluster: Cluster,
    state: watch::Sender<Option<NodeState>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the task reads each round.
struct Round {
    cluster: Cluster,
    supervisor: Supervisor,
    channels: Option<ChannelServer>,
    store: Store,
    info: NodeInfo,
    /// Channels found idle at the last sweep.
    idle: HashSet<(AppId, ChannelName)>,
}

impl Membership {
    /// Frees what this node held before it (re)started, beats once, and starts the task.
    pub async fn start(
        cluster: Cluster,
        supervisor: Supervisor,
        channels: Option<ChannelServer>,
        store: Store,
        info: NodeInfo,
    ) -> anyhow::Result<Membership> {
        // Its agents were failed by `recover`; the channels it owned before are nobody's now.
        cluster.leave().await.context("freeing this node's channels of its last run")?;
        cluster.heartbeat(&info).await.context("registering this node in the cluster")?;
        let (state, mut state_rx) = watch::channel(Some(NodeState::Serving));
        let mut round = Round { cluster: cluster.clone(), supervisor, channels, store, info, idle: HashSet::new() };
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(round.cluster.ttl() / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = state_rx.changed() => if changed.is_err() { return },
                }
                let Some(state) = *state_rx.borrow_and_update() else { return };
                round.info.state = state;
                round.run().await;
            }
        });
        Ok(Membership { cluster, state, task })
    }

    /// Stops taking new channels (they go to other nodes); calls in progress go on.
    pub fn drain(&self) {
        self.state.send_replace(Some(NodeState::Draining));
    }

    /// Ends the task and leaves the cluster: this node's channels are freed and its entry removed.
    pub async fn leave(self) {
        self.state.send_replace(None);
        let _ = self.task.await;
        if let Err(e) = self.cluster.leave().await {
            tracing::error!(error = %e, "could not leave the cluster; the others will find this node gone within its TTL");
        }
    }
}

impl Round {
    async fn run(&mut self) {
        if let Err(e) = self.beat().await {
            tracing::error!(error = %e, "cluster heartbeat failed");
            return;
        }
        if let Err(e) = self.hold_and_sweep().await {
            tracing::error!(error = %e, "cluster channel sweep failed");
        }
        if let Err(e) = self.reap().await {
            tracing::error!(error = %e, "looking for lost cluster nodes failed");
        }
    }

    async fn beat(&mut self) -> Result<(), colloquy_cluster::ClusterError> {
        self.info.agents = self.supervisor.live_counts().values().sum::<usize>() as u32;
        self.info.channels = self.cluster.my_channels().await?.len() as u32;
        self.cluster.heartbeat(&self.info).await
    }

    async fn hold_and_sweep(&mut self) -> Result<(), colloquy_cluster::ClusterError> {
        let live = self.supervisor.live_channels();
        for (app, channel) in &live {
            if let Claim::Elsewhere(node) = self.cluster.claim_channel(app, channel, Placement::Here).await? {
                tracing::error!(app = %app, channel = %channel, owner = %node.id,
                    "a channel with an agent on this node is owned by another node");
            }
        }
        let mut idle = HashSet::new();
        for key in self.cluster.my_channels().await? {
            if live.contains(&key) {
                continue;
            }
            let occupied = match &self.channels {
                Some(server) => !server.participants(key.0.as_str(), key.1.as_str()).await.is_empty(),
                None => false,
            };
            if !occupied {
                idle.insert(key);
            }
        }
        for (app, channel) in idle.intersection(&self.idle) {
            self.cluster.release_channel(app, channel).await?;
        }
        self.idle = idle;
        Ok(())
    }

    async fn reap(&mut self) -> Result<(), colloquy_cluster::ClusterError> {
        for node in self.cluster.lost_nodes().await? {
            if !self.cluster.take_reaping(&node).await? {
                continue;
            }
            match self.store.fail_node(node.as_str(), colloquy_supervisor::now()).await {
                Ok(failed) => {
                    let freed = self.cluster.forget(&node).await?;
                    tracing::warn!(node = %node, agents = failed.len(), channels = freed,
                        "a cluster node was lost: its live agents are marked FAILED (node_lost)");
                }
                Err(e) => {
                    tracing::error!(node = %node, error = %e, "could not mark a lost node's agents; trying again");
                    self.cluster.give_up_reaping(&node).await?;
                }
            }
        }
        Ok(())
    }
}
