//! An agent's lifecycle, with the state names Agora uses (IDLE … FAILED).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The lifecycle states, without their reasons: what list filters and metrics count by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentStatus {
    /// Created and waiting; not yet starting.
    Idle,
    /// Acquiring what it needs to run (admission, media session).
    Starting,
    /// Live: in its channel, listening and answering.
    Running,
    /// Leaving its channel and writing its last records.
    Stopping,
    /// Gone, on purpose (see its [`ExitReason`]).
    Stopped,
    /// Live but recovering from a provider or media failure.
    Recovering,
    /// Gone because something went wrong (see its [`ExitReason`]).
    Failed,
}

impl AgentStatus {
    pub const ALL: [AgentStatus; 7] = [
        AgentStatus::Idle,
        AgentStatus::Starting,
        AgentStatus::Running,
        AgentStatus::Stopping,
        AgentStatus::Stopped,
        AgentStatus::Recovering,
        AgentStatus::Failed,
    ];

    /// The name on the wire and in records: `IDLE`, `STARTING`, …
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Idle => "IDLE",
            AgentStatus::Starting => "STARTING",
            AgentStatus::Running => "RUNNING",
            AgentStatus::Stopping => "STOPPING",
            AgentStatus::Stopped => "STOPPED",
            AgentStatus::Recovering => "RECOVERING",
            AgentStatus::Failed => "FAILED",
        }
    }

    /// Agora's numeric code for the state (IDLE 0 … FAILED 6).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Whether an agent in this state is over: it holds no resources and never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(self, AgentStatus::Stopped | AgentStatus::Failed)
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown status name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown status {0:?}; expected one of IDLE, STARTING, RUNNING, STOPPING, STOPPED, RECOVERING, FAILED")]
pub struct UnknownStatus(pub String);

impl FromStr for AgentStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        AgentStatus::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// Why an agent stopped or failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", content = "detail", rename_all = "snake_case")]
pub enum ExitReason {
    /// A caller asked it to leave through the API.
    Left,
    /// No listened-to participant was in the channel for `idle_timeout` seconds.
    IdleTimeout,
    /// The agent ended the call itself (its LLM called the built-in `end_call` tool).
    EndedByAgent,
    /// The node shut down gracefully (SIGINT/SIGTERM) while it ran.
    NodeShutdown,
    /// The process died while the agent ran; found on the next start-up.
    NodeRestarted,
    /// The cluster node running the agent died (or lost the cluster for longer than its TTL); found
    /// by another node, or by the node itself at its next start.
    NodeLost,
    /// The agent's session panicked; the detail is the panic message.
    Panicked(String),
    /// Something failed; the detail says what.
    Error(String),
}

impl ExitReason {
    /// A stable, machine-readable code: `left`, `idle_timeout`, `node_shutdown`, …
    pub fn code(&self) -> &'static str {
        match self {
            ExitReason::Left => "left",
            ExitReason::IdleTimeout => "idle_timeout",
            ExitReason::EndedByAgent => "ended_by_agent",
            ExitReason::NodeShutdown => "node_shutdown",
            ExitReason::NodeRestarted => "node_restarted",
            ExitReason::NodeLost => "node_lost",
            ExitReason::Panicked(_) => "panicked",
            ExitReason::Error(_) => "error",
        }
    }

    /// A sentence for people.
    pub fn message(&self) -> String {
        match self {
            ExitReason::Left => "left through the API".to_owned(),
            ExitReason::IdleTimeout => "idle timeout: no listened-to participant in the channel".to_owned(),
            ExitReason::EndedByAgent => "the agent ended the call".to_owned(),
            ExitReason::NodeShutdown => "node shut down".to_owned(),
            ExitReason::NodeRestarted => "node restarted while the agent was running".to_owned(),
            ExitReason::NodeLost => "the cluster node running the agent was lost".to_owned(),
            ExitReason::Panicked(detail) => format!("agent session panicked: {detail}"),
            ExitReason::Error(detail) => format!("error: {detail}"),
        }
    }

    /// Rebuilds a reason from its code and detail, as records keep them.
    pub fn from_parts(code: &str, detail: Option<String>) -> Option<ExitReason> {
        Some(match code {
            "left" => ExitReason::Left,
            "idle_timeout" => ExitReason::IdleTimeout,
            "ended_by_agent" => ExitReason::EndedByAgent,
            "node_shutdown" => ExitReason::NodeShutdown,
            "node_restarted" => ExitReason::NodeRestarted,
            "node_lost" => ExitReason::NodeLost,
            "panicked" => ExitReason::Panicked(detail.unwrap_or_default()),
            "error" => ExitReason::Error(detail.unwrap_or_default()),
            _ => return None,
        })
    }

    /// The detail that [`ExitReason::from_parts`] needs back.
    pub fn detail(&self) -> Option<&str> {
        match self {
            ExitReason::Panicked(detail) | ExitReason::Error(detail) => Some(detail),
            _ => None,
        }
    }
}

