//! An agent's configuration, resolved: every field has its value, defaults filled in. Dialects build
//! an [`AgentSpec`] from what the caller sent, checking each value against the limits documented
//! here (the `RANGE`/`MAX` constants), so a spec that exists is a valid one.
//!
//! Defaults are constants next to their fields (`TurnDetection::DEFAULT`, …), documented once here
//! and shown in the OpenAPI schema by the native dialect.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::{AgentName, ChannelName, Secret, Tools, Uid, VendorChoice};

/// Everything an agent is started with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Unique among the running agents of its app.
    pub name: AgentName,
    /// The channel the agent joins.
    pub channel: ChannelName,
    /// The agent's own uid in the channel.
    pub agent_uid: Uid,
    /// Whom the agent listens to.
    pub remote_uids: RemoteUids,
    /// When the agent leaves by itself after the last listened-to participant is gone.
    pub idle_timeout: IdleTimeout,
    pub llm: Llm,
    pub asr: Asr,
    pub tts: Tts,
    pub turn_detection: TurnDetection,
    pub interruption: Interruption,
    /// Said when the first listened-to participant joins.
    pub greeting: Option<Greeting>,
    /// Said when the LLM or TTS fails during a turn; the agent keeps running.
    pub failure_message: Option<String>,
    /// How many past messages (user and assistant) go to the LLM with each turn.
    pub max_history: u32,
    /// What the agent does when the user stays silent after its answer.
    #[serde(default)]
    pub silence_prompt: Option<SilencePrompt>,
    /// Where lifecycle and conversation events are posted.
    pub callbacks: Option<Callbacks>,
    /// The tools the LLM may call mid-turn.
    #[serde(default)]
    pub tools: Tools,
    /// Which API started the agent, and what that API keeps about it. Only the HTTP edge reads it.
    #[serde(default)]
    pub origin: Origin,
    /// The settings the API accepted but this server does not honour, kept with the agent so that
    /// its caller can see them (`GET /v1/agents/{id}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<SpecWarning>,
}

/// A setting accepted but not honoured: which field, and what happens instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecWarning {
    /// The field as the caller's API names it (`properties.tts.params.voice_name`).
    pub field: String,
    pub message: String,
}

impl AgentSpec {
    /// The default uid of an agent in its channel.
    pub const DEFAULT_AGENT_UID: &'static str = "agent";
    /// Default for [`AgentSpec::max_history`], as Agora's.
    pub const DEFAULT_MAX_HISTORY: u32 = 32;
    pub const MAX_HISTORY_RANGE: RangeInclusive<u32> = 0..=1024;
    /// The longest greeting, failure message or prompt text, in characters.
    pub const MAX_TEXT_CHARS: usize = 4096;
    /// The most uids an agent can be told to listen to.
    pub const MAX_REMOTE_UIDS: usize = 64;

    /// An agent named `name` in `channel` with every other field at its default: the embedded local
    /// models, listening to anyone, Agora's timings. Dialects start here and override what the
    /// caller sent.
    pub fn with_defaults(name: AgentName, channel: ChannelName) -> AgentSpec {
        AgentSpec {
            name,
            channel,
            agent_uid: Uid::new(Self::DEFAULT_AGENT_UID).expect("the default uid is valid"),
            remote_uids: RemoteUids::Any,
            idle_timeout: IdleTimeout::AfterSecs(IdleTimeout::DEFAULT_SECS),
            llm: Llm {
                provider: LlmProvider::Local { model: LlmProvider::DEFAULT_LOCAL_MODEL.to_owned() },
                system_messages: Llm::default_system_messages(),
                params: LlmParams::DEFAULT,
            },
            asr: Asr {
                provider: AsrProvider::Local { model: Asr::DEFAULT_LOCAL_MODEL },
                language: Asr::DEFAULT_LANGUAGE.to_owned(),
                fallback: Vec::new(),
            },
            tts: Tts {
                provider: TtsProvider::Local,
                voice: Tts::DEFAULT_LOCAL_VOICE.to_owned(),
                speed: Tts::DEFAULT_SPEED,
                fallback: Vec::new(),
            },
            turn_detection: TurnDetection::DEFAULT,
            interruption: Interruption::default_start_of_speech(),
            greeting: None,
            failure_message: None,
            max_history: Self::DEFAULT_MAX_HISTORY,
            silence_prompt: None,
            callbacks: None,
            tools: Tools::none(),
            origin: Origin::default(),
            warnings: Vec::new(),
        }
    }
}

