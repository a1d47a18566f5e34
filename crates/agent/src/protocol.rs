//! The in-channel client protocol: one JSON object per data-channel message, named after Agora's
//! conversational AI toolkit, each with the `turn_id` it belongs to.
//!
//! | `object` | fields |
//! |---|---|
//! | `user.transcription` | `text`, `final` (partials first, then one final) |
//! | `assistant.transcription` | `text`, `turn_status` (0 in progress, 1 ended, 2 interrupted) |
//! | `message.interrupt` | – |
//! | `message.metrics` | `metrics` (ms: `eou_delay`, `asr_ttlw`, `llm_ttft`, `llm_ttfs`, `tts_ttfb`, `engine_overhead`, `e2e`, `tool`) |
//! | `message.error` | `module` (`asr`, `llm`, `tts`), `message` |
//! | `agent.state` | `state` (`idle`, `listening`, `thinking`, `speaking`) |
//! | `tool.started` | `call_id`, `name` (the arguments are not shown) |
//! | `tool.finished` | `call_id`, `name`, `duration_ms`, `outcome` (`ok`, `error`, `cancelled`; the result is not shown) |
//! | `tool.call` | `call_id`, `name`, `arguments` (a client tool's call; answer it) |
//!
//! Every message also carries `agent_uid` and `ts` (unix ms). From the people in the channel, the
//! agent reads `{"object": "tool.result", "call_id", "result"}` (or `"error"`), the answer to a
//! `tool.call`.

use colloquy_conversation::ClientEvent;
use colloquy_model::{ToolCall, ToolOutcome, TurnId, TurnMetrics};
use serde_json::{Value, json};

/// The JSON text of `event`.
pub fn client_message(event: &ClientEvent, agent_uid: &str, ts: i64) -> String {
    let mut message = match event {
        ClientEvent::UserTranscription { turn, text, is_final } => {
            json!({"object": "user.transcription", "turn_id": turn.0, "text": text, "final": is_final})
        }
        ClientEvent::AssistantTranscription { turn, text, status } => {
            json!({"object": "assistant.transcription", "turn_id": turn.0, "text": text, "turn_status": *status as u8})
        }
        ClientEvent::Interrupted { turn } => json!({"object": "message.interrupt", "turn_id": turn.0}),
        ClientEvent::Metrics { turn, metrics } => {
            json!({"object": "message.metrics", "turn_id": turn.0, "metrics": metrics_json(metrics)})
        }
        ClientEvent::Error { turn, stage, message } => {
            json!({"object": "message.error", "turn_id": turn.0, "module": stage.as_str(), "message": message})
        }
        ClientEvent::State { turn, state } => {
            json!({"object": "agent.state", "turn_id": turn.0, "state": state.as_str()})
        }
        ClientEvent::ToolStarted { turn, call_id, name } => {
            json!({"object": "tool.started", "turn_id": turn.0, "call_id": call_id, "name": name})
        }
        ClientEvent::ToolFinished { turn, call_id, name, duration_ms, end } => json!({
            "object": "tool.finished", "turn_id": turn.0, "call_id": call_id, "name": name,
            "duration_ms": duration_ms, "outcome": end.as_str(),
        }),
    };
    message["agent_uid"] = Value::from(agent_uid);
    message["ts"] = Value::from(ts);
    message.to_string()
}

/// A client tool's call, for the people in the channel: its arguments as the JSON they are (as
/// text when the LLM wrote something else).
pub fn tool_call_message(turn: TurnId, call: &ToolCall, agent_uid: &str, ts: i64) -> String {
    let arguments = serde_json::from_str::<Value>(&call.arguments).unwrap_or_else(|_| call.arguments.clone().into());
    json!({
        "object": "tool.call", "turn_id": turn.0, "call_id": call.id, "name": call.name, "arguments": arguments,
        "agent_uid": agent_uid, "ts": ts,
    })
    .to_string()
}