/// A lifecycle state together with what only some states have: the reason for stopping or failing.
/// A `Stopped` agent without a reason cannot be written down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentState {
    Idle,
    Starting,
    Running,
    Recovering,
    Stopping(ExitReason),
    Stopped(ExitReason),
    Failed(ExitReason),
}

impl AgentState {
    pub fn status(&self) -> AgentStatus {
        match self {
            AgentState::Idle => AgentStatus::Idle,
            AgentState::Starting => AgentStatus::Starting,
            AgentState::Running => AgentStatus::Running,
            AgentState::Recovering => AgentStatus::Recovering,
            AgentState::Stopping(_) => AgentStatus::Stopping,
            AgentState::Stopped(_) => AgentStatus::Stopped,
            AgentState::Failed(_) => AgentStatus::Failed,
        }
    }

    pub fn reason(&self) -> Option<&ExitReason> {
        match self {
            AgentState::Stopping(reason) | AgentState::Stopped(reason) | AgentState::Failed(reason) => Some(reason),
            _ => None,
        }
    }

    /// The final state an agent reaches for `reason`: FAILED for errors, panics and lost nodes,
    /// STOPPED otherwise.
    pub fn exited(reason: ExitReason) -> AgentState {
        match reason {
            ExitReason::Error(_) | ExitReason::Panicked(_) | ExitReason::NodeRestarted | ExitReason::NodeLost => {
                AgentState::Failed(reason)
            }
            ExitReason::Left | ExitReason::IdleTimeout | ExitReason::EndedByAgent | ExitReason::NodeShutdown => {
                AgentState::Stopped(reason)
            }
        }
    }

    /// Rebuilds a state from a record's status and reason; `None` when they do not fit together.
    pub fn from_parts(status: AgentStatus, reason: Option<ExitReason>) -> Option<AgentState> {
        Some(match (status, reason) {
            (AgentStatus::Idle, None) => AgentState::Idle,
            (AgentStatus::Starting, None) => AgentState::Starting,
            (AgentStatus::Running, None) => AgentState::Running,
            (AgentStatus::Recovering, None) => AgentState::Recovering,
            (AgentStatus::Stopping, Some(r)) => AgentState::Stopping(r),
            (AgentStatus::Stopped, Some(r)) => AgentState::Stopped(r),
            (AgentStatus::Failed, Some(r)) => AgentState::Failed(r),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_and_codes_are_agoras() {
        let names: Vec<_> = AgentStatus::ALL.iter().map(|s| (s.as_str(), s.code())).collect();
        assert_eq!(
            names,
            [
                ("IDLE", 0),
                ("STARTING", 1),
                ("RUNNING", 2),
                ("STOPPING", 3),
                ("STOPPED", 4),
                ("RECOVERING", 5),
                ("FAILED", 6)
            ]
        );
        assert_eq!("running".parse::<AgentStatus>().unwrap(), AgentStatus::Running);
        assert!("RUN".parse::<AgentStatus>().is_err());
    }

    #[test]
    fn reasons_round_trip_through_their_parts() {
        for reason in [
            ExitReason::Left,
            ExitReason::IdleTimeout,
            ExitReason::NodeShutdown,
            ExitReason::NodeRestarted,
            ExitReason::Panicked("boom".into()),
            ExitReason::Error("llm unreachable".into()),
        ] {
            let back = ExitReason::from_parts(reason.code(), reason.detail().map(str::to_owned));
            assert_eq!(back.as_ref(), Some(&reason));
            let state = AgentState::exited(reason.clone());
            assert!(state.status().is_terminal());
            assert_eq!(AgentState::from_parts(state.status(), Some(reason)), Some(state));
        }
        assert_eq!(AgentState::from_parts(AgentStatus::Stopped, None), None);
        assert_eq!(AgentState::from_parts(AgentStatus::Running, Some(ExitReason::Left)), None);
    }
}
