//! What goes into the conversation core and what comes out of it. The runtime that drives a
//! [`Conversation`](crate::Conversation) turns inputs from the world into [`Input`]s and carries out
//! every [`Output`]; nothing else crosses the boundary.

use std::time::Instant;

pub use colloquy_model::{AgentCommand, SpeakPriority};
use colloquy_model::{
    LlmParams, PromptMessage, Speaker, SpecUpdate, ToolCall, ToolOutcome, ToolUse, TurnDetail, TurnEnd, TurnId,
    TurnMetrics, TurnStart,
};

/// Audio in: 16 kHz mono, 20 ms per frame.
pub const INPUT_RATE: u32 = 16_000;
/// Audio out: 48 kHz mono, 20 ms per frame, what the channel server encodes as Opus.
pub const PLAYOUT_RATE: u32 = 48_000;
/// Samples of one 20 ms playout frame.
pub const PLAYOUT_FRAME: usize = 960;
/// One playout frame lasts this long.
pub const FRAME_DURATION: std::time::Duration = std::time::Duration::from_millis(20);

/// Something that happened, with the time it happened at (the runtime's clock, read by the runtime).
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Audio from the participants the agent listens to (mixed when there are several): 16 kHz mono
    /// samples in [-1, 1], normally 20 ms.
    Audio(Vec<f32>),
    /// A VAD result for the audio just before `at`: the speech probability of a frame of `length`.
    Vad {
        probability: f32,
        length: std::time::Duration,
    },
    /// A listened-to participant joined; `present` is how many are in the channel now.
    ParticipantJoined {
        present: usize,
    },
    /// A listened-to participant left; `present` is how many remain.
    ParticipantLeft {
        present: usize,
    },
    Asr(AsrInput),
    Llm(LlmInput),
    Tts(TtsInput),
    /// A tool call's result.
    Tool(ToolInput),
    /// A command from the API.
    Command(Command),
}

/// How a tool call the core asked for ([`ToolCommand::Call`]) ended.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolInput {
    Result { turn: TurnId, call_id: String, outcome: ToolOutcome },
}

/// What speech recognition said about an utterance.
#[derive(Clone, Debug, PartialEq)]
pub enum AsrInput {
    Partial { turn: TurnId, text: String },
    Final { turn: TurnId, text: String },
    Failed { turn: TurnId, error: String },
}

/// What the language model said.
#[derive(Clone, Debug, PartialEq)]
pub enum LlmInput {
    Delta {
        turn: TurnId,
        text: String,
    },
    /// The answer asks for this call (complete, arguments and all); the calls of an answer come
    /// before its `Done`.
    ToolCall {
        turn: TurnId,
        call: ToolCall,
    },
    /// The answer is complete.
    Done {
        turn: TurnId,
        prompt_tokens: Option<u32>,
        completion_tokens: Option<u32>,
    },
    Failed {
        turn: TurnId,
        error: String,
    },
}

/// What speech synthesis produced for one clause (`clause` is its index in the turn).
#[derive(Clone, Debug, PartialEq)]
pub enum TtsInput {
    /// Audio of the clause, at [`PLAYOUT_RATE`] (the runtime resamples).
    Audio {
        turn: TurnId,
        clause: u32,
        pcm: Vec<i16>,
    },
    /// The clause is complete.
    Done {
        turn: TurnId,
        clause: u32,
    },
    Failed {
        turn: TurnId,
        clause: u32,
        error: String,
    },
}

/// Commands from the API.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `speak`, `interrupt` or `think` (see [`AgentCommand`] for what each does in each state).
    Agent(AgentCommand),
    /// Change the prompt, LLM parameters or voice from the next request on.
    Update(SpecUpdate),
}

/// The agent's conversational state, as clients see it in `agent.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoiceState {
    /// Nobody to talk to.
    Idle,
    Listening,
    /// Waiting for the LLM's first clause or the TTS's first audio.
    Thinking,
    Speaking,
}

impl VoiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            VoiceState::Idle => "idle",
            VoiceState::Listening => "listening",
            VoiceState::Thinking => "thinking",
            VoiceState::Speaking => "speaking",
        }
    }
}

/// `turn_status` of `assistant.transcription`, as Agora numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnStatus {
    InProgress = 0,
    Ended = 1,
    Interrupted = 2,
}

