//! Agora's request and response shapes. Agora's spec allows additional properties everywhere, so
//! unknown fields are accepted (the join handler warns about unknown keys of `properties`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---- requests ----

/// `POST /join`.
#[derive(Debug, Deserialize)]
pub struct JoinRequest {
    pub name: String,
    /// Deprecated preset names; none exist here.
    #[serde(default)]
    pub preset: Option<Value>,
    #[serde(default)]
    pub pipeline_id: Option<Value>,
    pub properties: Properties,
}

/// `join.properties`.
#[derive(Debug, Deserialize)]
pub struct Properties {
    pub channel: String,
    #[serde(default)]
    pub token: Option<String>,
    /// A string in Agora's docs; numbers are accepted too.
    #[serde(default)]
    pub agent_rtc_uid: Option<Value>,
    #[serde(default)]
    pub remote_rtc_uids: Option<Vec<Value>>,
    #[serde(default)]
    pub enable_string_uid: Option<bool>,
    #[serde(default)]
    pub idle_timeout: Option<i64>,
    #[serde(default)]
    pub silence_timeout: Option<Value>,
    #[serde(default)]
    pub agent_rtm_uid: Option<Value>,
    #[serde(default)]
    pub llm: Option<Llm>,
    #[serde(default)]
    pub asr: Option<Asr>,
    #[serde(default)]
    pub tts: Option<Tts>,
    #[serde(default)]
    pub mllm: Option<Value>,
    #[serde(default)]
    pub avatar: Option<Value>,
    #[serde(default)]
    pub sal: Option<Value>,
    #[serde(default)]
    pub turn_detection: Option<TurnDetection>,
    #[serde(default)]
    pub interruption: Option<Interruption>,
    #[serde(default)]
    pub vad: Option<DeprecatedVad>,
    #[serde(default)]
    pub parameters: Option<Parameters>,
    #[serde(default)]
    pub advanced_features: Option<AdvancedFeatures>,
    #[serde(default)]
    pub filler_words: Option<Value>,
    #[serde(default)]
    pub geofence: Option<Value>,
    #[serde(default)]
    pub rtc: Option<Value>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, Value>>,
}

/// A prompt message: OpenAI's `{role, content}`.
#[derive(Debug, Deserialize, Serialize, Clone)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// `properties.llm`.
#[derive(Debug, Deserialize)]
pub struct Llm {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub system_messages: Option<Vec<Message>>,
    #[serde(default)]
    pub params: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub max_history: Option<i64>,
    #[serde(default)]
    pub input_modalities: Option<Vec<String>>,
    #[serde(default)]
    pub output_modalities: Option<Vec<String>>,
    #[serde(default)]
    pub greeting_message: Option<String>,
    #[serde(default)]
    pub greeting_configs: Option<GreetingConfigs>,
    #[serde(default)]
    pub greeting_audio_url: Option<String>,
    #[serde(default)]
    pub failure_message: Option<String>,
    #[serde(default)]
    pub silence_message: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub style: Option<String>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub template_variables: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub mcp_servers: Option<Vec<Value>>,
}

/// `llm.greeting_configs`.
#[derive(Debug, Deserialize)]
pub struct GreetingConfigs {
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub delay_ms: Option<i64>,
    #[serde(default)]
    pub interruptable: Option<bool>,
}

/// `properties.asr`.
#[derive(Debug, Deserialize)]
pub struct Asr {
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub params: Option<BTreeMap<String, Value>>,
}

/// `properties.tts`.
#[derive(Debug, Deserialize)]
pub struct Tts {
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub params: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub skip_patterns: Option<Vec<Value>>,
}

/// `properties.turn_detection`: the v2.6 `config` form and the deprecated flat fields.
#[derive(Debug, Deserialize)]
pub struct TurnDetection {
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub config: Option<TurnDetectionConfig>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub interrupt_mode: Option<String>,
    #[serde(default)]
    pub interrupt_duration_ms: Option<i64>,
    #[serde(default)]
    pub interrupt_keywords: Option<Vec<String>>,
    #[serde(default)]
    pub prefix_padding_ms: Option<i64>,
    #[serde(default)]
    pub silence_duration_ms: Option<i64>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub eagerness: Option<String>,
}

