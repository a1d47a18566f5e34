//! What the API can ask of a live agent's conversation.

/// How a `speak` command treats what the agent is saying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpeakPriority {
    /// Cut the agent off (marked interrupted) and say this now.
    Interrupt,
    /// Say this after what the agent is saying (and anything already queued).
    Append,
    /// Say this only if the agent is neither speaking nor thinking and the user is not speaking;
    /// otherwise drop it.
    Ignore,
}

/// What a `think` does in one state of the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThinkAction {
    /// Cut off what is under way (marked interrupted) and answer the text now.
    Interrupt,
    /// Drop the text.
    Ignore,
    /// Answer the text after the reply under way (and anything already queued).
    Append,
    /// Listening to the user: add the text to what the user is saying, so that it is answered
    /// with it; when the user is not speaking, answer it now.
    Inject,
}

/// How a `think` is handled in each state of the agent (Agora's `on_listening_action`,
/// `on_thinking_action`, `on_speaking_action` and `interruptable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThinkHandling {
    pub listening: ThinkAction,
    pub thinking: ThinkAction,
    pub speaking: ThinkAction,
    /// Whether the user's speech may cut off the answer.
    pub interruptible: bool,
}

impl ThinkHandling {
    /// Answer at once, whatever the agent is doing (the native API's `think`).
    pub const INTERRUPT: ThinkHandling = ThinkHandling {
        listening: ThinkAction::Interrupt,
        thinking: ThinkAction::Interrupt,
        speaking: ThinkAction::Interrupt,
        interruptible: true,
    };
}

/// A command for a live agent's conversation.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentCommand {
    /// Say `text` as it is (no LLM).
    Speak { text: String, priority: SpeakPriority, interruptible: bool },
    /// Stop what the agent is saying or thinking.
    Interrupt,
    /// Treat `text` as something the user said, as `handling` says for the agent's state. With
    /// [`ThinkHandling::INTERRUPT`]: listening, it starts a turn; thinking, the answer being
    /// prepared is dropped and a new one is asked for, with both texts in the history; speaking,
    /// the agent is cut off (marked interrupted) and answers the text.
    Think { text: String, handling: ThinkHandling },
    /// Forget the conversation so far, and the user and assistant messages the prompt began with:
    /// later turns see only the system messages (ZEGO's `ResetAgentInstanceMsgList`). The records
    /// keep the history.
    ClearHistory,
}

impl AgentCommand {
    /// A `think` answered at once, whatever the agent is doing.
    pub fn think(text: impl Into<String>) -> AgentCommand {
        AgentCommand::Think { text: text.into(), handling: ThinkHandling::INTERRUPT }
    }
}