/// The API an agent was started through. It decides the shape of the agent's webhooks; nothing
/// below the HTTP edge looks at it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// colloquy's own `/v1`.
    #[default]
    Native,
    /// Agora Conversational AI Engine v2.
    Agora,
    /// ZEGOCLOUD AI Agent.
    Zego,
    /// Alibaba Cloud AICallKit / IMS.
    Alibaba,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Native => "native",
            Dialect::Agora => "agora",
            Dialect::Zego => "zego",
            Dialect::Alibaba => "alibaba",
        }
    }
}

/// Where an agent came from: its dialect, and what that dialect keeps about it to answer queries
/// and shape webhooks (Agora's `labels`, ZEGO's room and user ids, Alibaba's `AIAgentId`, …).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    pub dialect: Dialect,
    /// A JSON object owned by the dialect; opaque to everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// The participants an agent listens to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteUids {
    /// Every participant who is not an agent.
    Any,
    /// Only these.
    Only(Vec<Uid>),
}

/// When an agent leaves by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleTimeout {
    /// Stay until told to leave.
    Never,
    /// Leave this many seconds after the last listened-to participant left (or after start, when
    /// none has joined yet).
    AfterSecs(u32),
}

impl IdleTimeout {
    /// Default: 30 s, as Agora's `idle_timeout`.
    pub const DEFAULT_SECS: u32 = 30;
    /// At most 72 h, Agora's hard session limit.
    pub const MAX_SECS: u32 = 259_200;

    /// Agora's convention: 0 means never.
    pub fn from_secs(secs: u32) -> IdleTimeout {
        if secs == 0 { IdleTimeout::Never } else { IdleTimeout::AfterSecs(secs) }
    }

    pub fn as_secs(self) -> u32 {
        match self {
            IdleTimeout::Never => 0,
            IdleTimeout::AfterSecs(secs) => secs,
        }
    }
}

/// An OpenAI-compatible HTTP endpoint (OpenAI, Azure OpenAI, Groq, vLLM, Ollama, llama.cpp's server,
/// DashScope's compatible mode, …).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteEndpoint {
    /// The base URL, e.g. `https://api.openai.com/v1`; the path of each API is appended to its
    /// path, and its query (Azure OpenAI's `api-version`) is kept on every request.
    pub url: String,
    pub api_key: Option<Secret>,
    /// The model name the server expects.
    pub model: String,
    /// Extra headers sent with each request.
    pub headers: Vec<(String, String)>,
    /// How long to wait for the first byte of an answer.
    pub timeout_ms: u32,
    /// Retries before the first byte of an answer; never after, so nothing is said twice.
    pub max_retries: u32,
    /// How the key is sent.
    #[serde(default)]
    pub key_header: KeyHeader,
}

/// How an endpoint's key is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyHeader {
    /// `Authorization: Bearer KEY` (OpenAI and most compatible servers).
    #[default]
    Bearer,
    /// `api-key: KEY` (Azure OpenAI).
    ApiKey,
}

impl RemoteEndpoint {
    pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;
    pub const TIMEOUT_RANGE_MS: RangeInclusive<u32> = 100..=120_000;
    pub const DEFAULT_MAX_RETRIES: u32 = 2;
    pub const MAX_RETRIES: u32 = 10;
}

/// The language model that writes the agent's answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Llm {
    pub provider: LlmProvider,
    /// Messages put before the conversation: usually one system prompt.
    pub system_messages: Vec<PromptMessage>,
    pub params: LlmParams,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmProvider {
    /// A GGUF model run in process. `model` is a file path or the name of a model in the model
    /// directory.
    Local {
        model: String,
    },
    OpenAiCompatible(RemoteEndpoint),
}

impl LlmProvider {
    /// The embedded default model.
    pub const DEFAULT_LOCAL_MODEL: &'static str = "SmolLM2-135M-Instruct";
}

/// One message of a prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptMessage {
    pub role: PromptRole,
    pub content: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptRole {
    System,
    User,
    Assistant,
}

impl Llm {
    /// The system prompt used when the caller gives none.
    pub const DEFAULT_SYSTEM_PROMPT: &'static str = "You are a helpful voice assistant. Answer in one or two short spoken \
         sentences, without lists, markup or emoji.";
    /// The most prompt messages accepted.
    pub const MAX_SYSTEM_MESSAGES: usize = 32;

    /// One system message with [`Llm::DEFAULT_SYSTEM_PROMPT`].
    pub fn default_system_messages() -> Vec<PromptMessage> {
        vec![PromptMessage { role: PromptRole::System, content: Self::DEFAULT_SYSTEM_PROMPT.to_owned() }]
    }
}

