//! Language models: messages in, text deltas and tool calls out.

pub use colloquy_model::ToolUse;
use colloquy_model::{LlmParams, PromptRole, ToolCall};

use crate::{ProviderStream, TurnId};

/// One message of a chat.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatMessage {
    pub role: PromptRole,
    pub content: String,
}

/// A request for one answer.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmRequest {
    pub turn: TurnId,
    /// The prompt messages, then the history, then the user's turn.
    pub messages: Vec<ChatMessage>,
    pub params: LlmParams,
    /// What the model may call, the turn's rounds so far (each: the calls asked, their results),
    /// and whether it may ask for more.
    pub tools: ToolUse,
}

/// What an answer stream yields, in order: deltas, then the tool calls asked for (each complete,
/// in the model's order), then at most one usage, then `Done`.
#[derive(Clone, Debug, PartialEq)]
pub enum LlmEvent {
    /// The next piece of text.
    Delta { turn: TurnId, text: String },
    /// A call the model asks for, assembled from its streamed pieces.
    ToolCall { turn: TurnId, call: ToolCall },
    /// Token counts, when the provider reports them.
    Usage { turn: TurnId, prompt_tokens: u32, completion_tokens: u32 },
    /// The answer is complete.
    Done { turn: TurnId },
}

/// A language model. Implementations are shared by every session: `&self`, `Send + Sync`.
pub trait LlmProvider: Send + Sync + std::fmt::Debug {
    /// Starts an answer. Dropping the stream cancels it.
    fn chat(&self, request: LlmRequest) -> ProviderStream<LlmEvent>;
}
