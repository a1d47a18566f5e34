//! Agora's webhooks (NCS notifications) for the agents started through this dialect.
//!
//! ```text
//! POST <app webhook url>
//! Content-Type: application/json
//! Agora-Signature: <hex HMAC-SHA1(secret, body)>
//! Agora-Signature-V2: <hex HMAC-SHA256(secret, body)>
//!
//! {"noticeId": "...", "productId": 17, "eventType": 101, "notifyMs": 1795241973627, "sid": "<agent_id>", "payload": {...}}
//! ```
//!
//! Events: 101 agent joined (Started); 102 agent left (Stopped/Failed); 103 history and 112 turns,
//! both after 102 when the agent ends; 110 agent error (a stage failed in a turn); 111 metrics (a
//! turn ended). Every payload carries the `labels` given at join. `noticeId` is derived from the
//! event, so it is the same on every retry of a delivery.

use colloquy_model::{AgentEvent, AgentEventKind, AgentRecord, AgentStatus, ConversationEvent, ExitReason};
use colloquy_store::{OutgoingWebhook, Store};
use hmac::{KeyInit, Mac};
use serde_json::{Map, Value, json};

use super::to_model::OriginData;
use colloquy_http::webhooks::hmac_sha256_hex;

/// Agora's product id of the Conversational AI Engine in NCS.
pub const PRODUCT_ID: u32 = 17;
pub const SIGNATURE_HEADER: &str = "Agora-Signature";
pub const SIGNATURE_V2_HEADER: &str = "Agora-Signature-V2";
/// Event 112 carries at most this many turns (the last ones), with `is_truncated`.
pub const MAX_TURNS: usize = 200;
/// The `code` of a 110 error: this server has no per-vendor error codes.
pub const ERROR_CODE: u32 = 1;

