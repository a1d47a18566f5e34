//! The agent supervisor: admits agents (a semaphore, not a sampled load), keeps the registry of live
//! agents, runs each agent's session as its own task, and stops them all on shutdown with their
//! records written.
//!
//! It knows the model, the store and the cluster state (when the node is one of several: a new
//! agent's channel must be this node's); it knows nothing of HTTP or of any dialect. Every dialect
//! drives agents through [`Supervisor`]'s methods.

mod media;
mod session;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use colloquy_cluster::{Claim, Cluster, NodeId, NodeInfo, Placement};
use colloquy_model::{
    AgentCommand, AgentEvent, AgentEventKind, AgentId, AgentName, AgentRecord, AgentSpec, AgentState, AgentStatus,
    AppId, ChannelName, ConversationState, HistoryEntry, SpecUpdate, TurnRecord, UnixMillis,
};
use colloquy_store::{AgentFilter, AgentPage, ListCursor, OutgoingWebhook, StateChange, Store, StoreError};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

pub use crate::media::{ConversationEvents, MediaCommand, MediaRuntime, MediaSession, MediaStart};
pub use crate::session::panic_message;
use crate::session::{Command, SessionContext};
pub use crate::stats::{BUCKETS_MS, Histogram, HistogramSnapshot, LATE_FRAME_MS, STAGES, TurnStats};

/// Formats an agent's lifecycle event as its webhook deliveries, in the form of the dialect that
/// owns the agent (none when it has no callbacks). The binary installs one with
/// [`Supervisor::set_webhooks`]; sessions write what it returns in the transaction that records the
/// state change the event reports, so the event is in the outbox before any answer says it
/// happened, and a crash cannot record the one without the other.
pub trait WebhookFormatter: Send + Sync + std::fmt::Debug {
    fn format<'a>(&'a self, event: &'a AgentEvent) -> Pin<Box<dyn Future<Output = Vec<OutgoingWebhook>> + Send + 'a>>;
}

/// What shutdown could not record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShutdownReport {
    /// Agents whose final state could not be written (the records still show them live; the next
    /// start marks them FAILED, "node restarted", and sends their crash ending), with the error.
    pub unrecorded: Vec<(AgentId, String)>,
}

/// The stream of agent events (see [`Supervisor::take_events`]). An event counts as handled once
/// the consumer asks for the next one (or drops the stream).
#[derive(Debug)]
pub struct EventStream {
    events: mpsc::Receiver<AgentEvent>,
    handled: Option<Arc<watch::Sender<u64>>>,
    /// An event was returned and not yet counted as handled.
    unmarked: bool,
}

impl EventStream {
    /// A stream outside a supervisor (benchmarks): nothing waits on it.
    pub fn from_receiver(events: mpsc::Receiver<AgentEvent>) -> EventStream {
        EventStream { events, handled: None, unmarked: false }
    }

    /// The next event; `None` once the stream has ended.
    pub async fn recv(&mut self) -> Option<AgentEvent> {
        self.mark();
        let event = self.events.recv().await;
        self.unmarked = event.is_some();
        event
    }

