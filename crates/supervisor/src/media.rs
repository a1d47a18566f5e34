//! The seam between an agent's lifecycle and its media: joining the channel and running the
//! conversation. The supervisor knows only this trait; the binary plugs in the implementation
//! (`colloquy-agent`), so lifecycles stay testable without WebRTC or models.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use colloquy_model::{
    AgentCommand, AgentEvent, AgentEventKind, AgentRecord, ConversationEvent, ConversationState, ExitReason,
    SpecUpdate, UnixMillis,
};
use tokio::sync::{mpsc, oneshot};

use crate::TurnStats;

/// A media session starting: resolves once the agent is in its channel, or with why it cannot be.
pub type MediaStart = Pin<Box<dyn Future<Output = Result<MediaSession, String>> + Send>>;

/// Starts agents' media. Shared by every session.
pub trait MediaRuntime: Send + Sync + fmt::Debug + 'static {
    /// Joins `agent`'s channel and starts its conversation, whose turns are counted in `stats` and
    /// whose events go to `events`.
    fn start(&self, agent: AgentRecord, stats: Arc<TurnStats>, events: ConversationEvents) -> MediaStart;
}

/// Where a media session reports what happens in its conversation, for webhooks. Sending never
/// waits: a media loop must not stall behind a slow webhook receiver, so when the queue is full
/// the event is dropped with an error log (the queue holds 1,024 events and is drained into the
/// persistent outbox as they come).
#[derive(Clone, Debug)]
pub struct ConversationEvents {
    agent: Arc<AgentRecord>,
    sender: Option<mpsc::Sender<AgentEvent>>,
    /// Counts what was sent, so that an agent's ending can wait until its events are handled.
    sent: Option<Arc<AtomicU64>>,
    /// The conversation's state as the registry shows it: 0 before the first report, then
    /// `ConversationState` as `index + 1`.
    state: Arc<AtomicU8>,
}

/// Reads the state a [`ConversationEvents`] last reported.
pub(crate) fn read_state(cell: &AtomicU8) -> Option<ConversationState> {
    match cell.load(Ordering::Relaxed) {
        0 => None,
        n => ConversationState::ALL.get(usize::from(n) - 1).copied(),
    }
}

impl ConversationEvents {
    /// A sink into `sender`, when `agent` has callbacks (otherwise nobody wants its events).
    pub fn new(agent: AgentRecord, sender: Option<mpsc::Sender<AgentEvent>>) -> ConversationEvents {
        Self::with_state(agent, sender, None, Arc::default())
    }

    pub(crate) fn with_state(
        agent: AgentRecord,
        sender: Option<mpsc::Sender<AgentEvent>>,
        sent: Option<Arc<AtomicU64>>,
        state: Arc<AtomicU8>,
    ) -> ConversationEvents {
        // Only an agent with somewhere to post its events produces them.
        let sender = sender.filter(|_| agent.spec.callbacks.is_some());
        ConversationEvents { agent: Arc::new(agent), sender, sent, state }
    }

    /// A sink that drops everything: for media sessions outside a supervisor.
    pub fn none(agent: AgentRecord) -> ConversationEvents {
        ConversationEvents { agent: Arc::new(agent), sender: None, sent: None, state: Arc::default() }
    }

    /// The conversation is now in `state` (kept for [`Supervisor::conversation_state`](crate::Supervisor::conversation_state),
    /// whether or not anyone wants events).
    pub fn set_state(&self, state: ConversationState) {
        let index = ConversationState::ALL.iter().position(|s| *s == state).unwrap_or(0);
        self.state.store(index as u8 + 1, Ordering::Relaxed);
    }

    /// Whether anyone listens; callers skip building events when nobody does.
    pub fn wanted(&self) -> bool {
        self.sender.is_some()
    }

    pub fn send(&self, event: ConversationEvent, at: UnixMillis) {
        let Some(sender) = &self.sender else { return };
        let event = AgentEvent { kind: AgentEventKind::Conversation(event), agent: (*self.agent).clone(), at };
        match sender.try_send(event) {
            Ok(()) => {
                if let Some(sent) = &self.sent {
                    sent.fetch_add(1, Ordering::AcqRel);
                }
            }
            Err(_) => {
                tracing::error!(agent_id = %self.agent.id, "conversation event queue full or closed; event dropped")
            }
        }
    }
}

/// What a session can tell its media.
#[derive(Debug)]
pub enum MediaCommand {
    Agent(AgentCommand),
    Update(SpecUpdate),
    /// Leave the channel and end; `ended` answers once the agent is out.
    Stop,
}

/// A running media session. It ends by itself (idle timeout, a failure it cannot recover from) or
/// after [`MediaCommand::Stop`]; either way `ended` says why. If its task panics, `ended` is closed
/// without a reason, and the agent is FAILED.
#[derive(Debug)]
pub struct MediaSession {
    pub commands: mpsc::Sender<MediaCommand>,
    pub ended: oneshot::Receiver<ExitReason>,
}
