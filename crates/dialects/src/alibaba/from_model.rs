//! The model out to Alibaba's shapes: an instance's status name, an instance as the OpenAPI and the
//! app server describe it, and a history entry as a `ListAIAgentDialogues` dialogue.

use colloquy_model::{AgentRecord, HistoryEntry, Speaker, TurnRecord, TurnStart};
use serde_json::{Value, json};

use super::signature;
use super::wire::OriginData;

/// `Executing` while the agent lives, `Finished` once it is over.
pub(crate) fn status_name(record: &AgentRecord) -> &'static str {
    if record.state.status().is_terminal() { "Finished" } else { "Executing" }
}

/// A config kept as it was sent (a JSON string), as JSON again; `null` when there was none.
fn parsed(text: Option<&String>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
}

/// The instance's `AgentConfig` as it was sent, with what an update can change as it is now (the
/// system prompt, the speech rate, the voice-interrupt switch): the AUI clients read the running
/// settings back from describe.
fn current_config(record: &AgentRecord, sent: Option<&String>) -> Value {
    let mut config = match parsed(sent) {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let spec = &record.spec;
    let mut group = |name: &str, key: &str, value: Value| {
        let entry = config.entry(name.to_owned()).or_insert_with(|| json!({}));
        if let Value::Object(group) = entry {
            group.insert(key.to_owned(), value);
        }
    };
    if let Some(prompt) = spec.llm.system_messages.iter().find(|m| m.role == colloquy_model::PromptRole::System) {
        group("LlmConfig", "LlmSystemPrompt", json!(prompt.content));
    }
    group("TtsConfig", "SpeechRate", json!(spec.tts.speed));
    group("InterruptConfig", "EnableVoiceInterrupt", json!(spec.interruption.enabled));
    Value::Object(config)
}

/// An instance in the OpenAPI's shape (`DescribeAIAgentInstance.Instance`, `ListAIAgentInstance.Instances[]`).
pub(crate) fn instance_json(record: &AgentRecord) -> Value {
    let data = OriginData::of(record);
    let modified = record.stopped_at.unwrap_or(record.created_at);
    json!({
        "InstanceId": record.id.as_str(),
        "AIAgentId": data.ai_agent_id,
        "Status": status_name(record),
        "RuntimeConfig": { "VoiceChat": { "AgentUserId": data.agent_user_id, "ChannelId": data.channel_id },
                           "AgentUserId": data.agent_user_id, "ChannelId": data.channel_id },
        "AgentConfig": current_config(record, data.agent_config.as_ref()),
        "TemplateConfig": parsed(data.template_config.as_ref()),
        "UserData": data.user_data.unwrap_or_default(),
        "SessionId": data.session_id.unwrap_or_default(),
        "CallLogUrl": "",
        "GmtCreate": signature::format_iso8601(u64::try_from(record.created_at.0 / 1000).unwrap_or(0)),
        "GmtModified": signature::format_iso8601(u64::try_from(modified.0 / 1000).unwrap_or(0)),
    })
}

/// An instance in the app server's shape (`describeAIAgentInstance`): snake_case, the configs as
/// they were sent and the runtime config as a JSON string.
pub(crate) fn app_server_instance_json(record: &AgentRecord) -> Value {
    let data = OriginData::of(record);
    let runtime = json!({ "AgentUserId": data.agent_user_id, "ChannelId": data.channel_id });
    json!({
        "ai_agent_instance_id": record.id.as_str(),
        "ai_agent_id": data.ai_agent_id,
        "status": status_name(record),
        "call_log_url": "",
        "runtime_config": runtime.to_string(),
        // The AUI web client `JSON.parse`s both: a config that was not given is "{}", not "".
        "agent_config": data.agent_config.filter(|c| !c.trim().is_empty()).unwrap_or_else(|| "{}".to_owned()),
        "template_config": data.template_config.filter(|c| !c.trim().is_empty()).unwrap_or_else(|| "{}".to_owned()),
        "user_data": data.user_data.unwrap_or_default(),
        "session_id": data.session_id.unwrap_or_default(),
        "channel_id": data.channel_id,
        "ai_agent_user_id": data.agent_user_id,
        "workflow_type": data.workflow_type,
    })
}

fn dialogue_type(start: Option<TurnStart>) -> &'static str {
    match start {
        Some(TurnStart::Greeting) => "greeting",
        Some(TurnStart::ApiSpeak) => "speech",
        _ => "normal",
    }
}

/// The `index`th history entry of `record` as a `ListAIAgentDialogues.Dialogues[]` item; `turns`
/// tell a greeting and a `SendAIAgentSpeech` from an answer.
pub(crate) fn dialogue_json(record: &AgentRecord, index: usize, entry: HistoryEntry, turns: &[TurnRecord]) -> Value {
    let kind = dialogue_type(turns.iter().find(|t| t.turn_id == entry.turn_id).map(|t| t.start));
    let producer = match entry.speaker {
        Speaker::User => "user",
        // Callers leave tool calls out; were one here, it is the agent's doing.
        Speaker::Assistant | Speaker::Tool => "agent",
    };
    json!({
        "DialogueId": format!("{}-{index}", record.id),
        "RoundId": entry.turn_id.to_string(),
        "NodeId": record.id.as_str(),
        "Producer": producer,
        "Source": "call",
        "Text": entry.content,
        "ReasoningText": "",
        "Time": entry.at.0,
        "Type": if producer == "user" { "normal" } else { kind },
        "Extend": if entry.interrupted { r#"{"interrupted":true}"# } else { "" },
        "AttachedFileList": [],
    })
}
