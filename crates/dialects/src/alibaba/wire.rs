//! The request shapes: `AIAgentConfig` (OpenAPI `AgentConfig`, app server `agent_config`) and the
//! legacy `AIAgentTemplateConfig` (`TemplateConfig`, `template_config`), both sent as JSON strings;
//! the app server's JSON body; and [`OriginData`], what the dialect keeps in a spec's origin.
//! Reading them into the model is `to_model.rs`.

use std::collections::BTreeMap;

use colloquy_model::{AgentRecord, Dialect};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::VOICE_CHAT;

/// `AIAgentConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AgentConfig {
    pub(crate) greeting: Option<String>,
    pub(crate) max_idle_time: Option<i64>,
    pub(crate) enable_push_to_talk: Option<bool>,
    pub(crate) turn_detection_config: Option<TurnDetectionConfig>,
    pub(crate) interrupt_config: Option<InterruptConfig>,
    pub(crate) asr_config: Option<AsrConfig>,
    pub(crate) llm_config: Option<LlmConfig>,
    pub(crate) tts_config: Option<TtsConfig>,
    pub(crate) auto_speech_config: Option<AutoSpeechConfig>,
    /// Everything else (`Volume`, `GracefulShutdown`, `AvatarConfig`, …): accepted, not applied.
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
    /// What reading it found that cannot be honoured (a deprecated template beside it, the
    /// template's unknown keys), for the agent's warnings.
    #[serde(skip)]
    pub(crate) noticed: colloquy_http::fields::Warnings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TurnDetectionConfig {
    pub(crate) mode: Option<String>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct InterruptConfig {
    pub(crate) enable_voice_interrupt: Option<bool>,
    pub(crate) interrupt_words: Option<Vec<String>>,
    pub(crate) no_interrupt_mode: Option<String>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AsrConfig {
    pub(crate) asr_max_silence: Option<i64>,
    pub(crate) vad_duration: Option<i64>,
    pub(crate) vad_level: Option<i64>,
    pub(crate) asr_language_id: Option<String>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct LlmConfig {
    pub(crate) llm_system_prompt: Option<String>,
    pub(crate) llm_history: Option<Vec<HistoryMessage>>,
    pub(crate) llm_history_limit: Option<i64>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HistoryMessage {
    pub(crate) role: String,
    pub(crate) content: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TtsConfig {
    pub(crate) voice_id: Option<String>,
    /// The synthesis model: a MiniMax one (`speech-02-turbo`) or a CosyVoice one.
    pub(crate) model_id: Option<String>,
    pub(crate) speech_rate: Option<f64>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AutoSpeechConfig {
    pub(crate) user_idle: Option<UserIdle>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UserIdle {
    pub(crate) wait_time: Option<i64>,
    pub(crate) messages: Option<Vec<IdleMessage>>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct IdleMessage {
    pub(crate) text: String,
    #[serde(flatten)]
    #[expect(dead_code, reason = "accepted; the other groups warn about their unknown keys, this one never has")]
    pub(crate) other: BTreeMap<String, Value>,
}

/// The legacy `AIAgentTemplateConfig`: `{VoiceChat|AvatarChat3D|VisionChat: {flat fields}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TemplateConfig {
    pub(crate) voice_chat: Option<FlatTemplate>,
    #[serde(rename = "AvatarChat3D")]
    pub(crate) avatar_chat_3d: Option<Value>,
    pub(crate) vision_chat: Option<Value>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
}

/// The flat knobs of a legacy template.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct FlatTemplate {
    pub(crate) greeting: Option<String>,
    pub(crate) max_idle_time: Option<i64>,
    pub(crate) enable_push_to_talk: Option<bool>,
    pub(crate) enable_voice_interrupt: Option<bool>,
    pub(crate) asr_max_silence: Option<i64>,
    pub(crate) voice_id: Option<String>,
    pub(crate) llm_system_prompt: Option<String>,
    pub(crate) llm_history: Option<Vec<HistoryMessage>>,
    pub(crate) llm_history_limit: Option<i64>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
}

/// A JSON string field that some clients send as an object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Text {
    Text(String),
    Json(Value),
}

impl Text {
    pub(crate) fn into_string(self) -> String {
        match self {
            Text::Text(text) => text,
            Text::Json(value) => value.to_string(),
        }
    }
}

/// The app server's body: every field of every action; each action reads what it needs.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Body {
    pub(crate) user_id: Option<String>,
    pub(crate) ai_agent_id: Option<String>,
    pub(crate) workflow_type: Option<String>,
    pub(crate) template_config: Option<Text>,
    pub(crate) agent_config: Option<Text>,
    pub(crate) expire: Option<i64>,
    pub(crate) user_data: Option<Text>,
    pub(crate) region: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) chat_sync_config: Option<Value>,
    pub(crate) ai_agent_instance_id: Option<String>,
    pub(crate) channel_id: Option<String>,
}

/// What the dialect keeps about an instance, in `spec.origin.data`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct OriginData {
    pub(crate) ai_agent_id: String,
    pub(crate) channel_id: String,
    pub(crate) agent_user_id: String,
    /// The user the agent listens to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_data: Option<String>,
    pub(crate) workflow_type: String,
    /// `AgentConfig` as it was sent (a JSON string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) agent_config: Option<String>,
    /// `TemplateConfig` as it was sent (a JSON string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) template_config: Option<String>,
}

impl OriginData {
    /// The data of an agent's origin; an agent started elsewhere gets what its spec says.
    pub(crate) fn of(record: &AgentRecord) -> OriginData {
        let kept = match (&record.spec.origin.dialect, &record.spec.origin.data) {
            (Dialect::Alibaba, Some(data)) => serde_json::from_str(data).ok(),
            _ => None,
        };
        kept.unwrap_or_else(|| OriginData {
            channel_id: record.spec.channel.to_string(),
            agent_user_id: record.spec.agent_uid.to_string(),
            workflow_type: VOICE_CHAT.to_owned(),
            ..OriginData::default()
        })
    }
}
