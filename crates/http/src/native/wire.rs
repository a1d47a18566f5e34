//! The JSON shapes of the native `/v1` API. They are the API's contract: the OpenAPI document is
//! generated from them, and `to_model` turns requests into the internal model, checking every value.
//!
//! The same [`AgentConfig`] is the request of `POST /v1/agents` and, with every default filled in
//! and secrets redacted, the `config` of an agent in answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An agent's configuration. Only `name` and `channel` are required; everything else has a
/// documented default, and the providers default to the embedded local models.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Unique among this app's running agents. ASCII letters, digits and `_ - . : @`, at most 64.
    #[schema(example = "support-bot")]
    pub name: String,
    /// The channel to join. Same characters as `name`.
    #[schema(example = "room-42")]
    pub channel: String,
    /// The agent's uid in the channel. Default `agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_uid: Option<String>,
    /// The uids the agent listens to. Default `["*"]`: anyone who is not an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_uids: Option<Vec<String>>,
    /// Seconds after the last listened-to participant leaves (or after start, if nobody joins)
    /// before the agent leaves by itself. 0 means never. Default 30, at most 259200 (72 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asr: Option<AsrConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<TtsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_detection: Option<TurnDetectionConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption: Option<InterruptionConfig>,
    /// Said when the first listened-to participant joins. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<GreetingConfig>,
    /// Said when the LLM or TTS fails during a turn; the agent keeps running. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// How many past messages go to the LLM with each turn. Default 32, 0–1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_history: Option<u32>,
    /// What the agent does when the user stays silent after its answer. Default: nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_prompt: Option<SilencePromptConfig>,
    /// Where the agent's events are posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callbacks: Option<CallbacksConfig>,
    /// Tools the LLM may call mid-turn (an `openai` LLM only: the embedded one cannot call
    /// tools). At most 64, names unique. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolConfig>>,
    /// How the agent uses its tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_options: Option<ToolOptionsConfig>,
}

/// An HTTP tool: a call is a POST of its arguments (a JSON object) to `url`, signed like the
/// native webhooks with the agent's `callbacks.secret` (`X-Colloquy-Timestamp`,
/// `X-Colloquy-Signature`), naming the tool and call in `X-Colloquy-Tool` and
/// `X-Colloquy-Tool-Call`; the JSON answer (at most 16 KiB) is the result the LLM gets.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// 1–64 of `a-z A-Z 0-9 _ -`, unique among the agent's tools.
    #[schema(example = "get_weather")]
    pub name: String,
    /// What the tool does, for the LLM. Default: empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema of the arguments: an object schema (`{"type": "object", "properties": …}`).
    /// Default: no arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    /// An HTTP tool: an `http://` or `https://` URL. Give `url` or `client`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `true`: a client tool, implemented by the people in the channel. A call goes to them as a
    /// data-channel message `{"object": "tool.call", "call_id", "name", "arguments"}`; the first
    /// `{"object": "tool.result", "call_id", "result"}` (or `"error"`) back is its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<bool>,
    /// How long a call may take, 100–60000 ms; after it, the LLM is told the call failed.
    /// Default 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

/// How the agent uses its tools.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolOptionsConfig {
    /// Rounds of calls one turn may make, 1–10; the LLM's request after the last one forbids
    /// calls. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rounds: Option<u32>,
    /// How long calls may run before the agent says a filler, 0–60000 ms. Default 800.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filler_after_ms: Option<u32>,
    /// What the agent says while it waits (one of them, at most once per turn); `[]` for
    /// silence. Default `["One moment."]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fillers: Option<Vec<String>>,
    /// Offers the LLM the built-in `end_call` tool: the agent says its goodbye and leaves (reason
    /// `ended_by_agent`). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_call: Option<bool>,
    /// Posts `agent.tool_called` to `callbacks.url` when each call ends (name, duration, outcome;
    /// not its arguments or result). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<bool>,
}

/// A configured agent's settings: the config file's `[[apps.agents]]`, which the vendor dialects
/// start by id (Alibaba's `AIAgentId`, ZEGO's `AgentId`). The fields of an [`AgentConfig`] that
/// describe the agent rather than the call, in the same shape, and `prompt`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// The system prompt: one system message. Set it here or in `llm.system_messages`, not both.
    pub prompt: Option<String>,
    pub idle_timeout: Option<u32>,
    pub llm: Option<LlmConfig>,
    pub asr: Option<AsrConfig>,
    pub tts: Option<TtsConfig>,
    pub turn_detection: Option<TurnDetectionConfig>,
    pub interruption: Option<InterruptionConfig>,
    pub greeting: Option<GreetingConfig>,
    pub failure_message: Option<String>,
    pub max_history: Option<u32>,
    pub silence_prompt: Option<SilencePromptConfig>,
}

