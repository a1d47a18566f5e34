//! The native webhook: one JSON object per lifecycle event, posted to the agent's `callbacks.url`.
//!
//! ```text
//! POST <callbacks.url>
//! Content-Type: application/json
//! X-Colloquy-Event: agent.started | agent.stopped | agent.failed | agent.tool_called (opt-in: `tool_options.webhooks`)
//! X-Colloquy-Delivery: <event_id>          (stable across retries: deduplicate on it)
//! X-Colloquy-Timestamp: <ms since the epoch, when the event happened>
//! X-Colloquy-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>   (when a secret is set)
//!
//! {"event_id": "...", "event": "agent.stopped", "at": 1795241973627, "agent": {agent_id, name, channel, status, reason, ...}}
//! ```
//!
//! `agent.tool_called` adds `"tool": {"turn_id", "call_id", "name", "duration_ms", "outcome"}`
//! (`ok`, `error` or `cancelled`), without the call's arguments or result.

use colloquy_model::{AgentEvent, AgentEventKind, ConversationEvent};
use colloquy_store::OutgoingWebhook;
use serde::Serialize;

use super::{to_model, wire};
use colloquy_model::signature::signature;
pub use colloquy_model::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

pub const EVENT_HEADER: &str = "X-Colloquy-Event";
pub const DELIVERY_HEADER: &str = "X-Colloquy-Delivery";

#[derive(Serialize)]
struct Body<'a> {
    event_id: &'a str,
    event: &'a str,
    at: i64,
    agent: wire::Agent,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<serde_json::Value>,
}

/// The event's name, and what distinguishes two of its kind at the same millisecond.
fn event_name(event: &AgentEvent) -> Option<(&'static str, Option<String>)> {
    match &event.kind {
        AgentEventKind::Started => Some(("agent.started", None)),
        AgentEventKind::Stopped => Some(("agent.stopped", None)),
        AgentEventKind::Failed => Some(("agent.failed", None)),
        AgentEventKind::Conversation(ConversationEvent::ToolCalled { call_id, .. })
            if event.agent.spec.tools.webhooks =>
        {
            Some(("agent.tool_called", Some(call_id.clone())))
        }
        AgentEventKind::Conversation(_) => None,
    }
}

fn tool_json(kind: &AgentEventKind) -> Option<serde_json::Value> {
    match kind {
        AgentEventKind::Conversation(ConversationEvent::ToolCalled { turn, call_id, name, duration_ms, outcome }) => {
            Some(serde_json::json!({
                "turn_id": turn, "call_id": call_id, "name": name, "duration_ms": duration_ms, "outcome": outcome,
            }))
        }
        _ => None,
    }
}

/// The delivery for `event`, when the agent has callbacks.
pub fn format(event: &AgentEvent) -> Option<OutgoingWebhook> {
    let callbacks = event.agent.spec.callbacks.as_ref()?;
    let (name, distinct) = event_name(event)?;
    let mut event_id = format!("{}.{}.{}", event.agent.id, name, event.at.0);
    if let Some(distinct) = distinct {
        event_id = format!("{event_id}.{distinct}");
    }
    let body = Body {
        event_id: &event_id,
        event: name,
        at: event.at.0,
        agent: to_model::agent_to_wire(&event.agent, false),
        tool: tool_json(&event.kind),
    };
    let body = serde_json::to_string(&body).expect("a webhook body serializes");
    let timestamp = event.at.0.to_string();
    let mut headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        (EVENT_HEADER.to_owned(), name.to_owned()),
        (DELIVERY_HEADER.to_owned(), event_id),
        (TIMESTAMP_HEADER.to_owned(), timestamp.clone()),
    ];
    if let Some(secret) = &callbacks.secret {
        headers.push((SIGNATURE_HEADER.to_owned(), signature(secret, &timestamp, &body)));
    }
    Some(OutgoingWebhook {
        agent_id: event.agent.id.clone(),
        url: callbacks.url.clone(),
        headers,
        body,
        created_at: event.at,
    })
}