/// Which stage an error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Asr,
    Llm,
    Tts,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Asr => "asr",
            Stage::Llm => "llm",
            Stage::Tts => "tts",
        }
    }
}

/// Messages for the clients in the channel (the runtime serialises them for the data channel).
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// What the user said: partials, then one with `is_final`.
    UserTranscription {
        turn: TurnId,
        text: String,
        is_final: bool,
    },
    /// What the agent says: the text heard so far while in progress; all of it when ended; what was
    /// heard when interrupted.
    AssistantTranscription {
        turn: TurnId,
        text: String,
        status: TurnStatus,
    },
    /// The agent was cut off in `turn`.
    Interrupted {
        turn: TurnId,
    },
    Metrics {
        turn: TurnId,
        metrics: TurnMetrics,
    },
    Error {
        turn: TurnId,
        stage: Stage,
        message: String,
    },
    State {
        turn: TurnId,
        state: VoiceState,
    },
    /// A tool call started (its arguments are not shown).
    ToolStarted {
        turn: TurnId,
        call_id: String,
        name: String,
    },
    /// A tool call ended, after `duration_ms` (its result is not shown).
    ToolFinished {
        turn: TurnId,
        call_id: String,
        name: String,
        duration_ms: u32,
        end: ToolEnd,
    },
}

/// How a tool call ended, as clients are told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolEnd {
    Ok,
    /// It failed or timed out; the LLM was told.
    Failed,
    /// Its turn ended first (a barge-in, say); nobody waits for it.
    Cancelled,
}

impl ToolEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolEnd::Ok => "ok",
            ToolEnd::Failed => "error",
            ToolEnd::Cancelled => "cancelled",
        }
    }
}

/// Work for the runtime's providers. Every command names its turn; the runtime drops whatever a
/// provider still produces for a cancelled turn, and the core ignores it anyway.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderCommand {
    /// Start recognising an utterance in `language`.
    AsrStart {
        turn: TurnId,
    },
    /// More audio of the utterance (16 kHz mono).
    AsrAudio {
        turn: TurnId,
        samples: Vec<f32>,
    },
    /// The utterance is over: send the final transcript.
    AsrFinish {
        turn: TurnId,
    },
    /// Forget the utterance.
    AsrCancel {
        turn: TurnId,
    },
    LlmStart {
        turn: TurnId,
        messages: Vec<PromptMessage>,
        params: LlmParams,
        /// The tools offered, and the turn's rounds of calls so far.
        tools: ToolUse,
    },
    LlmCancel {
        turn: TurnId,
    },
    /// Synthesise one clause. Clauses of a turn are sent in order and must come back in order.
    TtsSpeak {
        turn: TurnId,
        clause: u32,
        text: String,
        voice: String,
        speed: f32,
    },
    /// Drop every clause of the turn, queued or in progress.
    TtsCancel {
        turn: TurnId,
    },
}

/// Tool calls for the runtime to run. Each names its turn; a result for a cancelled turn is dropped.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolCommand {
    /// Run this call and send back its [`ToolInput::Result`]. The core keeps the call's timeout
    /// itself (a result after it is dropped), so the runtime needs none of its own.
    Call { turn: TurnId, call: ToolCall, timeout_ms: u32 },
    /// Stop the calls of `turn` still running (a barge-in, the reply's end); their results are
    /// not wanted.
    Cancel { turn: TurnId },
}

/// Why the core wants its agent to leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// Nobody it listens to has been in the channel for `idle_timeout`.
    Idle,
    /// Its LLM called `end_call`, and the goodbye has been said.
    EndedByAgent,
}

/// One thing the runtime must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Provider(ProviderCommand),
    /// Send this 20 ms frame into the channel now.
    Play {
        turn: TurnId,
        pcm: Vec<i16>,
    },
    Client(ClientEvent),
    /// Keep this history message (the runtime stamps it with the wall-clock time).
    History {
        turn: TurnId,
        speaker: Speaker,
        content: String,
        interrupted: bool,
    },
    /// Keep this turn's record.
    Turn {
        turn: TurnId,
        start: TurnStart,
        end: TurnEnd,
        started: Instant,
        ended: Instant,
        metrics: TurnMetrics,
        detail: TurnDetail,
    },
    Tool(ToolCommand),
    Leave(LeaveReason),
    /// Nothing more to do until this time (or the next input).
    Timeout(Instant),
}