    fn mark(&mut self) {
        if std::mem::take(&mut self.unmarked)
            && let Some(handled) = &self.handled
        {
            handled.send_modify(|n| *n += 1);
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.mark();
        // Whatever is left will never be handled: nobody should wait for it.
        if let Some(handled) = &self.handled {
            handled.send_modify(|n| *n = u64::MAX);
        }
    }
}

/// How the supervisor is sized.
#[derive(Clone, Copy, Debug)]
pub struct SupervisorConfig {
    /// The most agents live at once on this node. A start beyond it is refused, not queued.
    pub max_agents: u32,
}

/// Why an operation on agents was refused.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("no agent with this id")]
    NotFound,
    #[error("a running agent is already named {0:?}")]
    NameTaken(String),
    #[error("this node already runs its maximum of {max} agents")]
    AgentLimit { max: u32 },
    #[error("the agent is {0}, not running")]
    NotRunning(AgentStatus),
    #[error("agent has no media session")]
    NoMediaSession,
    /// The agent could not join its channel or start its conversation.
    #[error("the agent could not start: {0}")]
    StartFailed(String),
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The agent ended, but its end could not be recorded (yet): the records still show it live.
    #[error("{0}")]
    NotRecorded(String),
    /// The agent, or the channel it would join, lives on another cluster node: only that node can
    /// do what was asked.
    #[error("{what} is on cluster node {} ({}); send the request there", node.id, node.http)]
    Elsewhere { what: &'static str, node: Box<NodeInfo> },
    /// The cluster state (Redis) could not be read or written, or the agent's node stopped
    /// answering; nothing was done.
    #[error("{0}")]
    Cluster(String),
    /// The records could not be read or written; what was asked was not done (or, for an agent
    /// that ended anyway, its end is not recorded yet).
    #[error("the records are unavailable: {0}")]
    Store(#[from] StoreError),
}

/// A handle to the supervisor; cheap to clone.
#[derive(Clone, Debug)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    config: SupervisorConfig,
    /// Joins channels and runs conversations; without it, agents are lifecycles only.
    media: Option<Arc<dyn MediaRuntime>>,
    /// Latency of every turn of every agent, for metrics.
    turn_stats: Arc<TurnStats>,
    /// One permit per live agent. A start takes a permit before anything else and its session
    /// gives it back when the agent is over, so the count of live agents can never pass
    /// `max_agents`, however many starts race.
    admission: Arc<Semaphore>,
    /// Every agent between its admission and its terminal state, with the latest snapshot of its
    /// record and the sender of its session's commands.
    live: Mutex<HashMap<AgentId, LiveAgent>>,
    /// Flips to `true` once, when the node starts shutting down; every session watches it.
    shutdown: watch::Sender<bool>,
    /// Each session holds a clone of this sender. Shutdown drops the original and waits until the
    /// receiver sees every clone gone: then every session has written its final state.
    sessions_running: Mutex<Option<mpsc::Sender<()>>>,
    sessions_done: tokio::sync::Mutex<mpsc::Receiver<()>>,
    /// How many agents ended since this process started, by final status and reason code.
    ended: Mutex<HashMap<(AgentStatus, &'static str), u64>>,
    /// Where lifecycle events go, once someone took them with [`Supervisor::take_events`]. Dropped
    /// at the end of shutdown, after the last session's last event, so the consumer sees the end.
    events: Mutex<Option<mpsc::Sender<AgentEvent>>>,
    /// How many events went into the stream, and how many its consumer has handled: an agent's
    /// ending waits (briefly) until the events it sent before are handled, so that its ending
    /// webhook, which the session writes itself, comes after them.
    events_sent: Arc<AtomicU64>,
    events_handled: Arc<watch::Sender<u64>>,
    /// Formats lifecycle events as webhooks; without it, agents have no lifecycle webhooks.
    webhooks: OnceLock<Arc<dyn WebhookFormatter>>,
    /// Agents whose final state could not be written before shutdown gave up on them.
    unrecorded: Mutex<Vec<(AgentId, String)>>,
    /// The cluster this node is one of, when it is: a new agent's channel is taken for this node
    /// first, and an agent of another node is answered as such.
    cluster: OnceLock<Cluster>,
}

#[derive(Debug)]
struct LiveAgent {
    record: AgentRecord,
    commands: mpsc::Sender<Command>,
    /// What its media last reported of its conversation's state.
    conversation: Arc<std::sync::atomic::AtomicU8>,
}

impl Supervisor {
    /// A supervisor over `store` whose agents are lifecycles only (no channel, no conversation).
    /// Call [`Supervisor::recover`] once before the first start.
    pub fn new(store: Store, config: SupervisorConfig) -> Supervisor {
        Self::build(store, config, None)
    }

    /// A supervisor whose agents join their channels and talk, through `media`.
    pub fn with_media(store: Store, config: SupervisorConfig, media: Arc<dyn MediaRuntime>) -> Supervisor {
        Self::build(store, config, Some(media))
    }

    fn build(store: Store, config: SupervisorConfig, media: Option<Arc<dyn MediaRuntime>>) -> Supervisor {
        let (running_tx, running_rx) = mpsc::channel(1);
        Supervisor {
            inner: Arc::new(Inner {
                store,
                config,
                media,
                turn_stats: Arc::default(),
                admission: Arc::new(Semaphore::new(config.max_agents as usize)),
                live: Mutex::new(HashMap::new()),
                shutdown: watch::Sender::new(false),
                sessions_running: Mutex::new(Some(running_tx)),
                sessions_done: tokio::sync::Mutex::new(running_rx),
                ended: Mutex::new(HashMap::new()),
                events: Mutex::new(None),
                events_sent: Arc::default(),
                events_handled: Arc::new(watch::Sender::new(0)),
                webhooks: OnceLock::new(),
                unrecorded: Mutex::new(Vec::new()),
                cluster: OnceLock::new(),
            }),
        }
    }

    /// Marks the agents that were live when the last process died FAILED ("node restarted", or
    /// "node lost" in a cluster, where only this node's agents are its own). Returns how many
    /// there were.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let orphans = self.inner.store.fail_orphans(now()).await?;
        for id in &orphans {
            tracing::warn!(agent_id = %id, "agent was running when the node stopped; marked FAILED");
        }
        Ok(orphans.len())
    }

    /// Makes this node one of `cluster`'s, once, before the first start; answers `false` when it
    /// was already. The store should write for the same node ([`Store::for_node`]).
    pub fn set_cluster(&self, cluster: Cluster) -> bool {
        self.inner.cluster.set(cluster).is_ok()
    }

    /// The cluster this node is one of, if any.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.get()
    }

