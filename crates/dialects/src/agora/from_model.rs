//! The model out to Agora's shapes: agent infos and state names, times in seconds, turns.

use colloquy_model::{AgentRecord, ExitReason, TurnEnd, TurnRecord, TurnStart};
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
        "start": {"start_at": turn.started_at.0, "type": start_type, "metadata": {}},
        "end": {"end_at": turn.ended_at.0, "type": end_type, "metadata": {}},
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
