//! What an agent leaves behind: its record, its conversation history and its turns.

use serde::{Deserialize, Serialize};

use crate::{AgentId, AgentSpec, AgentState, AppId, UnixMillis};

/// An agent as the records know it.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRecord {
    pub id: AgentId,
    pub app: AppId,
    /// The configuration it was started with, with later updates applied. Secrets are redacted
    /// when this comes from the store.
    pub spec: AgentSpec,
    pub state: AgentState,
    pub created_at: UnixMillis,
    /// When it left its channel (STOPPED or FAILED).
    pub stopped_at: Option<UnixMillis>,
}

/// Who said a history message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    User,
    Assistant,
    /// A tool call of the assistant's and its outcome; the content is JSON (see
    /// [`ToolOutcome::history_content`](crate::ToolOutcome::history_content)).
    Tool,
}

impl Speaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::User => "user",
            Speaker::Assistant => "assistant",
            Speaker::Tool => "tool",
        }
    }
}

/// One message of a conversation, as the LLM sees it in later turns.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    pub turn_id: u64,
    pub speaker: Speaker,
    /// For the assistant: only what the user actually heard.
    pub content: String,
    /// The assistant was cut off; `content` is what was heard before that.
    pub interrupted: bool,
    pub at: UnixMillis,
}

/// How a turn began.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStart {
    VoiceInput,
    Greeting,
    SilencePrompt,
    ApiSpeak,
    ApiThink,
}

/// How a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnEnd {
    Ok,
    Interrupted,
    Ignored,
    Error,
}

/// Latency of one turn, in milliseconds. A stage that did not run (a greeting has no ASR) is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnMetrics {
    /// End of the user's speech (VAD) to the decision that their turn ended.
    pub eou_delay_ms: Option<u32>,
    /// End of the user's speech to the final transcript.
    pub asr_ttlw_ms: Option<u32>,
    /// LLM request to its first token.
    pub llm_ttft_ms: Option<u32>,
    /// LLM request to its first complete sentence.
    pub llm_ttfs_ms: Option<u32>,
    /// First text sent to TTS to its first audio.
    pub tts_ttfb_ms: Option<u32>,
    /// Time spent in the engine itself: e2e less the model and end-of-speech waits.
    pub engine_overhead_ms: Option<u32>,
    /// End of the user's speech to the first agent audio packet sent.
    pub e2e_ms: Option<u32>,
    /// Waiting for the turn's tool calls (every round), when it made any.
    #[serde(default)]
    pub tool_ms: Option<u32>,
}

/// One exchange: what started it, how it ended, how long each stage took.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnRecord {
    pub turn_id: u64,
    pub start: TurnStart,
    pub end: TurnEnd,
    pub started_at: UnixMillis,
    pub ended_at: UnixMillis,
    pub metrics: TurnMetrics,
    pub detail: TurnDetail,
}

/// What happened in a turn, beyond its latencies. `None` where it does not apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnDetail {
    /// How long the user spoke (a voice-input turn): from the start of speech to its end.
    pub speech_duration_ms: Option<u32>,
    /// How much of the agent's audio was played.
    pub playback_ms: Option<u32>,
    /// Which greeting this is, counting from 1 (a greeting turn).
    pub greeting_nth: Option<u32>,
    /// What cut the agent off (an interrupted turn).
    pub interrupted_by: Option<InterruptCause>,
    /// The user's speech that started this turn cut the agent's previous reply off after this long.
    pub interrupt_duration_ms: Option<u32>,
}

/// A lifecycle event of an agent, as the supervisor emits it for webhooks. Dialects decide how it
/// looks on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentEvent {
    pub kind: AgentEventKind,
    /// The agent as it was when the event happened (its spec carries its callbacks).
    pub agent: AgentRecord,
    pub at: UnixMillis,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AgentEventKind {
    /// The agent is RUNNING.
    Started,
    /// The agent is STOPPED (its state says why).
    Stopped,
    /// The agent FAILED (its state says why).
    Failed,
    /// Something happened in its conversation.
    Conversation(ConversationEvent),
}

/// What happens in a live agent's conversation, as webhooks report it. Every event names its turn.
#[derive(Clone, Debug, PartialEq)]
pub enum ConversationEvent {
    /// The user started (`speaking: true`) or stopped talking.
    UserSpeech { turn: u64, speaking: bool },
    /// The final transcript of what the user said.
    UserTranscript { turn: u64, text: String },
    /// The agent's audio started (`speaking: true`) or stopped.
    AgentSpeech { turn: u64, speaking: bool },
    /// What the agent said in a turn: all of it, or what was heard when `interrupted`.
    AgentReply { turn: u64, text: String, interrupted: bool },
    /// The agent was cut off in `turn`.
    Interrupted { turn: u64, cause: InterruptCause },
    /// A stage failed in `turn`; the agent goes on.
    Error { turn: u64, stage: &'static str, message: String },
    /// A tool call of `turn` ended (`outcome`: `ok`, `error` or `cancelled`); its arguments and
    /// result are not carried.
    ToolCalled { turn: u64, call_id: String, name: String, duration_ms: u32, outcome: &'static str },
    /// A turn is over, with its latency breakdown.
    TurnEnded(TurnRecord),
}

/// Where a live agent's conversation is, moment to moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConversationState {
    /// Nobody it listens to is in the channel.
    Idle,
    Listening,
    /// Preparing an answer: waiting for the LLM's first clause or the TTS's first audio.
    Thinking,
    Speaking,
}

impl ConversationState {
    pub const ALL: [ConversationState; 4] = [
        ConversationState::Idle,
        ConversationState::Listening,
        ConversationState::Thinking,
        ConversationState::Speaking,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Idle => "idle",
            ConversationState::Listening => "listening",
            ConversationState::Thinking => "thinking",
            ConversationState::Speaking => "speaking",
        }
    }
}

/// Why the agent was cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterruptCause {
    /// The user spoke over it (or said a keyword).
    UserSpeech,
    /// A `speak` command with priority INTERRUPT.
    ApiSpeak,
    /// A `think` command.
    ApiThink,
    /// An `interrupt` command.
    ApiInterrupt,
    /// The last listened-to participant left.
    UserLeft,
}
