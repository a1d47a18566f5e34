//! The native webhook: one JSON object per lifecycle event, posted to the agent's `callbacks.url`.
//!
//! ```text
//! POST <callbacks.url>
//! Content-Type: application/json
//! X-Colloquy-Event: agent.started | agent.stopped | agent.failed
//! X-Colloquy-Delivery: <event_id>          (stable across retries: deduplicate on it)
//! X-Colloquy-Timestamp: <ms since the epoch, when the event happened>
//! X-Colloquy-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>   (when a secret is set)
//!
//! {"event_id": "...", "event": "agent.stopped", "at": 1795241973627, "agent": {agent_id, name, channel, status, reason, ...}}
//! ```

use colloquy_model::{AgentEvent, AgentEventKind};
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
}

fn event_name(kind: &AgentEventKind) -> Option<&'static str> {
    match kind {
        AgentEventKind::Started => Some("agent.started"),
        AgentEventKind::Stopped => Some("agent.stopped"),
        AgentEventKind::Failed => Some("agent.failed"),
        AgentEventKind::Conversation(_) => None,
    }
}

/// The delivery for `event`, when the agent has callbacks.
pub fn format(event: &AgentEvent) -> Option<OutgoingWebhook> {
    let callbacks = event.agent.spec.callbacks.as_ref()?;
    let name = event_name(&event.kind)?;
    let event_id = format!("{}.{}.{}", event.agent.id, name, event.at.0);
    let body =
        Body { event_id: &event_id, event: name, at: event.at.0, agent: to_model::agent_to_wire(&event.agent, false) };
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
