//! ZEGO's callbacks: one JSON object per event, posted to the app's webhook URL.
//!
//! ```text
//! {"AppId": 1234567890, "Event": "ASRResult", "Nonce": "…", "Timestamp": <ms>, "Signature": "…",
//!  "AgentInstanceId": "…", "AgentUserId": "…", "RoomId": "…", "Sequence": <n>, "Data": {…}}
//! Signature = hex(sha1(concat(sort([callback_secret, Timestamp, Nonce]))))
//! ```
//!
//! `AgentInstanceCreated`, `AgentInstanceDeleted` and `Exception` are always sent; the others only
//! when the instance's `CallbackConfig` flag is 1. `Sequence` increases per instance: it is
//! `Timestamp * 1000`, or one more than the instance's previous one when that is not larger (events
//! in the same millisecond). It is fixed when the body is built; retries resend the body.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use colloquy_model::{
    AgentEvent, AgentEventKind, AgentId, AgentState, ConversationEvent, ExitReason, InterruptCause, TurnRecord,
};
use colloquy_store::{OutgoingWebhook, Store};
use serde_json::{Value, json};

use super::signature::callback_signature;
use super::wire::OriginData;

/// The deliveries for `event` (none when the agent has no callbacks or the event is not wanted).
pub async fn format(event: &AgentEvent, store: &Store, sequences: &Sequences) -> Vec<OutgoingWebhook> {
    let Some(callbacks) = event.agent.spec.callbacks.as_ref() else { return Vec::new() };
    let Some(origin) = OriginData::of(&event.agent.spec) else { return Vec::new() };
    let Some((name, data)) = event_body(event, &origin, store).await else { return Vec::new() };
    let ended = matches!(event.kind, AgentEventKind::Stopped | AgentEventKind::Failed);
    let sequence = sequences.next(&event.agent.id, event.at.0, ended).await;
    let nonce: String = (0..8).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
    let timestamp = event.at.0;
    let signature = match &callbacks.secret {
        Some(secret) => callback_signature(secret.expose(), &timestamp.to_string(), &nonce),
        None => String::new(),
    };
    let app_id = event.agent.app.as_str();
    let app_id = app_id.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(app_id));
    let body = json!({
        "AppId": app_id,
        "Event": name,
        "Nonce": nonce,
        "Timestamp": timestamp,
        "Signature": signature,
        "AgentInstanceId": event.agent.id.as_str(),
        "AgentUserId": origin.agent_user_id,
        "RoomId": origin.room_id,
        "Sequence": sequence,
        "Data": data,
    });
    vec![OutgoingWebhook {
        agent_id: event.agent.id.clone(),
        url: callbacks.url.clone(),
        headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
        body: body.to_string(),
        created_at: event.at,
    }]
}

/// The last `Sequence` of each live instance. Events of one agent are formatted in order by the
/// one delivery task; an instance is forgotten when it ends. In a cluster they are kept in the
/// cluster's state, so an instance's numbers go on increasing whichever node formats its events.
#[derive(Debug, Default)]
pub struct Sequences {
    last: Mutex<HashMap<AgentId, i64>>,
    cluster: std::sync::OnceLock<colloquy_cluster::Cluster>,
}

impl Sequences {
    /// Keeps the numbers in `cluster`'s state from now on.
    pub(crate) fn share(&self, cluster: colloquy_cluster::Cluster) {
        let _ = self.cluster.set(cluster);
    }

    /// The next `Sequence` of `agent` for an event at `at_ms`; `ended` forgets the instance.
    async fn next(&self, agent: &AgentId, at_ms: i64, ended: bool) -> i64 {
        if let Some(cluster) = self.cluster.get() {
            match cluster.next_sequence(agent, at_ms, ended).await {
                Ok(sequence) => return sequence,
                // Still increasing: the event's time, or one more than this node's last.
                Err(e) => tracing::error!(error = %e, "the cluster's callback sequences are unreachable"),
            }
        }
        self.next_here(agent, at_ms, ended)
    }