/// `turn_detection.config`.
#[derive(Debug, Deserialize)]
pub struct TurnDetectionConfig {
    #[serde(default)]
    pub speech_threshold: Option<f64>,
    #[serde(default)]
    pub start_of_speech: Option<StartOfSpeech>,
    #[serde(default)]
    pub end_of_speech: Option<EndOfSpeech>,
}

/// `turn_detection.config.start_of_speech`.
#[derive(Debug, Deserialize)]
pub struct StartOfSpeech {
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub vad_config: Option<SosVadConfig>,
    #[serde(default)]
    pub keywords_config: Option<KeywordsConfig>,
    #[serde(default)]
    pub disabled_config: Option<DisabledConfig>,
}

/// `start_of_speech.vad_config`.
#[derive(Debug, Deserialize)]
pub struct SosVadConfig {
    #[serde(default)]
    pub interrupt_duration_ms: Option<i64>,
    #[serde(default)]
    pub speaking_interrupt_duration_ms: Option<i64>,
    #[serde(default)]
    pub prefix_padding_ms: Option<i64>,
}

/// `keywords_config` (`triggered_keywords` in `start_of_speech`, `trigger_keywords` in `interruption`).
#[derive(Debug, Deserialize)]
pub struct KeywordsConfig {
    #[serde(default, alias = "triggered_keywords")]
    pub trigger_keywords: Option<Vec<String>>,
}

/// `disabled_config`.
#[derive(Debug, Deserialize)]
pub struct DisabledConfig {
    #[serde(default)]
    pub strategy: Option<String>,
}

/// `turn_detection.config.end_of_speech`.
#[derive(Debug, Deserialize)]
pub struct EndOfSpeech {
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub vad_config: Option<EosVadConfig>,
    #[serde(default)]
    pub semantic_config: Option<SemanticConfig>,
}

/// `end_of_speech.vad_config`.
#[derive(Debug, Deserialize)]
pub struct EosVadConfig {
    #[serde(default)]
    pub silence_duration_ms: Option<i64>,
}

/// `end_of_speech.semantic_config`.
#[derive(Debug, Deserialize)]
pub struct SemanticConfig {
    #[serde(default)]
    pub silence_duration_ms: Option<i64>,
    #[serde(default)]
    pub max_wait_ms: Option<i64>,
    #[serde(default)]
    pub pause_state_enabled: Option<bool>,
}

/// `properties.interruption`.
#[derive(Debug, Deserialize)]
pub struct Interruption {
    #[serde(default)]
    pub enable: Option<bool>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub keywords_config: Option<KeywordsConfig>,
    #[serde(default)]
    pub disabled_config: Option<DisabledConfig>,
}

/// The deprecated top-level `properties.vad`.
#[derive(Debug, Deserialize)]
pub struct DeprecatedVad {
    #[serde(default)]
    pub interrupt_duration_ms: Option<i64>,
    #[serde(default)]
    pub prefix_padding_ms: Option<i64>,
    #[serde(default)]
    pub silence_duration_ms: Option<i64>,
    #[serde(default)]
    pub threshold: Option<f64>,
}

/// `properties.parameters`.
#[derive(Debug, Deserialize)]
pub struct Parameters {
    #[serde(default)]
    pub silence_config: Option<SilenceConfig>,
    #[serde(default)]
    pub farewell_config: Option<Value>,
    #[serde(default)]
    pub data_channel: Option<String>,
    #[serde(default)]
    pub enable_metrics: Option<bool>,
    #[serde(default)]
    pub enable_error_message: Option<bool>,
    #[serde(default)]
    pub audio_scenario: Option<String>,
    #[serde(default)]
    pub opt_out: Option<Value>,
}

/// `parameters.silence_config`.
#[derive(Debug, Deserialize)]
pub struct SilenceConfig {
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
}

