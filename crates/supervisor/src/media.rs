//! The seam between an agent's lifecycle and its media: joining the channel and running the
//! conversation. The supervisor knows only this trait; the binary plugs in the implementation
//! (`colloquy-agent`), so lifecycles stay testable without WebRTC or models.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use colloquy_model::{AgentCommand, AgentRecord, ExitReason, SpecUpdate};
use tokio::sync::{mpsc, oneshot};

use crate::TurnStats;

/// A media session starting: resolves once the agent is in its channel, or with why it cannot be.
pub type MediaStart = Pin<Box<dyn Future<Output = Result<MediaSession, String>> + Send>>;

/// Starts agents' media. Shared by every session.
pub trait MediaRuntime: Send + Sync + fmt::Debug + 'static {
    /// Joins `agent`'s channel and starts its conversation, whose turns are counted in `stats`.
    fn start(&self, agent: AgentRecord, stats: Arc<TurnStats>) -> MediaStart;
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