/// Which implementation of a provider to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Vendor {
    /// The embedded models, in process. No keys, no network.
    Local,
    /// Any OpenAI-compatible server: OpenAI, Azure OpenAI, Groq, vLLM, Ollama, llama.cpp's server, …
    Openai,
}

// The endpoint fields (`url`, `api_key`, `headers`, `timeout_ms`, `max_retries`) repeat in the LLM,
// ASR and TTS groups on purpose: serde cannot combine `flatten` with `deny_unknown_fields`, and an
// unknown field must stay a 400 that names it.

/// The language model. Default: the embedded SmolLM2-135M-Instruct.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Default `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
    /// `local`: a GGUF file path or a model name in the model directory (default
    /// `SmolLM2-135M-Instruct`). `openai`: the model name (default `gpt-4o-mini`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `openai` only: the base URL (default `https://api.openai.com/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `openai` only: sent as `Authorization: Bearer …`. Never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// `openai` only: extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// `openai` only: how long to wait for the first byte, 100–120000 ms. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// `openai` only: retries before the first byte, 0–10. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Messages put before the conversation. Default: one short system prompt for a voice assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_messages: Option<Vec<PromptMessage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<LlmParams>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptMessage {
    pub role: PromptRole,
    pub content: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromptRole {
    System,
    User,
    Assistant,
}

/// Sampling parameters.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmParams {
    /// 0–2. Default 0.7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// (0, 1]. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// The longest answer in tokens, 1–8192. Default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

/// Speech recognition. Default: the embedded Whisper tiny.en.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AsrConfig {
    /// `local` (default), `openai`, or a speech vendor (`deepgram`) whose settings go in `params`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// A speech vendor's parameters, in the vendor's own names (`deepgram`: `key`, `model`,
    /// `language`, `url`, …; see `docs/vendors.md`). Keys are never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    /// `local`: `whisper-tiny.en` (default, English only) or `whisper-base` (multilingual).
    /// `openai`: the model name (default `whisper-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// BCP-47 language tag. Default `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// `openai` only: the base URL (default `https://api.openai.com/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `openai` only. Never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// `openai` only: extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// `openai` only: 100–120000 ms. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// `openai` only: 0–10. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Recognisers tried in order when this one fails mid-call, from the next utterance on (at
    /// most 4; each without `language` or a `fallback` of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub fallback: Option<Vec<AsrConfig>>,
}

/// Speech synthesis. Default: the embedded Piper voice `en_US-joe-medium`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TtsConfig {
    /// `local` (default), `openai`, or a speech vendor (`elevenlabs`) whose settings go in `params`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// A speech vendor's parameters, in the vendor's own names (`elevenlabs`: `key`, `voice_id`,
    /// `model_id`, `base_url`, …; see `docs/vendors.md`). Keys are never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    /// `openai` only: the model name (default `tts-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `local`: `en_US-joe-medium` (default). `openai`: a voice id (default `alloy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// Speaking rate, 0.5–2. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f32>,
    /// `openai` only: the base URL (default `https://api.openai.com/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `openai` only. Never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// `openai` only: extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// `openai` only: 100–120000 ms. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// `openai` only: 0–10. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Synthesisers tried in order when this one fails mid-call, from the next clause on (the
    /// failure message first). At most 4, each without `speed` or a `fallback` of its own. Without
    /// any, a failed vendor's failure message is spoken by the embedded voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub fallback: Option<Vec<TtsConfig>>,
}

/// When the user's turn starts and ends.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnDetectionConfig {
    /// VAD speech probability above which a frame is speech, 0.01–0.99. Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vad_threshold: Option<f32>,
    /// Speech must last this long to start a turn, 0–2000 ms. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_speech_ms: Option<u32>,
    /// Audio kept from before the start of speech, 0–5000 ms. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_padding_ms: Option<u32>,
    /// Silence that ends the user's turn, 100–10000 ms. Default 640.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_duration_ms: Option<u32>,
    /// The longest wait after the user went silent for the final transcript, 100–60000 ms and at
    /// least `silence_duration_ms`. Default 3000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_ms: Option<u32>,
}