/// A participant's `{"object": "tool.result", "call_id", "result"}` (or `"error"`): the call it
/// answers and its outcome. Anything else is not a tool result.
pub fn tool_result(text: &str) -> Option<(String, ToolOutcome)> {
    let value: Value = serde_json::from_str(text).ok()?;
    if value["object"] != "tool.result" {
        return None;
    }
    let call_id = value["call_id"].as_str()?.to_owned();
    let outcome = match (value.get("result"), value["error"].as_str()) {
        (_, Some(error)) => ToolOutcome::Failed(error.to_owned()),
        (Some(result), None) => ToolOutcome::Ok(result.to_string()),
        (None, None) => ToolOutcome::Failed("the client's tool.result had no result".into()),
    };
    Some((call_id, outcome))
}

/// Per-turn metrics as JSON, in milliseconds; a stage that did not run is `null`.
pub fn metrics_json(m: &TurnMetrics) -> Value {
    json!({
        "eou_delay": m.eou_delay_ms,
        "asr_ttlw": m.asr_ttlw_ms,
        "llm_ttft": m.llm_ttft_ms,
        "llm_ttfs": m.llm_ttfs_ms,
        "tts_ttfb": m.tts_ttfb_ms,
        "engine_overhead": m.engine_overhead_ms,
        "e2e": m.e2e_ms,
        "tool": m.tool_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloquy_conversation::{ToolEnd, TurnStatus, VoiceState};

    #[test]
    fn a_client_tool_call_goes_out_and_its_result_comes_back() {
        let call = ToolCall { id: "call_1".into(), name: "show_map".into(), arguments: r#"{"city":"Oslo"}"#.into() };
        let message: Value = serde_json::from_str(&tool_call_message(TurnId(3), &call, "a", 7)).unwrap();
        assert_eq!(
            message,
            json!({"object": "tool.call", "turn_id": 3, "call_id": "call_1", "name": "show_map",
                   "arguments": {"city": "Oslo"}, "agent_uid": "a", "ts": 7})
        );
        let ok = tool_result(r#"{"object": "tool.result", "call_id": "call_1", "result": {"shown": true}}"#);
        assert_eq!(ok, Some(("call_1".into(), ToolOutcome::Ok(r#"{"shown":true}"#.into()))));
        let failed = tool_result(r#"{"object": "tool.result", "call_id": "call_1", "error": "no map"}"#);
        assert_eq!(failed, Some(("call_1".into(), ToolOutcome::Failed("no map".into()))));
        assert_eq!(tool_result(r#"{"object": "message.hello"}"#), None);
        assert_eq!(tool_result("not json"), None);
    }

    #[test]
    fn messages_have_their_object_turn_and_fields() {
        let cases = [
            (
                ClientEvent::AssistantTranscription {
                    turn: TurnId(3),
                    text: "Hi.".into(),
                    status: TurnStatus::Interrupted,
                },
                json!({"object": "assistant.transcription", "turn_id": 3, "text": "Hi.", "turn_status": 2, "agent_uid": "a", "ts": 7}),
            ),
            (
                ClientEvent::UserTranscription { turn: TurnId(2), text: "yes".into(), is_final: true },
                json!({"object": "user.transcription", "turn_id": 2, "text": "yes", "final": true, "agent_uid": "a", "ts": 7}),
            ),
            (
                ClientEvent::ToolFinished {
                    turn: TurnId(4),
                    call_id: "call_1".into(),
                    name: "get_weather".into(),
                    duration_ms: 120,
                    end: ToolEnd::Failed,
                },
                json!({"object": "tool.finished", "turn_id": 4, "call_id": "call_1", "name": "get_weather",
                       "duration_ms": 120, "outcome": "error", "agent_uid": "a", "ts": 7}),
            ),
            (
                ClientEvent::State { turn: TurnId(1), state: VoiceState::Thinking },
                json!({"object": "agent.state", "turn_id": 1, "state": "thinking", "agent_uid": "a", "ts": 7}),
            ),
        ];
        for (event, expected) in cases {
            let text = client_message(&event, "a", 7);
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
        }
    }
}
