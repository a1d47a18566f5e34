//! Alibaba's agent callbacks: `POST <app webhook url>` with JSON
//! `{aiAgentId, instanceId, event, data, sessionId, userData, timestamp}` and the app's webhook secret,
//! as the callback token, in `Authorization`.
//!
//! | event | when | data |
//! |---|---|---|
//! | `agent_start` | the instance runs | `{channelId, agentUserId, userId}` |
//! | `session_start` | the user is first heard (first `UserSpeech` start) | `{channelId, userId}` |
//! | `agent_stop` | the instance stopped or failed | `{code, reason, message, status}` |
//! | `error` | an ASR/LLM/TTS error in a turn | `{code, stage, message, roundId}` |
//! | `chat_record` | a final user transcript or agent reply | `{role, text, sentenceId, roundId, isSentenceEnd, interrupted, timestamp}` |

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use colloquy_model::{AgentEvent, AgentEventKind, ConversationEvent};
use colloquy_store::OutgoingWebhook;
use serde_json::{Value, json};

use super::wire::OriginData;

/// The instances that already had their `session_start`. Events of one agent are formatted in
/// order by the one delivery task; an instance is forgotten when it ends.
#[derive(Debug, Default)]
pub(crate) struct SessionStarts {
    started: Mutex<HashSet<String>>,
}

impl SessionStarts {
    /// Whether this is `id`'s first `session_start`.
    fn first(&self, id: &str) -> bool {
        self.started.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned())
    }

    fn forget(&self, id: &str) {
        self.started.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }
}

fn event_and_data(
    event: &AgentEvent,
    origin: &OriginData,
    session_starts: &SessionStarts,
) -> Option<(&'static str, Value)> {
    let agent = &event.agent;
    match &event.kind {
        AgentEventKind::Started => Some((
            "agent_start",
            json!({ "channelId": origin.channel_id, "agentUserId": origin.agent_user_id, "userId": origin.user_id }),
        )),
        AgentEventKind::Stopped | AgentEventKind::Failed => {
            session_starts.forget(agent.id.as_str());
            let reason = agent.state.reason();
            Some((
                "agent_stop",
                json!({
                    "code": reason.map(|r| r.code()).unwrap_or(if matches!(event.kind, AgentEventKind::Failed) { "error" } else { "left" }),
                    "reason": reason.map(|r| r.code()),
                    "message": reason.map(|r| r.message()),
                    "status": agent.state.status().as_str(),
                }),
            ))
        }
        AgentEventKind::Conversation(conversation) => match conversation {
            ConversationEvent::UserSpeech { speaking: true, .. } => session_starts
                .first(agent.id.as_str())
                .then(|| ("session_start", json!({ "channelId": origin.channel_id, "userId": origin.user_id }))),
            ConversationEvent::UserTranscript { turn, text } => Some((
                "chat_record",
                json!({
                    "role": "user", "text": text, "sentenceId": turn, "roundId": turn.to_string(),
                    "isSentenceEnd": true, "interrupted": false, "timestamp": event.at.0,
                }),
            )),
            ConversationEvent::AgentReply { turn, text, interrupted } => Some((
                "chat_record",
                json!({
                    "role": "agent", "text": text, "sentenceId": turn, "roundId": turn.to_string(),
                    "isSentenceEnd": true, "interrupted": interrupted, "timestamp": event.at.0,
                }),
            )),
            ConversationEvent::Error { turn, stage, message } => Some((
                "error",
                json!({
                    "code": format!("{}Error", stage.to_ascii_uppercase()), "stage": stage,
                    "message": message, "roundId": turn.to_string(),
                }),
            )),
            _ => None,
        },
    }
}

/// The callback's required top-level `code` and `message` (strings): Alibaba's page refers to a
/// table of status codes we could not read, so these are our choice: `"0"` and the event's name
/// for what is not a failure, the failure's own code and message otherwise.
fn status(name: &str, data: &Value) -> (String, String) {
    let text = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_owned);
    match name {
        "error" => (text("code").unwrap_or_else(|| "error".into()), text("message").unwrap_or_default()),
        "agent_stop" if data.get("status").and_then(Value::as_str) == Some("FAILED") => {
            (text("code").unwrap_or_else(|| "error".into()), text("message").unwrap_or_default())
        }
        _ => ("0".to_owned(), name.to_owned()),
    }
}

/// The callback for `event`, when the agent has callbacks and the event is one Alibaba sends.
pub(crate) fn format(event: &AgentEvent, session_starts: &SessionStarts) -> Vec<OutgoingWebhook> {
    let Some(callbacks) = event.agent.spec.callbacks.as_ref() else { return Vec::new() };
    let origin = OriginData::of(&event.agent);
    let Some((name, data)) = event_and_data(event, &origin, session_starts) else { return Vec::new() };
    let (code, message) = status(name, &data);
    let body = json!({
        "aiAgentId": origin.ai_agent_id,
        "instanceId": event.agent.id.as_str(),
        "event": name,
        "data": data,
        "code": code,
        "message": message,
        "sessionId": origin.session_id,
        "userData": origin.user_data,
        "timestamp": super::signature::format_iso8601(u64::try_from(event.at.0.div_euclid(1000)).unwrap_or(0)),
    });
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(secret) = &callbacks.secret {
        headers.push(("Authorization".to_owned(), secret.expose().to_owned()));
    }
    vec![OutgoingWebhook {
        agent_id: event.agent.id.clone(),
        url: callbacks.url.clone(),
        headers,
        body: body.to_string(),
        created_at: event.at,
    }]
}
