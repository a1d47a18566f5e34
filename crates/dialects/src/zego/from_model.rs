//! The model out to ZEGO's shapes: a saved template as answered (its API key redacted), an
//! instance's `Status` and latencies, and the message list.

use colloquy_model as model;
use colloquy_model::{AgentStatus, ConversationState, HistoryEntry, PromptMessage, PromptRole, TurnRecord};
use serde_json::{Value, json};

use super::errors::{ZegoError, ZegoResult, codes};
use super::wire;

/// A saved template as answered, with API keys redacted.
pub(crate) fn template_to_wire(body: &str) -> ZegoResult<Value> {
    let mut saved: wire::SavedTemplate = serde_json::from_str(body)
        .map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, format!("a saved agent could not be read: {e}")))?;
    if saved.llm.contains_key("ApiKey") {
        saved.llm.insert("ApiKey".to_owned(), Value::String(model::Secret::REDACTED.to_owned()));
    }
    serde_json::to_value(saved).map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.to_string()))
}

/// ZEGO's name for where an instance is: a running one is where its conversation is; before its
/// conversation's first report (nobody it listens to has come yet, or it runs without media) it
/// is `IDLE`, ZEGO's state while nobody it listens to is in the room.
pub(crate) fn status_name(status: AgentStatus, moment: Option<ConversationState>) -> &'static str {
    match (status, moment) {
        (AgentStatus::Running | AgentStatus::Recovering, Some(moment)) => match moment {
            ConversationState::Idle => "IDLE",
            ConversationState::Listening => "LISTENING",
            ConversationState::Thinking => "THINKING",
            ConversationState::Speaking => "SPEAKING",
        },
        _ => "IDLE",
    }
}

/// `QueryAgentInstanceStatus`'s `Data`: the `Status`, and the latencies of the last turn that
/// measured any.
pub(crate) fn instance_status(status: &str, turns: &[TurnRecord]) -> Value {
    let mut data = json!({ "Status": status });
    if let Some(last) = turns.iter().rev().find(|t| t.metrics.llm_ttft_ms.is_some() || t.metrics.tts_ttfb_ms.is_some())
    {
        if let Some(ms) = last.metrics.llm_ttft_ms {
            data["LLMFirstTokenLatency"] = json!(ms);
        }
        if let Some(ms) = last.metrics.tts_ttfb_ms {
            data["TTSFirstAudioLatency"] = json!(ms);
        }
    }
    data
}

/// `GetAgentInstanceMsgList`'s `Data`: the `MessageHistory` given at creation (unless the list was
/// reset), then the conversation since the last reset (`reset_at`, Unix milliseconds).
pub(crate) fn message_list(created_with: &[PromptMessage], history: &[HistoryEntry], reset_at: Option<i64>) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    if reset_at.is_none() {
        for message in created_with {
            let role = match message.role {
                PromptRole::User => "user",
                PromptRole::Assistant => "assistant",
                PromptRole::System => continue,
            };
            messages.push(json!({ "Role": role, "Content": message.content }));
        }
    }
    for entry in history {
        // ZEGO's message list has user and assistant messages only.
        if reset_at.is_some_and(|at| entry.at.0 <= at) || entry.speaker == colloquy_model::Speaker::Tool {
            continue;
        }
        messages.push(json!({ "Role": entry.speaker.as_str(), "Content": entry.content }));
    }
    json!({ "Total": messages.len(), "MessageList": messages })
}
