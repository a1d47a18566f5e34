//! Language models: messages in, text deltas out.

use colloquy_model::{LlmParams, PromptRole};

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
}

/// What an answer stream yields, in order: deltas, then at most one usage, then `Done`.
#[derive(Clone, Debug, PartialEq)]
pub enum LlmEvent {
    /// The next piece of text.
    Delta { turn: TurnId, text: String },
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