    fn next_here(&self, agent: &AgentId, at_ms: i64, ended: bool) -> i64 {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = last.get(agent).copied().unwrap_or(0);
        let sequence = (at_ms * 1000).max(previous + 1);
        if ended {
            last.remove(agent);
        } else {
            last.insert(agent.clone(), sequence);
        }
        sequence
    }
}

/// The event's name and its `Data`, when it is sent.
async fn event_body(event: &AgentEvent, origin: &OriginData, store: &Store) -> Option<(&'static str, Value)> {
    let flags = origin.callback_config;
    let on = |flag: u8| flag == 1;
    Some(match &event.kind {
        AgentEventKind::Started => ("AgentInstanceCreated", json!({ "CreatedTimestamp": event.at.0 })),
        AgentEventKind::Stopped | AgentEventKind::Failed => {
            let turns = store.turns(&event.agent.id).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "turns could not be read for the AgentInstanceDeleted callback");
                Vec::new()
            });
            let data = json!({
                "Code": deleted_code(&event.agent.state),
                "DeletedTimestamp": event.agent.stopped_at.unwrap_or(event.at).0,
                "LatencyData": latency_data(&turns),
            });
            ("AgentInstanceDeleted", data)
        }
        AgentEventKind::Conversation(conversation) => match conversation {
            ConversationEvent::UserSpeech { speaking, .. } if on(flags.user_speak_action) => {
                ("UserSpeakAction", json!({ "UserId": origin.user_id, "Action": action(*speaking) }))
            }
            ConversationEvent::UserTranscript { turn, text } if on(flags.asr_result) => {
                ("ASRResult", json!({ "UserId": origin.user_id, "Round": turn, "Text": text }))
            }
            ConversationEvent::Interrupted { turn, cause } if on(flags.interrupted) => {
                let reason = match cause {
                    InterruptCause::UserSpeech => 1,
                    InterruptCause::ApiThink => 2,
                    InterruptCause::ApiSpeak => 3,
                    InterruptCause::ApiInterrupt => 4,
                    // ZEGO has no reason for this: the user left.
                    InterruptCause::UserLeft => return None,
                };
                ("Interrupted", json!({ "Round": turn, "Reason": reason }))
            }
            ConversationEvent::AgentReply { turn, text, .. } if on(flags.llm_result) => {
                ("LLMResult", json!({ "Round": turn, "Text": text }))
            }
            ConversationEvent::AgentSpeech { speaking, .. } if on(flags.agent_speak_action) => {
                ("AgentSpeakAction", json!({ "Action": action(*speaking) }))
            }
            ConversationEvent::Error { stage, message, .. } => {
                let code = exception_code(stage, message);
                ("Exception", json!({ "Code": code, "Message": format!("{stage}: {message}") }))
            }
            _ => return None,
        },
    })
}

fn action(speaking: bool) -> &'static str {
    if speaking { "SPEAK_BEGIN" } else { "SPEAK_END" }
}

/// ZEGO's exception code for an error in `stage` (zegocloud.com/docs/aiagent-server/callbacks/
/// exception-codes): 2101 ASR general error; for the LLM 2203 authentication failed, 2204 the
/// concurrency limit reached, 2202 a parameter error, 2201 any other; 1001 the general error
/// (TTS's codes are not in what we could read of that page). The LLM's cases are told by the
/// provider's message, which carries its HTTP status.
fn exception_code(stage: &str, message: &str) -> u32 {
    let message = message.to_ascii_lowercase();
    let says = |words: &[&str]| words.iter().any(|w| message.contains(w));
    match stage {
        "asr" => 2101,
        "llm" if says(&["401", "403", "unauthorized", "api key", "authentication", "forbidden"]) => 2203,
        "llm" if says(&["429", "rate limit", "concurrency", "too many requests"]) => 2204,
        "llm" if says(&["400", "invalid", "parameter"]) => 2202,
        "llm" => 2201,
        _ => 1001,
    }
}