    /// The channels of the live agents, each once.
    pub fn live_channels(&self) -> std::collections::HashSet<(AppId, ChannelName)> {
        self.live().values().map(|a| (a.record.app.clone(), a.record.spec.channel.clone())).collect()
    }

    /// The stream of lifecycle events (started, stopped, failed) of every agent. There is one stream:
    /// the first call takes it, later calls get `None`. Until it is taken, no event is kept. The
    /// stream ends after [`Supervisor::shutdown`].
    pub fn take_events(&self) -> Option<EventStream> {
        let mut events = self.inner.events.lock().expect("lock");
        if events.is_some() || *self.inner.shutdown.borrow() {
            return None;
        }
        let (tx, rx) = mpsc::channel(1024);
        *events = Some(tx);
        Some(EventStream { events: rx, handled: Some(self.inner.events_handled.clone()), unmarked: false })
    }

    /// Waits until the consumer of the stream has handled every event sent so far, for `limit` at
    /// most.
    async fn events_caught_up(&self, limit: std::time::Duration) {
        let target = self.inner.events_sent.load(Ordering::Acquire);
        let mut handled = self.inner.events_handled.subscribe();
        let _ = tokio::time::timeout(limit, handled.wait_for(|n| *n >= target)).await;
    }

    /// Installs the webhook formatter, once, before the first start; answers `false` when one was
    /// installed already.
    pub fn set_webhooks(&self, webhooks: Arc<dyn WebhookFormatter>) -> bool {
        self.inner.webhooks.set(webhooks).is_ok()
    }

    /// The deliveries for `event`.
    async fn format_webhooks(&self, event: &AgentEvent) -> Vec<OutgoingWebhook> {
        match self.inner.webhooks.get() {
            Some(webhooks) => webhooks.format(event).await,
            None => Vec::new(),
        }
    }

    /// `agent`'s ending as it would read if the node died now: FAILED, "node restarted" (or "node
    /// lost" in a cluster).
    async fn crash_ending(&self, agent: &AgentRecord, at: UnixMillis) -> Vec<OutgoingWebhook> {
        if self.inner.webhooks.get().is_none() || agent.spec.callbacks.is_none() {
            return Vec::new();
        }
        let mut crashed = agent.clone();
        crashed.state = AgentState::exited(self.inner.store.crash_reason());
        crashed.stopped_at = Some(at);
        self.format_webhooks(&AgentEvent { kind: AgentEventKind::Failed, agent: crashed, at }).await
    }

