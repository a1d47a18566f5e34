//! The agent supervisor: admits agents (a semaphore, not a sampled load), keeps the registry of live
//! agents, runs each agent's session as its own task, and stops them all on shutdown with their
//! records written.
//!
//! It knows the model and the store; it knows nothing of HTTP or of any dialect. Every dialect
//! drives agents through [`Supervisor`]'s methods.

mod media;
mod session;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use colloquy_model::{
    AgentCommand, AgentEvent, AgentId, AgentName, AgentRecord, AgentSpec, AgentState, AgentStatus, AppId,
    ConversationState, HistoryEntry, SpecUpdate, TurnRecord, UnixMillis,
};
use colloquy_store::{AgentFilter, AgentPage, ListCursor, StateChange, Store, StoreError};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

pub use crate::media::{ConversationEvents, MediaCommand, MediaRuntime, MediaSession, MediaStart};
pub use crate::session::panic_message;
use crate::session::{Command, SessionContext};
pub use crate::stats::{BUCKETS_MS, Histogram, HistogramSnapshot, LATE_FRAME_MS, STAGES, TurnStats};

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
    #[error(transparent)]
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
            }),
        }
    }

    /// Marks the agents that were live when the last process died FAILED ("node restarted").
    /// Returns how many there were.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let orphans = self.inner.store.fail_orphans(now()).await?;
        for id in &orphans {
            tracing::warn!(agent_id = %id, "agent was running when the node stopped; marked FAILED");
        }
        Ok(orphans.len())
    }

    /// The stream of lifecycle events (started, stopped, failed) of every agent. There is one stream:
    /// the first call takes it, later calls get `None`. Until it is taken, no event is kept. The
    /// stream ends after [`Supervisor::shutdown`].
    pub fn take_events(&self) -> Option<mpsc::Receiver<AgentEvent>> {
        let mut events = self.inner.events.lock().expect("lock");
        if events.is_some() || *self.inner.shutdown.borrow() {
            return None;
        }
        let (tx, rx) = mpsc::channel(1024);
        *events = Some(tx);
        Some(rx)
    }

    /// Hands an event to whoever took the stream; waits when they are behind.
    async fn emit(&self, event: AgentEvent) {
        let sender = self.inner.events.lock().expect("lock").clone();
        if let Some(sender) = sender {
            let _ = sender.send(event).await;
        }
    }

    /// The sink for `record`'s conversation events: the same stream as the lifecycle events.
    fn conversation_events(&self, record: &AgentRecord) -> ConversationEvents {
        let sender = self.inner.events.lock().expect("lock").clone();
        let state = self.live().get(&record.id).map(|a| a.conversation.clone()).unwrap_or_default();
        ConversationEvents::with_state(record.clone(), sender, state)
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
        let record = AgentRecord {
            id: AgentId::from_string(uuid::Uuid::now_v7().simple().to_string()),
            app,
            spec,
            state: AgentState::Starting,
            created_at: now(),
            stopped_at: None,
        };
        // The store enforces name uniqueness too, so of two racing starts only one gets here.
        self.inner.store.insert_agent(&record).await.map_err(|e| match e {
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

    /// Asks a live agent to leave; answers with its final record (STOPPED, reason "left"). An agent
    /// that is already over answers with its record as it is, so a retried leave is harmless.
    pub async fn leave(&self, app: &AppId, id: &AgentId) -> Result<AgentRecord, SupervisorError> {
        let Some(commands) = self.live_commands(app, id) else {
            return self.get(app, id).await;
        };
        let (done_tx, done_rx) = oneshot::channel();
        if commands.send(Command::Leave { done: done_tx }).await.is_ok()
            && let Ok(record) = done_rx.await
        {
            return Ok(record);
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
    /// its final state. Starts are refused from the moment this is called.
    pub async fn shutdown(&self) {
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
            Ok(Some(record)) => SupervisorError::NotRunning(record.state.status()),
            Ok(None) => SupervisorError::NotFound,
            Err(e) => SupervisorError::Store(e),
        }
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
