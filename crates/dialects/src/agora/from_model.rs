//! The model out to Agora's shapes: agent infos and state names, times in seconds, turns.

use colloquy_model::{AgentRecord, ExitReason, InterruptCause, InterruptionMode, TurnEnd, TurnRecord, TurnStart};
use serde_json::{Value, json};

use super::wire;

/// A model time (Unix milliseconds) in Agora's seconds.
pub(crate) fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// Why an agent ended, in Agora's words where Agora has them (the query's `message` and NCS
/// event 102's say the same).
pub(crate) fn exit_reason(reason: &ExitReason) -> String {
    match reason {
        ExitReason::IdleTimeout => "Idle for too long".to_owned(),
        reason => reason.message(),
    }
}

pub(crate) fn status_name(record: &AgentRecord) -> &'static str {
    record.state.status().as_str()
}

pub(crate) fn agent_info(record: &AgentRecord) -> wire::AgentInfo {
    wire::AgentInfo {
        agent_id: record.id.to_string(),
        create_ts: secs(record.created_at.0),
        status: status_name(record),
    }
}

/// A turn's `start.metadata`: how long the user spoke, how long their speech took to cut the agent
/// off, which greeting.
fn start_metadata(turn: &TurnRecord) -> Value {
    let d = &turn.detail;
    let mut metadata = serde_json::Map::new();
    for (key, value) in [
        ("speech_duration_ms", d.speech_duration_ms),
        ("interrupt_duration_ms", d.interrupt_duration_ms),
        ("greeting_nth", d.greeting_nth),
    ] {
        if let Some(value) = value {
            metadata.insert(key.to_owned(), json!(value));
        }
    }
    Value::Object(metadata)
}

/// A turn's `end.metadata`: how much was played, and what cut it off, in Agora's words.
fn end_metadata(record: &AgentRecord, turn: &TurnRecord) -> Value {
    let d = &turn.detail;
    let mut metadata = serde_json::Map::new();
    if let Some(ms) = d.playback_ms {
        metadata.insert("playback_duration_ms".to_owned(), json!(ms));
    }
    let caused_by = d.interrupted_by.and_then(|cause| match cause {
        InterruptCause::UserSpeech if record.spec.interruption.mode == InterruptionMode::Keywords => Some("keywords"),
        InterruptCause::UserSpeech => Some("start_of_speech"),
        InterruptCause::ApiSpeak => Some("api_speak"),
        // Agora's list has no `think`: it is an API call that cut the agent off.
        InterruptCause::ApiThink | InterruptCause::ApiInterrupt => Some("api_interrupt"),
        // Nobody left to hear it: not a cause Agora names.
        InterruptCause::UserLeft => None,
    });
    if let Some(caused_by) = caused_by {
        metadata.insert("caused_by".to_owned(), json!(caused_by));
    }
    Value::Object(metadata)
}

/// A turn as Agora shows it (§ turn object). `segments_by_name`: the webhook's form of the
/// segmented latency (an object), rather than the REST list of `{name, latency}`.
pub(crate) fn turn_json(record: &AgentRecord, turn: &TurnRecord, segments_by_name: bool) -> Value {
    let start_type = match turn.start {
        TurnStart::VoiceInput => "voice_input",
        TurnStart::Greeting => "greeting",
        TurnStart::SilencePrompt => "silence_timeout",
        TurnStart::ApiSpeak => "api_speak",
        TurnStart::ApiThink => "api_think",
    };
    let end_type = match turn.end {
        TurnEnd::Ok => "ok",
        TurnEnd::Interrupted => "interrupted",
        TurnEnd::Ignored => "ignored",
        TurnEnd::Error => "error",
    };
    let m = &turn.metrics;
    let segments: Vec<(&str, u32)> = [
        ("algorithm_processing", m.eou_delay_ms),
        ("asr_ttlw", m.asr_ttlw_ms),
        ("llm_ttft", m.llm_ttft_ms),
        ("llm_ftfs", m.llm_ttfs_ms),
        ("tts_ttfb", m.tts_ttfb_ms),
    ]
    .into_iter()
    .filter_map(|(name, v)| v.map(|v| (name, v)))
    .collect();
    let segmented = if segments_by_name {
        Value::Object(segments.iter().map(|(n, v)| ((*n).to_owned(), json!(v))).collect())
    } else {
        Value::Array(segments.iter().map(|(n, v)| json!({"name": n, "latency": v})).collect())
    };
    json!({
        "agent_id": record.id.to_string(),
        "channel": record.spec.channel.to_string(),
        "turn_id": turn.turn_id,
        "start": {"start_at": turn.started_at.0, "type": start_type, "metadata": start_metadata(turn)},
        "end": {"end_at": turn.ended_at.0, "type": end_type, "metadata": end_metadata(record, turn)},
        "metrics": {"e2e_latency_ms": m.e2e_ms, "segmented_latency_ms": segmented},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_timeout_has_agoras_one_wording() {
        assert_eq!(exit_reason(&ExitReason::IdleTimeout), "Idle for too long");
        let other = ExitReason::Error("the LLM is unreachable".into());
        assert_eq!(exit_reason(&other), other.message());
    }
}