    /// Hands an event to whoever took the stream. Never waits: the webhooks of lifecycle events are
    /// in the outbox already, so a consumer that is behind loses nothing but this copy.
    fn emit(&self, event: AgentEvent) {
        let sender = self.inner.events.lock().expect("lock").clone();
        if let Some(sender) = sender {
            match sender.try_send(event) {
                Ok(()) => {
                    self.inner.events_sent.fetch_add(1, Ordering::AcqRel);
                }
                Err(mpsc::error::TrySendError::Full(event)) => {
                    tracing::error!(agent_id = %event.agent.id, "event stream full; an event was dropped from it");
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Notes that `id`'s final state could not be written.
    fn unrecorded(&self, id: &AgentId, error: String) {
        self.inner.unrecorded.lock().expect("lock").push((id.clone(), error));
    }

    /// The sink for `record`'s conversation events: the same stream as the lifecycle events.
    fn conversation_events(&self, record: &AgentRecord) -> ConversationEvents {
        let sender = self.inner.events.lock().expect("lock").clone();
        let state = self.live().get(&record.id).map(|a| a.conversation.clone()).unwrap_or_default();
        ConversationEvents::with_state(record.clone(), sender, Some(self.inner.events_sent.clone()), state)
    }

    /// Where the live agent `id`'s conversation is (listening, thinking, …): `None` when it is not
    /// live, has no media, or its media has not reported yet.
    pub fn conversation_state(&self, app: &AppId, id: &AgentId) -> Option<ConversationState> {
        let live = self.live();
        let agent = live.get(id).filter(|a| &a.record.app == app)?;
        media::read_state(&agent.conversation)
    }

    /// Latency of every turn of every agent on this node.
    pub fn turn_stats(&self) -> &Arc<TurnStats> {
        &self.inner.turn_stats
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> SupervisorConfig {
        self.inner.config
    }

    /// Starts an agent for `app`. Answers once the agent is RUNNING.
    pub async fn start(&self, app: AppId, spec: AgentSpec) -> Result<AgentRecord, SupervisorError> {
        if *self.inner.shutdown.borrow() {
            return Err(SupervisorError::ShuttingDown);
        }
        let permit = Arc::clone(&self.inner.admission)
            .try_acquire_owned()
            .map_err(|_| SupervisorError::AgentLimit { max: self.inner.config.max_agents })?;
        if self.live().values().any(|a| a.record.app == app && a.record.spec.name == spec.name) {
            return Err(SupervisorError::NameTaken(spec.name.to_string()));
        }
        // In a cluster the channel is this node's before the agent is anything: a channel has one
        // owner, where its people and its agents are.
        if let Some(cluster) = self.inner.cluster.get() {
            match cluster.claim_channel(&app, &spec.channel, Placement::Here).await {
                Ok(Claim::Mine) => {}
                Ok(Claim::Elsewhere(node)) => {
                    return Err(SupervisorError::Elsewhere { what: "the agent's channel", node: Box::new(node) });
                }
                Err(e) => return Err(SupervisorError::Cluster(format!("the cluster state is unavailable: {e}"))),
            }
        }
        let record = AgentRecord {
            id: AgentId::from_string(uuid::Uuid::now_v7().simple().to_string()),
            app,
            spec,
            state: AgentState::Starting,
            created_at: now(),
            stopped_at: None,
        };
        // The store enforces name uniqueness too, so of two racing starts only one gets here. The
        // agent's crash ending is reserved with it: however it ends, its ending webhook goes out.
        let crash_ending = self.crash_ending(&record, record.created_at).await;
        self.inner.store.insert_agent_with(&record, &crash_ending).await.map_err(|e| match e {
            StoreError::NameTaken(name) => SupervisorError::NameTaken(name),
            e => SupervisorError::Store(e),
        })?;

        let Some(sessions_running) = self.inner.sessions_running.lock().expect("lock").clone() else {
            // Shutdown began after the check above; this agent never ran.
            let state = AgentState::exited(colloquy_model::ExitReason::NodeShutdown);
            self.inner.store.set_state(&record.id, &state, now()).await?;
            return Err(SupervisorError::ShuttingDown);
        };
        let (commands_tx, commands_rx) = mpsc::channel(16);
        let (started_tx, started_rx) = oneshot::channel();
        self.live().insert(
            record.id.clone(),
            LiveAgent { record: record.clone(), commands: commands_tx, conversation: Arc::default() },
        );
        tracing::info!(agent_id = %record.id, name = %record.spec.name, channel = %record.spec.channel, "agent starting");
        session::spawn(SessionContext {
            supervisor: self.clone(),
            record,
            commands: commands_rx,
            shutdown: self.inner.shutdown.subscribe(),
            started: started_tx,
            permit,
            sessions_running,
        });
        match started_rx.await {
            Ok(started) => started,
            Err(_) => Err(SupervisorError::Store(StoreError::Corrupt("agent session ended while starting".into()))),
        }
    }

    /// The agent `id` of `app`: its live snapshot when it runs, its record otherwise.
    pub async fn get(&self, app: &AppId, id: &AgentId) -> Result<AgentRecord, SupervisorError> {
        if let Some(record) = self.live_record(app, id) {
            return Ok(record);
        }
        self.inner.store.agent(app, id).await?.ok_or(SupervisorError::NotFound)
    }

    /// A page of `app`'s agents, newest first.
    pub async fn list(
        &self,
        app: &AppId,
        filter: &AgentFilter,
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<AgentPage, SupervisorError> {
        Ok(self.inner.store.list_agents(app, filter, after, limit).await?)
    }

    /// How many of `app`'s agents match `filter`.
    pub async fn count(&self, app: &AppId, filter: &AgentFilter) -> Result<u64, SupervisorError> {
        Ok(self.inner.store.count_agents(app, filter).await?)
    }

    /// Asks a live agent to leave; answers with its final record (STOPPED, reason "left"). An agent
    /// that is already over answers with its record as it is, so a retried leave is harmless.
    pub async fn leave(&self, app: &AppId, id: &AgentId) -> Result<AgentRecord, SupervisorError> {
        let Some(commands) = self.live_commands(app, id) else {
            let record = self.get(app, id).await?;
            if !record.state.status().is_terminal()
                && let Some(elsewhere) = self.elsewhere(id).await
            {
                return Err(elsewhere);
            }
            return Ok(record);
        };
        let (done_tx, done_rx) = oneshot::channel();
        if commands.send(Command::Leave { done: done_tx }).await.is_ok()
            && let Ok(result) = done_rx.await
        {
            return result;
        }
        // The session ended on its own meanwhile (idle timeout, shutdown, panic): its record says how.
        self.inner.store.agent(app, id).await?.ok_or(SupervisorError::NotFound)
    }

    /// Changes a running agent's prompt, LLM parameters or voice; answers with its new snapshot.
    pub async fn update(&self, app: &AppId, id: &AgentId, update: SpecUpdate) -> Result<AgentRecord, SupervisorError> {
        let commands = self.require_live(app, id).await?;
        let (done_tx, done_rx) = oneshot::channel();
        commands.send(Command::Update { update, done: done_tx }).await.map_err(|_| SupervisorError::NotFound)?;
        match done_rx.await {
            Ok(result) => result,
            Err(_) => Err(self.not_running(app, id).await),
        }
    }

    /// Hands `speak`, `interrupt` or `think` to a running agent's conversation.
    pub async fn command(&self, app: &AppId, id: &AgentId, command: AgentCommand) -> Result<(), SupervisorError> {
        let commands = self.require_live(app, id).await?;
        if self.inner.media.is_none() {
            return Err(SupervisorError::NoMediaSession);
        }
        let (done_tx, done_rx) = oneshot::channel();
        commands.send(Command::Agent { command, done: done_tx }).await.map_err(|_| SupervisorError::NotFound)?;
        match done_rx.await {
            Ok(result) => result,
            Err(_) => Err(self.not_running(app, id).await),
        }
    }

    /// The agent's conversation history, oldest first.
    pub async fn history(&self, app: &AppId, id: &AgentId) -> Result<Vec<HistoryEntry>, SupervisorError> {
        self.get(app, id).await?;
        Ok(self.inner.store.history(id).await?)
    }

    /// The agent's turns with their latency breakdown.
    pub async fn turns(&self, app: &AppId, id: &AgentId) -> Result<Vec<TurnRecord>, SupervisorError> {
        self.get(app, id).await?;
        Ok(self.inner.store.turns(id).await?)
    }

    /// Every state the agent went through.
    pub async fn state_changes(&self, app: &AppId, id: &AgentId) -> Result<Vec<StateChange>, SupervisorError> {
        self.get(app, id).await?;
        Ok(self.inner.store.state_changes(id).await?)
    }

    /// How many live agents are in each status, for metrics.
    pub fn live_counts(&self) -> HashMap<AgentStatus, usize> {
        let mut counts = HashMap::new();
        for agent in self.live().values() {
            *counts.entry(agent.record.state.status()).or_default() += 1;
        }
        counts
    }

    /// Whether a live agent of `app` has this name.
    pub fn name_is_live(&self, app: &AppId, name: &AgentName) -> bool {
        self.live().values().any(|a| &a.record.app == app && &a.record.spec.name == name)
    }

    /// Stops every live agent (STOPPED, reason "node shut down") and waits until each has written
    /// its final state, or given up writing it (the report names those). Starts are refused from
    /// the moment this is called.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.inner.shutdown.send_replace(true);
        let running = self.inner.sessions_running.lock().expect("lock").take();
        drop(running);
        let live = self.live().len();
        if live > 0 {
            tracing::info!(live, "stopping live agents");
        }
        // `recv` returns `None` once every session has dropped its sender.
        let _ = self.inner.sessions_done.lock().await.recv().await;
        // Every session has sent its last event: end the stream.
        self.inner.events.lock().expect("lock").take();
        ShutdownReport { unrecorded: self.inner.unrecorded.lock().expect("lock").clone() }
    }

    fn live(&self) -> MutexGuard<'_, HashMap<AgentId, LiveAgent>> {
        self.inner.live.lock().expect("the registry lock is never held across a panic")
    }

    fn live_record(&self, app: &AppId, id: &AgentId) -> Option<AgentRecord> {
        self.live().get(id).filter(|a| &a.record.app == app).map(|a| a.record.clone())
    }

    fn live_commands(&self, app: &AppId, id: &AgentId) -> Option<mpsc::Sender<Command>> {
        self.live().get(id).filter(|a| &a.record.app == app).map(|a| a.commands.clone())
    }

    async fn require_live(&self, app: &AppId, id: &AgentId) -> Result<mpsc::Sender<Command>, SupervisorError> {
        match self.live_commands(app, id) {
            Some(commands) => Ok(commands),
            None => Err(self.not_running(app, id).await),
        }
    }

    async fn not_running(&self, app: &AppId, id: &AgentId) -> SupervisorError {
        match self.inner.store.agent(app, id).await {
            Ok(Some(record)) if !record.state.status().is_terminal() => match self.elsewhere(id).await {
                Some(elsewhere) => elsewhere,
                None => SupervisorError::NotRunning(record.state.status()),
            },
            Ok(Some(record)) => SupervisorError::NotRunning(record.state.status()),
            Ok(None) => SupervisorError::NotFound,
            Err(e) => SupervisorError::Store(e),
        }
    }

    /// In a cluster, why the live agent `id`, which this node does not run, is not this node's to
    /// command: it runs on another node (or did, until that node stopped answering).
    async fn elsewhere(&self, id: &AgentId) -> Option<SupervisorError> {
        let cluster = self.inner.cluster.get()?;
        let node = match self.inner.store.agent_node(id).await {
            Ok(Some(node)) => node,
            Ok(None) => return None,
            Err(e) => return Some(SupervisorError::Store(e)),
        };
        let node = NodeId::new(node).ok().filter(|node| node != cluster.me())?;
        Some(match cluster.node(&node).await {
            Ok(Some(info)) => SupervisorError::Elsewhere { what: "the agent", node: Box::new(info) },
            Ok(None) => SupervisorError::Cluster(format!(
                "the agent's cluster node {node} stopped answering; its agents are marked FAILED (node_lost) within {} ms",
                cluster.ttl().as_millis()
            )),
            Err(e) => SupervisorError::Cluster(format!("the cluster state is unavailable: {e}")),
        })
    }

    /// Called by a session after each state change it wrote down.
    fn publish(&self, record: &AgentRecord) {
        if let Some(agent) = self.live().get_mut(&record.id) {
            agent.record = record.clone();
        }
    }

    /// Called by a session when its agent is over, with its final record.
    fn retire(&self, record: &AgentRecord) {
        self.live().remove(&record.id);
        let reason = record.state.reason().map_or("none", |r| r.code());
        *self.inner.ended.lock().expect("lock").entry((record.state.status(), reason)).or_default() += 1;
    }

    /// How many agents ended since this process started, by final status and reason code.
    pub fn ended_counts(&self) -> HashMap<(AgentStatus, &'static str), u64> {
        self.inner.ended.lock().expect("lock").clone()
    }
}

/// The wall clock, for records. Only the supervisor and the edges read it; the model never does.
pub fn now() -> UnixMillis {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    UnixMillis(since_epoch.as_millis() as i64)
}
