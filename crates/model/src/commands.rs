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

/// A command for a live agent's conversation.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentCommand {
    /// Say `text` as it is (no LLM).
    Speak { text: String, priority: SpeakPriority, interruptible: bool },
    /// Stop what the agent is saying or thinking.
    Interrupt,
    /// Treat `text` as something the user said. Listening: it starts a turn. Thinking: the answer
    /// being prepared is dropped and a new one is asked for, with both texts in the history.
    /// Speaking: the agent is cut off (marked interrupted) and answers the text.
    Think { text: String },
    /// Forget the conversation so far, and the user and assistant messages the prompt began with:
    /// later turns see only the system messages (ZEGO's `ResetAgentInstanceMsgList`). The records
    /// keep the history.
    ClearHistory,
}
