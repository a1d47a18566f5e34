//! Live agents: the runtime that puts a [`Conversation`](colloquy_conversation::Conversation) in a
//! channel. It joins the agent to the channel server, feeds the conversation the listened-to
//! participants' audio (mixed, at 16 kHz, with Silero VAD results), runs the providers the
//! conversation asks for, paces the agent's audio into the channel, sends client events on the data
//! channel (`protocol.rs`), and writes history and turns to the store.
//!
//! [`AgentRuntime`] is the supervisor's [`MediaRuntime`]. Each agent runs as one task (`session.rs`),
//! with bounded queues between it and its provider tasks. A watchdog fails an agent whose loop is
//! stuck in one step for [`WATCHDOG_LIMIT`]; a panic in a session ends that agent alone (FAILED,
//! "panicked") and it leaves its channel either way.

mod audio;
mod events;
mod protocol;
mod session;
mod stack;
mod tools;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use colloquy_model::{AgentRecord, ExitReason, RemoteUids};
use colloquy_rtc::server::{ChannelServer, Listen};
use colloquy_store::Store;
use colloquy_supervisor::{ConversationEvents, MediaRuntime, MediaSession, MediaStart, TurnStats};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub use crate::audio::{Downsampler, Mixer, VadFramer};
pub use crate::protocol::{client_message, metrics_json};
pub use crate::stack::{EmbeddedModels, Stack};

/// A session whose loop spends longer than this on one step is failed by the watchdog.
pub const WATCHDOG_LIMIT: Duration = Duration::from_secs(10);

/// The embedded models as they load: `None` until loaded, then the models or why they failed.
pub type ModelsLoading = tokio::sync::watch::Receiver<Option<Result<Arc<EmbeddedModels>, String>>>;

/// Starts agents' media: one per agent, sharing the channel server, the models and the store.
#[derive(Clone, Debug)]
pub struct AgentRuntime {
    channels: ChannelServer,
    models: ModelsLoading,
    store: Store,
}

impl AgentRuntime {
    pub fn new(channels: ChannelServer, models: ModelsLoading, store: Store) -> AgentRuntime {
        AgentRuntime { channels, models, store }
    }

    /// Loads the default models on a blocking thread; agents that start before it is done wait.
    pub fn load_models_in_background() -> ModelsLoading {
        let (loaded_tx, loaded) = tokio::sync::watch::channel(None);
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let result = EmbeddedModels::load_defaults().map(Arc::new).map_err(|e| e.to_string());
            match &result {
                Ok(_) => tracing::info!(ms = started.elapsed().as_millis() as u64, "embedded models loaded"),
                Err(e) => tracing::error!(error = %e, "embedded models failed to load"),
            }
            loaded_tx.send_replace(Some(result));
        });
        loaded
    }

    async fn models(&self) -> Result<Arc<EmbeddedModels>, String> {
        let mut loading = self.models.clone();
        let loaded = loading.wait_for(Option::is_some).await.map_err(|_| "the models never loaded".to_owned())?;
        loaded.clone().expect("waited for Some")
    }
}

impl MediaRuntime for AgentRuntime {
    fn start(&self, agent: AgentRecord, stats: Arc<TurnStats>, conversation_events: ConversationEvents) -> MediaStart {
        let runtime = self.clone();
        Box::pin(async move {
            let stack = runtime.models().await?.stack(&agent.spec)?;
            if matches!(agent.spec.llm.provider, colloquy_model::LlmProvider::Local { .. }) {
                warm_up(&stack, &agent);
            }
            let listen = match &agent.spec.remote_uids {
                RemoteUids::Any => Listen::Everyone,
                RemoteUids::Only(uids) => Listen::Only(uids.iter().map(ToString::to_string).collect()),
            };
            let seat = runtime
                .channels
                .join_agent(agent.app.as_str(), agent.spec.channel.as_str(), agent.spec.agent_uid.as_str(), listen)
                .await
                .map_err(|e| format!("joining channel {}: {e}", agent.spec.channel))?;
            let (commands_tx, commands) = mpsc::channel(16);
            let (ended_tx, ended) = oneshot::channel();
            let busy_since = Arc::new(AtomicU64::new(0));
            let heartbeat_base = Instant::now();
            let handle = seat.handle.clone();
            let parts = session::SessionParts {
                agent: agent.clone(),
                stack,
                events: seat.events,
                handle: seat.handle,
                commands,
                store: runtime.store.clone(),
                stats,
                conversation_events,
                busy_since: busy_since.clone(),
                heartbeat_base,
            };
            tokio::spawn(async move {
                let mut session = tokio::spawn(session::run(parts));
                let reason = tokio::select! {
                    ended = &mut session => match ended {
                        Ok(reason) => reason,
                        Err(e) if e.is_panic() => {
                            let detail = colloquy_supervisor::panic_message(e.into_panic());
                            tracing::error!(agent_id = %agent.id, detail, "agent session panicked");
                            ExitReason::Panicked(detail)
                        }
                        Err(_) => ExitReason::Error("the session was cancelled".into()),
                    },
                    stuck = watchdog(busy_since, heartbeat_base) => {
                        session.abort();
                        tracing::error!(agent_id = %agent.id, seconds = stuck.as_secs(), "agent session stuck; failed by the watchdog");
                        ExitReason::Error(format!("watchdog: the session was stuck for {} s", stuck.as_secs()))
                    }
                };
                handle.leave().await;
                let _ = ended_tx.send(reason);
            });
            Ok(MediaSession { commands: commands_tx, ended })
        })
    }
}

/// Runs the agent's system prompt through a local LLM once, in the background: the model keeps the
/// KV cache of a system prompt it has seen, so the first turn's first token comes as fast as later
/// ones (about 60 ms instead of 180 ms for SmolLM2 on 2 cores).
fn warm_up(stack: &Stack, agent: &AgentRecord) {
    use colloquy_providers::llm::{ChatMessage, LlmRequest, ToolUse};
    use futures_util::StreamExt;
    let mut messages: Vec<ChatMessage> = agent
        .spec
        .llm
        .system_messages
        .iter()
        .map(|m| ChatMessage { role: m.role, content: m.content.clone() })
        .collect();
    messages.push(ChatMessage { role: colloquy_model::PromptRole::User, content: "Hello.".into() });
    let params = colloquy_model::LlmParams { temperature: 0.0, top_p: 1.0, max_tokens: 1 };
    let mut answer =
        stack.llm.chat(LlmRequest { turn: colloquy_model::TurnId(0), messages, params, tools: ToolUse::none() });
    tokio::spawn(async move { while answer.next().await.is_some() {} });
}

/// Resolves when the session has been busy with one step for longer than [`WATCHDOG_LIMIT`].
async fn watchdog(busy_since: Arc<AtomicU64>, base: Instant) -> Duration {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let since = busy_since.load(Ordering::Relaxed);
        if since == 0 {
            continue;
        }
        let busy = base.elapsed().saturating_sub(Duration::from_millis(since));
        if busy > WATCHDOG_LIMIT {
            return busy;
        }
    }
}