/// `AgentInstanceDeleted.Code`: 0 deleted through the API (or ended by the agent itself, a
/// normal end), 1202 the room was idle, 1205 the node went away (shut down, restarted or lost), 1201 any
/// other failure.
pub fn deleted_code(state: &AgentState) -> u32 {
    match state.reason() {
        Some(ExitReason::Left | ExitReason::EndedByAgent) | None => 0,
        Some(ExitReason::IdleTimeout) => 1202,
        Some(ExitReason::NodeShutdown | ExitReason::NodeRestarted | ExitReason::NodeLost) => 1205,
        Some(ExitReason::Error(_) | ExitReason::Panicked(_)) => 1201,
    }
}

/// Averages over the turns that measured each stage: LLM first token, TTS first audio and the
/// whole turn (ms). ZEGO's `LLMTPS` is not measured, so it is not sent.
pub fn latency_data(turns: &[TurnRecord]) -> Value {
    let average = |values: Vec<u32>| -> u64 {
        if values.is_empty() { 0 } else { values.iter().map(|v| u64::from(*v)).sum::<u64>() / values.len() as u64 }
    };
    json!({
        "LLMTTFT": average(turns.iter().filter_map(|t| t.metrics.llm_ttft_ms).collect()),
        "TTSAudioFirstFrameTime": average(turns.iter().filter_map(|t| t.metrics.tts_ttfb_ms).collect()),
        "TotalCost": average(turns.iter().filter_map(|t| t.metrics.e2e_ms).collect()),
    })
}

#[cfg(test)]
mod tests {
    use colloquy_model::{TurnEnd, TurnMetrics, TurnStart, UnixMillis};

    use super::*;

    #[test]
    fn deleted_codes_follow_the_exit_reason() {
        assert_eq!(deleted_code(&AgentState::exited(ExitReason::Left)), 0);
        assert_eq!(deleted_code(&AgentState::exited(ExitReason::IdleTimeout)), 1202);
        assert_eq!(deleted_code(&AgentState::exited(ExitReason::NodeShutdown)), 1205);
        assert_eq!(deleted_code(&AgentState::exited(ExitReason::Error("rtc".into()))), 1201);
    }

    #[test]
    fn latency_averages_only_measured_turns() {
        let turn = |ttft| TurnRecord {
            turn_id: 1,
            start: TurnStart::VoiceInput,
            end: TurnEnd::Ok,
            started_at: UnixMillis(0),
            ended_at: UnixMillis(1),
            metrics: TurnMetrics { llm_ttft_ms: ttft, ..TurnMetrics::default() },
            detail: Default::default(),
        };
        let data = latency_data(&[turn(Some(100)), turn(None), turn(Some(200))]);
        assert_eq!(data, json!({"LLMTTFT": 150, "TTSAudioFirstFrameTime": 0, "TotalCost": 0}));
    }

    #[test]
    fn exceptions_carry_zegos_code_for_their_stage() {
        assert_eq!(exception_code("asr", "the model failed"), 2101);
        assert_eq!(exception_code("llm", "HTTP 401: Incorrect API key provided"), 2203);
        assert_eq!(exception_code("llm", "rate limited (429)"), 2204);
        assert_eq!(exception_code("llm", "HTTP 400: max_tokens is too large"), 2202);
        assert_eq!(exception_code("llm", "timed out after 10 s"), 2201);
        assert_eq!(exception_code("tts", "the voice failed"), 1001);
    }

    #[test]
    fn sequences_increase_within_a_millisecond() {
        let sequences = Sequences::default();
        let agent = AgentId::from_string("seq-test".into());
        let first = sequences.next_here(&agent, 5, false);
        let second = sequences.next_here(&agent, 5, false);
        let third = sequences.next_here(&agent, 4, true);
        assert_eq!(first, 5000);
        assert!(second > first && third > second);
        assert_eq!(sequences.next_here(&agent, 1, true), 1000, "an ended instance is forgotten");
    }
}