/// `hex(HMAC-SHA1(secret, message))`.
pub fn hmac_sha1_hex(secret: &[u8], message: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// The fields every payload starts with.
fn base_payload(agent: &AgentRecord) -> Map<String, Value> {
    let origin = OriginData::of(&agent.spec);
    let mut payload = Map::new();
    payload.insert("agent_id".into(), json!(agent.id.to_string()));
    payload.insert("name".into(), json!(agent.spec.name.to_string()));
    payload.insert("channel".into(), json!(agent.spec.channel.to_string()));
    payload.insert("start_ts".into(), json!(secs(agent.created_at.0)));
    payload.insert("labels".into(), Value::Object(origin.labels.into_iter().collect()));
    payload
}

/// The `message` of event 102, in Agora's words where Agora has them.
fn leave_message(agent: &AgentRecord) -> String {
    match agent.state.reason() {
        Some(ExitReason::Left) | None => "OK".to_owned(),
        Some(reason) => super::from_model::exit_reason(reason),
    }
}

fn delivery(event: &AgentEvent, event_type: u32, notice: &str, payload: Map<String, Value>) -> Option<OutgoingWebhook> {
    let callbacks = event.agent.spec.callbacks.as_ref()?;
    let body = json!({
        "noticeId": notice,
        "productId": PRODUCT_ID,
        "eventType": event_type,
        "notifyMs": event.at.0,
        "sid": event.agent.id.to_string(),
        "payload": Value::Object(payload),
    })
    .to_string();
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(secret) = &callbacks.secret {
        let secret = secret.expose().as_bytes();
        headers.push((SIGNATURE_HEADER.to_owned(), hmac_sha1_hex(secret, body.as_bytes())));
        headers.push((SIGNATURE_V2_HEADER.to_owned(), hmac_sha256_hex(secret, body.as_bytes())));
    }
    Some(OutgoingWebhook {
        agent_id: event.agent.id.clone(),
        url: callbacks.url.clone(),
        headers,
        body,
        created_at: event.at,
    })
}

/// A stable id per event: the agent, the event type, when it happened and (for turn events) the turn.
fn notice_id(event: &AgentEvent, event_type: u32, turn: Option<u64>) -> String {
    match turn {
        Some(turn) => format!("{}-{event_type}-{}-{turn}", event.agent.id, event.at.0),
        None => format!("{}-{event_type}-{}", event.agent.id, event.at.0),
    }
}

/// The deliveries for `event` (none when the agent's app has no webhook).
pub async fn format(event: &AgentEvent, store: &Store) -> Vec<OutgoingWebhook> {
    if event.agent.spec.callbacks.is_none() {
        return Vec::new();
    }
    let agent = &event.agent;
    match &event.kind {
        AgentEventKind::Started => {
            delivery(event, 101, &notice_id(event, 101, None), base_payload(agent)).into_iter().collect()
        }
        AgentEventKind::Stopped | AgentEventKind::Failed => ended(event, store).await,
        AgentEventKind::Conversation(ConversationEvent::Error { turn, stage, message }) => {
            let mut payload = base_payload(agent);
            payload.insert("turn_id".into(), json!(turn));
            payload.insert(
                "errors".into(),
                json!([{"module": stage, "turn_id": turn, "code": ERROR_CODE, "message": message}]),
            );
            delivery(event, 110, &notice_id(event, 110, Some(*turn)), payload).into_iter().collect()
        }
        AgentEventKind::Conversation(ConversationEvent::TurnEnded(turn)) => {
            let mut payload = base_payload(agent);
            payload.insert("metrics".into(), json!([turn_metrics(turn)]));
            delivery(event, 111, &notice_id(event, 111, Some(turn.turn_id)), payload).into_iter().collect()
        }
        AgentEventKind::Conversation(_) => Vec::new(),
    }
}

/// An ended agent's 102 (stopped or failed), then its history (103) and turns (112) from `store`.
async fn ended(event: &AgentEvent, store: &Store) -> Vec<OutgoingWebhook> {
    let agent = &event.agent;
    let mut out = Vec::new();
    let stop_ts = secs(agent.stopped_at.unwrap_or(event.at).0);
    let mut payload = base_payload(agent);
    payload.insert("stop_ts".into(), json!(stop_ts));
    let status = if agent.state.status() == AgentStatus::Failed { "FAILED" } else { "STOPPED" };
    payload.insert("status".into(), json!(status));
    payload.insert("message".into(), json!(leave_message(agent)));
    out.extend(delivery(event, 102, &notice_id(event, 102, None), payload));
    match store.history(&agent.id).await {
        Ok(history) => {
            // User and assistant lines only, as in the history answer.
            let history: Vec<_> = history.into_iter().filter(|e| e.speaker != colloquy_model::Speaker::Tool).collect();
            let skip = history.len().saturating_sub(agent.spec.max_history as usize);
            let contents: Vec<Value> = history
                .into_iter()
                .skip(skip)
                .map(|e| json!({"role": e.speaker.as_str(), "content": e.content}))
                .collect();
            let mut payload = base_payload(agent);
            payload.insert("stop_ts".into(), json!(stop_ts));
            payload.insert("contents".into(), Value::Array(contents));
            out.extend(delivery(event, 103, &notice_id(event, 103, None), payload));
        }
        Err(e) => tracing::error!(agent_id = %agent.id, error = %e, "reading history for Agora webhook 103"),
    }
    match store.turns(&agent.id).await {
        Ok(turns) => {
            let total = turns.len();
            let skip = total.saturating_sub(MAX_TURNS);
            let turns: Vec<Value> =
                turns.iter().skip(skip).map(|t| super::from_model::turn_json(agent, t, true)).collect();
            let mut payload = base_payload(agent);
            payload.insert("total_turn_count".into(), json!(total));
            payload.insert("is_truncated".into(), json!(total > MAX_TURNS));
            payload.insert("turns".into(), Value::Array(turns));
            out.extend(delivery(event, 112, &notice_id(event, 112, None), payload));
        }
        Err(e) => tracing::error!(agent_id = %agent.id, error = %e, "reading turns for Agora webhook 112"),
    }
    out
}

/// Event 111's metrics of one turn, in Agora's names.
fn turn_metrics(turn: &colloquy_model::TurnRecord) -> Value {
    let m = &turn.metrics;
    let mut metric = Map::new();
    metric.insert("turn_id".into(), json!(turn.turn_id));
    for (name, value) in [
        ("asr_ttlw", m.asr_ttlw_ms),
        ("llm_ttfb", m.llm_ttft_ms),
        ("llm_ttfs", m.llm_ttfs_ms),
        ("tts_ttfb", m.tts_ttfb_ms),
    ] {
        if let Some(value) = value {
            metric.insert(name.into(), json!(value));
        }
    }
    Value::Object(metric)
}

#[cfg(test)]
mod tests {
    use colloquy_model::{
        AgentId, AgentName, AgentSpec, AgentState, AppId, Callbacks, ChannelName, Dialect, Origin, Secret, UnixMillis,
    };

    use super::*;

    fn failed_agent(callbacks: Option<Callbacks>) -> AgentRecord {
        let mut spec = AgentSpec::with_defaults(AgentName::new("a").unwrap(), ChannelName::new("c").unwrap());
        spec.callbacks = callbacks;
        spec.origin = Origin { dialect: Dialect::Agora, data: Some(r#"{"labels":{"k":"v"}}"#.into()) };
        AgentRecord {
            id: AgentId::from_string("agent-1".into()),
            app: AppId::new("1234567890").unwrap(),
            spec,
            state: AgentState::Failed(ExitReason::Error("the LLM is unreachable".into())),
            created_at: UnixMillis(1_700_000_000_000),
            stopped_at: Some(UnixMillis(1_700_000_060_000)),
        }
    }

    #[tokio::test]
    async fn a_failed_agent_reports_failed_with_its_reason_then_history_and_turns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let callbacks = Callbacks { url: "http://127.0.0.1:9/hook".into(), secret: Some(Secret::new("s")) };
        let event = AgentEvent {
            kind: AgentEventKind::Failed,
            agent: failed_agent(Some(callbacks)),
            at: UnixMillis(1_700_000_060_000),
        };
        let out = format(&event, &store).await;
        let bodies: Vec<Value> = out.iter().map(|d| serde_json::from_str(&d.body).unwrap()).collect();
        let types: Vec<_> = bodies.iter().map(|b| b["eventType"].as_u64().unwrap()).collect();
        assert_eq!(types, [102, 103, 112]);
        assert_eq!(bodies[0]["payload"]["status"], "FAILED");
        assert_eq!(bodies[0]["payload"]["message"], "error: the LLM is unreachable");
        assert_eq!(bodies[0]["payload"]["stop_ts"], 1_700_000_060);
        assert_eq!(bodies[0]["payload"]["labels"], json!({"k": "v"}));
        assert_eq!(bodies[1]["payload"]["contents"], json!([]));
        assert_eq!(bodies[2]["payload"]["total_turn_count"], 0);
        // Deterministic: formatting the same event again gives the same notice ids.
        let again = format(&event, &store).await;
        assert_eq!(out.iter().map(|d| &d.body).collect::<Vec<_>>(), again.iter().map(|d| &d.body).collect::<Vec<_>>());
        // Without callbacks, nothing.
        let event = AgentEvent { kind: AgentEventKind::Failed, agent: failed_agent(None), at: UnixMillis(1) };
        assert!(format(&event, &store).await.is_empty());
    }
}
