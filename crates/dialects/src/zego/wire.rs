//! ZEGO's request and response shapes (PascalCase JSON). Required fields are `Option`s here and
//! checked by hand, so that a missing one gets ZEGO's parameter-error code with its name.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `RegisterAgent` and `UpdateAgent`: an agent template.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentTemplate {
    pub agent_id: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "LLM")]
    pub llm: Option<Map<String, Value>>,
    #[serde(rename = "TTS")]
    pub tts: Option<Map<String, Value>>,
    #[serde(rename = "ASR")]
    pub asr: Option<Map<String, Value>>,
}

/// A template as it is saved and answered by `QueryAgents` / `ListAgents`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SavedTemplate {
    pub agent_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "LLM", default)]
    pub llm: Map<String, Value>,
    #[serde(rename = "TTS", default)]
    pub tts: Map<String, Value>,
    #[serde(rename = "ASR", default)]
    pub asr: Map<String, Value>,
}

impl SavedTemplate {
    /// Overrides the groups' keys with those of the groups given (`UpdateAgent`, and a
    /// `CreateAgentInstance`'s own groups over its template's).
    pub fn merge_groups(
        &mut self,
        llm: Option<Map<String, Value>>,
        tts: Option<Map<String, Value>>,
        asr: Option<Map<String, Value>>,
    ) {
        for (base, over) in [(&mut self.llm, llm), (&mut self.tts, tts), (&mut self.asr, asr)] {
            base.extend(over.into_iter().flatten());
        }
    }
}

/// `UnregisterAgent`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentIdOnly {
    pub agent_id: Option<String>,
}

/// `ListAgents`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAgents {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `QueryAgents`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryAgents {
    pub agent_ids: Option<Vec<String>>,
}

/// The `LLM` group.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LlmConfig {
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub system_prompt: Option<String>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub params: Option<Map<String, Value>>,
    pub add_agent_info: Option<bool>,
    pub agent_extra_info: Option<Value>,
}

/// The `TTS` group.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtsConfig {
    pub vendor: Option<String>,
    pub params: Option<Map<String, Value>>,
    pub filter_text: Option<Value>,
    pub terminator_text: Option<Value>,
}

/// The `ASR` group.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsrConfig {
    pub vendor: Option<String>,
    pub hot_word: Option<String>,
    #[serde(rename = "VADSilenceSegmentation")]
    pub vad_silence_segmentation: Option<u32>,
    pub pause_interval: Option<u32>,
    pub params: Option<Map<String, Value>>,
}

/// `CreateAgentInstance`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateInstance {
    pub agent_id: Option<String>,
    pub user_id: Option<String>,
    #[serde(rename = "RTC")]
    pub rtc: Option<Rtc>,
    #[serde(rename = "LLM")]
    pub llm: Option<Map<String, Value>>,
    #[serde(rename = "TTS")]
    pub tts: Option<Map<String, Value>>,
    #[serde(rename = "ASR")]
    pub asr: Option<Map<String, Value>>,
    pub message_history: Option<MessageHistory>,
    pub callback_config: Option<CallbackConfig>,
    pub advanced_config: Option<AdvancedConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rtc {
    pub room_id: Option<String>,
    pub agent_stream_id: Option<String>,
    pub agent_user_id: Option<String>,
    pub user_stream_id: Option<String>,
    pub welcome_message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageHistory {
    pub sync_mode: Option<u8>,
    pub messages: Option<Vec<HistoryMessage>>,
    pub window_size: Option<u32>,
    #[serde(rename = "ZIM")]
    pub zim: Option<Value>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryMessage {
    pub role: String,
    pub content: String,
}

/// Which conversation events are called back (0 off, 1 on).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct CallbackConfig {
    #[serde(rename = "ASRResult", default)]
    pub asr_result: u8,
    #[serde(rename = "LLMResult", default)]
    pub llm_result: u8,
    #[serde(rename = "Interrupted", default)]
    pub interrupted: u8,
    #[serde(rename = "UserSpeakAction", default)]
    pub user_speak_action: u8,
    #[serde(rename = "AgentSpeakAction", default)]
    pub agent_speak_action: u8,
    #[serde(rename = "UserAudioData", default)]
    pub user_audio_data: u8,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AdvancedConfig {
    pub interrupt_mode: Option<u8>,
    pub max_idle_time: Option<u32>,
}

/// Every instance action names its instance.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceOnly {
    pub agent_instance_id: Option<String>,
}

/// `UpdateAgentInstance`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateInstance {
    pub agent_instance_id: Option<String>,
    #[serde(rename = "LLM")]
    pub llm: Option<Map<String, Value>>,
    #[serde(rename = "TTS")]
    pub tts: Option<Map<String, Value>>,
    #[serde(rename = "ASR")]
    pub asr: Option<Map<String, Value>>,
}

/// `SendAgentInstanceTTS`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendTts {
    pub agent_instance_id: Option<String>,
    pub text: Option<String>,
    pub add_history: Option<bool>,
    pub priority: Option<String>,
    pub same_priority_option: Option<String>,
}

/// `SendAgentInstanceLLM`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendLlm {
    pub agent_instance_id: Option<String>,
    pub text: Option<String>,
    pub system_prompt: Option<String>,
    pub add_question_to_history: Option<bool>,
    pub add_answer_to_history: Option<bool>,
    pub priority: Option<String>,
    pub same_priority_option: Option<String>,
}

/// What this dialect keeps in an instance's `Origin::data`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OriginData {
    pub agent_id: String,
    pub user_id: String,
    pub room_id: String,
    pub agent_user_id: String,
    pub agent_stream_id: String,
    #[serde(default)]
    pub user_stream_id: Option<String>,
    #[serde(default)]
    pub callback_config: CallbackConfig,
}

impl OriginData {
    /// Reads an agent's origin data; an agent started elsewhere has none.
    pub fn of(spec: &colloquy_model::AgentSpec) -> Option<OriginData> {
        spec.origin.data.as_deref().and_then(|data| serde_json::from_str(data).ok())
    }
}