/// Sampling parameters sent with each LLM request.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlmParams {
    pub temperature: f32,
    pub top_p: f32,
    /// The longest answer, in tokens.
    pub max_tokens: u32,
}

impl LlmParams {
    pub const DEFAULT: LlmParams = LlmParams { temperature: 0.7, top_p: 1.0, max_tokens: 256 };
    pub const TEMPERATURE_RANGE: RangeInclusive<f32> = 0.0..=2.0;
    /// `top_p` must be in (0, 1].
    pub const TOP_P_RANGE: RangeInclusive<f32> = f32::MIN_POSITIVE..=1.0;
    pub const MAX_TOKENS_RANGE: RangeInclusive<u32> = 1..=8192;
}

/// Speech recognition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Asr {
    pub provider: AsrProvider,
    /// The language spoken, as a BCP-47 tag (`en`, `en-US`, `de`, …).
    pub language: String,
    /// Tried in order when the provider fails mid-call, from the next utterance on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<AsrProvider>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsrProvider {
    Local {
        model: LocalAsrModel,
    },
    OpenAiCompatible(RemoteEndpoint),
    /// A cloud vendor from the providers' registry (Deepgram, …).
    Vendor(VendorChoice),
}

/// The embedded Whisper models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LocalAsrModel {
    /// Whisper tiny, English only: fast. The default.
    #[serde(rename = "whisper-tiny.en")]
    WhisperTinyEn,
    /// Whisper base, multilingual: slower, better.
    #[serde(rename = "whisper-base")]
    WhisperBase,
}

impl LocalAsrModel {
    pub const ALL: [LocalAsrModel; 2] = [LocalAsrModel::WhisperTinyEn, LocalAsrModel::WhisperBase];

    pub fn as_str(self) -> &'static str {
        match self {
            LocalAsrModel::WhisperTinyEn => "whisper-tiny.en",
            LocalAsrModel::WhisperBase => "whisper-base",
        }
    }

    /// Whether the model understands `language` (a BCP-47 tag).
    pub fn understands(self, language: &str) -> bool {
        match self {
            LocalAsrModel::WhisperTinyEn => language == "en" || language.starts_with("en-"),
            LocalAsrModel::WhisperBase => true,
        }
    }
}

impl Asr {
    /// The most fallbacks a provider may list.
    pub const MAX_FALLBACKS: usize = 4;
    pub const DEFAULT_LANGUAGE: &'static str = "en";
    pub const DEFAULT_LOCAL_MODEL: LocalAsrModel = LocalAsrModel::WhisperTinyEn;
}

/// Speech synthesis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tts {
    pub provider: TtsProvider,
    /// The voice: a Piper voice name for the local provider, a voice id for a remote one.
    pub voice: String,
    /// Speaking rate, 1.0 is normal.
    pub speed: f32,
    /// Tried in order when the provider fails mid-call, from the next clause on (the failure
    /// message first, when there is one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<TtsFallback>,
}

/// A fallback synthesiser and the voice it speaks with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TtsFallback {
    pub provider: TtsProvider,
    pub voice: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TtsProvider {
    Local,
    OpenAiCompatible(RemoteEndpoint),
    /// A cloud vendor from the providers' registry (ElevenLabs, …); its voice is in its params.
    Vendor(VendorChoice),
}

impl Tts {
    pub const DEFAULT_LOCAL_VOICE: &'static str = "en_US-joe-medium";
    pub const DEFAULT_REMOTE_VOICE: &'static str = "alloy";
    pub const DEFAULT_SPEED: f32 = 1.0;
    pub const SPEED_RANGE: RangeInclusive<f32> = 0.5..=2.0;
}

/// When the user's speech starts and ends.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnDetection {
    /// The VAD speech probability above which a frame counts as speech.
    pub vad_threshold: f32,
    /// How long speech must last before it counts as the start of a turn.
    pub min_speech_ms: u32,
    /// Audio kept from before the start of speech, so the first syllable reaches ASR.
    pub prefix_padding_ms: u32,
    /// How long the user must be silent for their turn to end.
    pub silence_duration_ms: u32,
    /// The longest the agent waits, after the user went silent, for the final transcript before it
    /// answers with what it has. At least `silence_duration_ms`.
    pub max_wait_ms: u32,
}