/// Whether and how the user can cut the agent off.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterruptionConfig {
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Default `start_of_speech`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<InterruptionMode>,
    /// How long the user must speak over the agent to interrupt, 0–5000 ms. Default 400: a cough
    /// or an "mhm" does not cut the agent off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_speech_ms: Option<u32>,
    /// `keywords` mode: the words that interrupt (1–128 of them, each at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    /// When `enabled` is false: `append` (default) adds speech during the agent's turn to the next
    /// user turn; `ignore` drops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_disabled: Option<DisabledStrategy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InterruptionMode {
    StartOfSpeech,
    Keywords,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisabledStrategy {
    Append,
    Ignore,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GreetingConfig {
    /// At most 4096 characters.
    pub text: String,
    /// Whether the user can cut the greeting off. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruptible: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilencePromptConfig {
    /// How long the user must stay silent after the agent's turn, 1000–600000 ms.
    pub timeout_ms: u32,
    /// `speak` says `content`; `think` asks the LLM with it. Default `speak`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<SilenceAction>,
    /// 1–4096 characters.
    pub content: String,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SilenceAction {
    Speak,
    Think,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbacksConfig {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// When present, each delivery is signed with HMAC-SHA256. Never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A lifecycle state, as Agora names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Idle,
    Starting,
    Running,
    Stopping,
    Stopped,
    Recovering,
    Failed,
}

/// Why an agent stopped or failed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Reason {
    /// `left`, `idle_timeout`, `ended_by_agent`, `node_shutdown`, `node_restarted`, `node_lost` (a cluster node died), `panicked` or `error`.
    pub code: String,
    pub message: String,
}

/// An agent.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Agent {
    pub agent_id: String,
    pub name: String,
    pub channel: String,
    pub status: Status,
    /// Present for STOPPING, STOPPED and FAILED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it stopped or failed, in milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<i64>,
    /// The full configuration with defaults filled in and secrets redacted. Absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<AgentConfig>,
    /// The settings the agent's API accepted but this server does not honour (a vendor dialect's
    /// voice it cannot use, say), each with what happens instead. Absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<Warning>>,
}

/// A setting accepted but not honoured.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Warning {
    /// The field as the agent's API names it.
    pub field: String,
    pub message: String,
}

/// A page of agents, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<Agent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/agents` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only agents in this channel.
    pub channel: Option<String>,
    /// Only agents in these statuses, comma-separated (`RUNNING,STOPPED`).
    pub status: Option<String>,
    /// Page size, 1–100. Default 20.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `POST /v1/agents/{id}/update`: what can change mid-call. Fields left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    #[serde(default)]
    pub llm: Option<LlmUpdate>,
    #[serde(default)]
    pub tts: Option<TtsUpdate>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmUpdate {
    /// Replaces the prompt messages.
    #[serde(default)]
    pub system_messages: Option<Vec<PromptMessage>>,
    /// Changes the given parameters; the others keep their value.
    #[serde(default)]
    pub params: Option<LlmParams>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TtsUpdate {
    #[serde(default)]
    pub voice: Option<String>,
    #[serde(default)]
    pub speed: Option<f32>,
}

/// How a `speak` treats what the agent is saying now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SpeakPriority {
    /// Stop what the agent is saying and say this now.
    Interrupt,
    /// Say this after what the agent is saying.
    Append,
    /// Say this only if the agent is not speaking.
    Ignore,
}

/// `POST /v1/agents/{id}/speak`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpeakRequest {
    /// What to say, 1–4096 characters.
    pub text: String,
    /// Default `INTERRUPT`.
    #[serde(default)]
    pub priority: Option<SpeakPriority>,
    /// Whether the user can cut this off. Default true.
    #[serde(default)]
    pub interruptible: Option<bool>,
}

/// `POST /v1/agents/{id}/think`: text injected as a user turn.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThinkRequest {
    /// 1–4096 characters.
    pub text: String,
}

/// `POST /v1/agents/{id}/interrupt` takes no parameters; the body may be empty or `{}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterruptRequest {}

/// One message of the conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryItem {
    pub turn_id: u64,
    /// `user`, `assistant` or `tool`.
    pub role: String,
    /// For the assistant: only what the user actually heard. For a tool call: a JSON object
    /// `{"call_id", "name", "arguments", "result" or "error", "tool_ms"}`, the arguments and
    /// result as the JSON text they were.
    pub content: String,
    /// The assistant was cut off after `content`.
    pub interrupted: bool,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    pub agent_id: String,
    pub history: Vec<HistoryItem>,
}

/// Latency of one turn in milliseconds; absent where the stage did not run.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnMetrics {
    /// End of speech to the end-of-turn decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eou_delay_ms: Option<u32>,
    /// End of speech to the final transcript.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asr_ttlw_ms: Option<u32>,
    /// LLM request to its first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_ttft_ms: Option<u32>,
    /// LLM request to its first sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_ttfs_ms: Option<u32>,
    /// First text to TTS to its first audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tts_ttfb_ms: Option<u32>,
    /// Time spent in the engine itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_overhead_ms: Option<u32>,
    /// End of the user's speech to the first agent audio packet sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<u32>,
    /// Waiting for the turn's tool calls, every round; absent when it made none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_ms: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Turn {
    pub turn_id: u64,
    /// `voice_input`, `greeting`, `silence_prompt`, `api_speak` or `api_think`.
    pub start: String,
    /// `ok`, `interrupted`, `ignored` or `error`.
    pub end: String,
    pub started_at: i64,
    pub ended_at: i64,
    pub metrics: TurnMetrics,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Turns {
    pub agent_id: String,
    pub turns: Vec<Turn>,
}

/// `GET /healthz`
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
    pub version: String,
    /// Agents live on this node.
    pub live_agents: usize,
}