/// `properties.advanced_features`.
#[derive(Debug, Deserialize)]
pub struct AdvancedFeatures {
    #[serde(default)]
    pub enable_mllm: Option<bool>,
    #[serde(default)]
    pub enable_rtm: Option<bool>,
    #[serde(default)]
    pub enable_sal: Option<bool>,
    #[serde(default)]
    pub enable_tools: Option<bool>,
    #[serde(default)]
    pub enable_aivad: Option<bool>,
}

/// `POST /agents/{id}/update`.
#[derive(Debug, Deserialize)]
pub struct UpdateRequest {
    pub properties: UpdateProperties,
}

/// `update.properties`.
#[derive(Debug, Deserialize)]
pub struct UpdateProperties {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub llm: Option<UpdateLlm>,
    #[serde(default)]
    pub mllm: Option<Value>,
}

/// `update.properties.llm`.
#[derive(Debug, Deserialize)]
pub struct UpdateLlm {
    #[serde(default)]
    pub system_messages: Option<Vec<Message>>,
    #[serde(default)]
    pub params: Option<BTreeMap<String, Value>>,
}

/// `POST /agents/{id}/speak`.
#[derive(Debug, Deserialize)]
pub struct SpeakRequest {
    pub text: String,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub interruptable: Option<bool>,
}

/// `POST /agents/{id}/think`.
#[derive(Debug, Deserialize)]
pub struct ThinkRequest {
    pub text: String,
    #[serde(default)]
    pub on_listening_action: Option<String>,
    #[serde(default)]
    pub on_thinking_action: Option<String>,
    #[serde(default)]
    pub on_speaking_action: Option<String>,
    #[serde(default)]
    pub interruptable: Option<bool>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// `GET /agents` query.
#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub from_time: Option<i64>,
    #[serde(default)]
    pub to_time: Option<i64>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `GET /agents/{id}/turns` query.
#[derive(Debug, Deserialize, Default)]
pub struct TurnsQuery {
    #[serde(default)]
    pub page_index: Option<u32>,
    #[serde(default)]
    pub page_size: Option<u32>,
}

// ---- responses ----

/// The answer of `join` and `update`.
#[derive(Debug, Serialize)]
pub struct AgentInfo {
    pub agent_id: String,
    /// Unix seconds.
    pub create_ts: i64,
    pub status: &'static str,
}

/// The answer of `GET /agents/{id}`.
#[derive(Debug, Serialize)]
pub struct QueryResponse {
    pub message: String,
    pub start_ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_ts: Option<i64>,
    pub name: String,
    pub status: &'static str,
    pub agent_id: String,
}

/// The answer of `GET /agents`.
#[derive(Debug, Serialize)]
pub struct ListResponse {
    pub data: ListData,
    pub meta: ListMeta,
    pub status: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ListData {
    pub count: usize,
    pub list: Vec<ListItem>,
}

#[derive(Debug, Serialize)]
pub struct ListItem {
    pub start_ts: i64,
    pub status: &'static str,
    pub agent_id: String,
}

#[derive(Debug, Serialize)]
pub struct ListMeta {
    /// Empty on the last page.
    pub cursor: String,
    pub total: usize,
}

/// The answer of `speak`, `interrupt` and `think`.
#[derive(Debug, Serialize)]
pub struct CommandResponse {
    pub agent_id: String,
    pub channel: String,
    /// Unix seconds when the command was taken.
    pub start_ts: i64,
}

/// The answer of `GET /agents/{id}/history`.
#[derive(Debug, Serialize)]
pub struct HistoryResponse {
    pub agent_id: String,
    pub start_ts: i64,
    pub status: &'static str,
    pub contents: Vec<HistoryItem>,
}

#[derive(Debug, Serialize)]
pub struct HistoryItem {
    pub role: &'static str,
    pub content: String,
}

/// The answer of `GET /agents/{id}/turns`.
#[derive(Debug, Serialize)]
pub struct TurnsResponse {
    pub agent_id: String,
    pub name: String,
    pub channel: String,
    pub total_turn_count: usize,
    pub pagination: Pagination,
    pub turns: Vec<Value>,
}

#[derive(Debug, Serialize)]
pub struct Pagination {
    pub page_index: u32,
    pub total_pages: u32,
    pub is_last_page: bool,
}