impl TurnDetection {
    pub const DEFAULT: TurnDetection = TurnDetection {
        vad_threshold: 0.5,
        min_speech_ms: 100,
        prefix_padding_ms: 300,
        silence_duration_ms: 640,
        max_wait_ms: 3000,
    };
    /// The threshold must be strictly between 0 and 1; these are the inclusive bounds used.
    pub const VAD_THRESHOLD_RANGE: RangeInclusive<f32> = 0.01..=0.99;
    pub const MIN_SPEECH_RANGE_MS: RangeInclusive<u32> = 0..=2000;
    pub const PREFIX_PADDING_RANGE_MS: RangeInclusive<u32> = 0..=5000;
    pub const SILENCE_DURATION_RANGE_MS: RangeInclusive<u32> = 100..=10_000;
    pub const MAX_WAIT_RANGE_MS: RangeInclusive<u32> = 100..=60_000;
}

/// Whether and how the user can cut the agent off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interruption {
    pub enabled: bool,
    pub mode: InterruptionMode,
    /// How long the user must speak over the agent before it stops: long enough that a cough or an
    /// "mhm" does not cut it off.
    pub min_speech_ms: u32,
    /// The words that interrupt in [`InterruptionMode::Keywords`]; empty otherwise.
    pub keywords: Vec<String>,
    /// What happens to speech during the agent's turn when interruption is off.
    pub when_disabled: DisabledStrategy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterruptionMode {
    /// Any speech longer than `min_speech_ms` interrupts.
    StartOfSpeech,
    /// Only speech containing one of the keywords interrupts.
    Keywords,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabledStrategy {
    /// Speech during the agent's turn is added to the user's next turn.
    Append,
    /// Speech during the agent's turn is dropped.
    Ignore,
}

impl Interruption {
    pub const DEFAULT_MIN_SPEECH_MS: u32 = 400;
    pub const MIN_SPEECH_RANGE_MS: RangeInclusive<u32> = 0..=5000;
    pub const MAX_KEYWORDS: usize = 128;
    pub const MAX_KEYWORD_CHARS: usize = 64;

    pub fn default_start_of_speech() -> Interruption {
        Interruption {
            enabled: true,
            mode: InterruptionMode::StartOfSpeech,
            min_speech_ms: Self::DEFAULT_MIN_SPEECH_MS,
            keywords: Vec::new(),
            when_disabled: DisabledStrategy::Append,
        }
    }
}

/// What the agent says when the first listened-to participant joins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Greeting {
    pub text: String,
    /// Whether the user can cut the greeting off.
    pub interruptible: bool,
}

/// A prompt after the user has been silent for a while (Agora's `parameters.silence_config`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SilencePrompt {
    /// How long the user must stay silent, counted from the end of the agent's last turn.
    pub timeout_ms: u32,
    pub action: SilenceAction,
    /// The text spoken (`Speak`) or given to the LLM as the user's words (`Think`).
    pub content: String,
}

impl SilencePrompt {
    pub const TIMEOUT_RANGE_MS: RangeInclusive<u32> = 1_000..=600_000;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilenceAction {
    /// Say `content` as it is.
    Speak,
    /// Ask the LLM with `content`, and say its answer.
    Think,
}

/// Where an agent's events are posted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Callbacks {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// Signs each delivery (HMAC-SHA256) when present.
    pub secret: Option<Secret>,
}

/// The parts of a running agent's configuration that can change mid-call. `None` keeps the current
/// value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpecUpdate {
    pub system_messages: Option<Vec<PromptMessage>>,
    pub llm_params: Option<LlmParams>,
    pub voice: Option<String>,
    pub speed: Option<f32>,
    /// New interruption settings, from the next time the user speaks over the agent.
    pub interruption: Option<Interruption>,
    /// What the update set but cannot be honoured, added to the agent's warnings.
    pub warnings: Vec<SpecWarning>,
}

impl SpecUpdate {
    pub fn is_empty(&self) -> bool {
        *self == SpecUpdate::default()
    }

    /// Applies the update to `spec`.
    pub fn apply_to(&self, spec: &mut AgentSpec) {
        if let Some(messages) = &self.system_messages {
            spec.llm.system_messages = messages.clone();
        }
        if let Some(params) = self.llm_params {
            spec.llm.params = params;
        }
        if let Some(voice) = &self.voice {
            spec.tts.voice = voice.clone();
        }
        if let Some(speed) = self.speed {
            spec.tts.speed = speed;
        }
        if let Some(interruption) = &self.interruption {
            spec.interruption = interruption.clone();
        }
        for warning in &self.warnings {
            if !spec.warnings.contains(warning) {
                spec.warnings.push(warning.clone());
            }
        }
    }
}
