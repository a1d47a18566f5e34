//! `AIAgentConfig` (OpenAPI `AgentConfig`, app server `agent_config`) and the legacy
//! `AIAgentTemplateConfig` (`TemplateConfig`, `template_config`), read into an [`AgentSpec`].
//! Both arrive as JSON strings. Knobs this engine cannot honour are accepted with a warning, except
//! where ignoring them would change what the caller relies on (see `docs/dialects/alibaba.md`).

use std::collections::BTreeMap;

use colloquy_model::{
    AgentSpec, Asr, AsrProvider, DisabledStrategy, Greeting, IdleTimeout, Interruption, InterruptionMode,
    LocalAsrModel, PromptMessage, PromptRole, SilenceAction, SilencePrompt, Tts, TurnDetection,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Failure;

/// Vendor default of `MaxIdleTime`, seconds.
pub const DEFAULT_MAX_IDLE_SECS: u32 = 600;

/// `AIAgentConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentConfig {
    pub greeting: Option<String>,
    pub max_idle_time: Option<i64>,
    pub enable_push_to_talk: Option<bool>,
    pub turn_detection_config: Option<TurnDetectionConfig>,
    pub interrupt_config: Option<InterruptConfig>,
    pub asr_config: Option<AsrConfig>,
    pub llm_config: Option<LlmConfig>,
    pub tts_config: Option<TtsConfig>,
    pub auto_speech_config: Option<AutoSpeechConfig>,
    /// Everything else (`Volume`, `GracefulShutdown`, `AvatarConfig`, …): accepted, not applied.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TurnDetectionConfig {
    pub mode: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InterruptConfig {
    pub enable_voice_interrupt: Option<bool>,
    pub interrupt_words: Option<Vec<String>>,
    pub no_interrupt_mode: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsrConfig {
    pub asr_max_silence: Option<i64>,
    pub vad_duration: Option<i64>,
    pub vad_level: Option<i64>,
    pub asr_language_id: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LlmConfig {
    pub llm_system_prompt: Option<String>,
    pub llm_history: Option<Vec<HistoryMessage>>,
    pub llm_history_limit: Option<i64>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtsConfig {
    pub voice_id: Option<String>,
    pub speech_rate: Option<f64>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AutoSpeechConfig {
    pub user_idle: Option<UserIdle>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserIdle {
    pub wait_time: Option<i64>,
    pub messages: Option<Vec<IdleMessage>>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdleMessage {
    pub text: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The legacy `AIAgentTemplateConfig`: `{VoiceChat|AvatarChat3D|VisionChat: {flat fields}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplateConfig {
    pub voice_chat: Option<FlatTemplate>,
    #[serde(rename = "AvatarChat3D")]
    pub avatar_chat_3d: Option<Value>,
    pub vision_chat: Option<Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The flat knobs of a legacy template.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FlatTemplate {
    pub greeting: Option<String>,
    pub max_idle_time: Option<i64>,
    pub enable_push_to_talk: Option<bool>,
    pub enable_voice_interrupt: Option<bool>,
    pub asr_max_silence: Option<i64>,
    pub voice_id: Option<String>,
    pub llm_system_prompt: Option<String>,
    pub llm_history: Option<Vec<HistoryMessage>>,
    pub llm_history_limit: Option<i64>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl TemplateConfig {
    /// The `AgentConfig` this template means; refuses the avatar and vision templates.
    pub fn into_agent_config(self, field: &str) -> Result<AgentConfig, Failure> {
        if self.avatar_chat_3d.is_some() || self.vision_chat.is_some() {
            return Err(Failure::invalid(format!(
                "{field}: AvatarChat3D and VisionChat templates are not supported; this server runs voice agents only"
            )));
        }
        warn_other(field, &self.other);
        let Some(flat) = self.voice_chat else { return Ok(AgentConfig::default()) };
        warn_other(&format!("{field}.VoiceChat"), &flat.other);
        Ok(AgentConfig {
            greeting: flat.greeting,
            max_idle_time: flat.max_idle_time,
            enable_push_to_talk: flat.enable_push_to_talk,
            interrupt_config: flat
                .enable_voice_interrupt
                .map(|on| InterruptConfig { enable_voice_interrupt: Some(on), ..InterruptConfig::default() }),
            asr_config: flat.asr_max_silence.map(|ms| AsrConfig { asr_max_silence: Some(ms), ..AsrConfig::default() }),
            tts_config: flat.voice_id.map(|voice| TtsConfig { voice_id: Some(voice), ..TtsConfig::default() }),
            llm_config: (flat.llm_system_prompt.is_some()
                || flat.llm_history.is_some()
                || flat.llm_history_limit.is_some())
            .then(|| LlmConfig {
                llm_system_prompt: flat.llm_system_prompt,
                llm_history: flat.llm_history,
                llm_history_limit: flat.llm_history_limit,
                other: BTreeMap::new(),
            }),
            ..AgentConfig::default()
        })
    }
}

/// Parses a JSON-string parameter, naming the field (and the path inside it) on error.
pub fn parse_json_param<T: DeserializeOwned>(field: &str, text: &str) -> Result<T, Failure> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." { field.to_owned() } else { format!("{field}.{path}") };
        Failure::invalid(format!("{at}: {}; it must be a JSON object string", e.inner()))
    })
}

fn warn_other(field: &str, other: &BTreeMap<String, Value>) {
    for key in other.keys() {
        tracing::warn!(field = %format!("{field}.{key}"), "accepted but not supported by this engine; ignored");
    }
}

fn ignored(field: &str) {
    tracing::warn!(field, "accepted but not supported by this engine; ignored");
}

fn role(field: &str, role: &str) -> Result<Option<PromptRole>, Failure> {
    match role {
        "function" | "plugin" | "tool" => {
            ignored(field);
            Ok(None)
        }
        other => Ok(Some(colloquy_http::fields::prompt_role(field, other)?)),
    }
}

/// The messages of `LlmSystemPrompt` + `LlmHistory`, when either is set.
fn prompt_messages(field: &str, llm: &LlmConfig) -> Result<Option<Vec<PromptMessage>>, Failure> {
    if llm.llm_system_prompt.is_none() && llm.llm_history.is_none() {
        return Ok(None);
    }
    let mut messages = Vec::new();
    match &llm.llm_system_prompt {
        Some(prompt) if !prompt.trim().is_empty() => {
            if prompt.chars().count() > AgentSpec::MAX_TEXT_CHARS {
                return Err(Failure::invalid(format!(
                    "{field}.LlmSystemPrompt is longer than {} characters",
                    AgentSpec::MAX_TEXT_CHARS
                )));
            }
            messages.push(PromptMessage { role: PromptRole::System, content: prompt.clone() });
        }
        _ => messages.extend(colloquy_model::Llm::default_system_messages()),
    }
    for (i, message) in llm.llm_history.iter().flatten().enumerate() {
        let at = format!("{field}.LlmHistory[{i}]");
        let Some(role) = role(&format!("{at}.Role"), &message.role)? else { continue };
        if message.content.chars().count() > AgentSpec::MAX_TEXT_CHARS {
            return Err(Failure::invalid(format!(
                "{at}.Content is longer than {} characters",
                AgentSpec::MAX_TEXT_CHARS
            )));
        }
        messages.push(PromptMessage { role, content: message.content.clone() });
    }
    if messages.len() > colloquy_model::Llm::MAX_SYSTEM_MESSAGES {
        return Err(Failure::invalid(format!(
            "{field}.LlmHistory has too many messages; at most {} with the system prompt",
            colloquy_model::Llm::MAX_SYSTEM_MESSAGES
        )));
    }
    Ok(Some(messages))
}

fn language(field: &str, id: &str) -> Result<&'static str, Failure> {
    match id {
        "zh_mandarin" | "zh_en" => Ok("zh"),
        "en" => Ok("en"),
        "es" => Ok("es"),
        "jp" => Ok("ja"),
        other => Err(Failure::invalid(format!("{field} is {other:?}; it must be zh_mandarin, en, zh_en, es or jp"))),
    }
}

/// Applies `config` to a spec being built. `field` names the parameter (`AgentConfig`, `agent_config`).
pub fn apply(field: &str, config: AgentConfig, spec: &mut AgentSpec) -> Result<(), Failure> {
    warn_other(field, &config.other);
    if let Some(greeting) = config.greeting {
        spec.greeting = if greeting.trim().is_empty() {
            None
        } else if greeting.chars().count() > AgentSpec::MAX_TEXT_CHARS {
            return Err(Failure::invalid(format!(
                "{field}.Greeting is longer than {} characters",
                AgentSpec::MAX_TEXT_CHARS
            )));
        } else {
            Some(Greeting { text: greeting, interruptible: true })
        };
    }
    if let Some(secs) = config.max_idle_time {
        spec.idle_timeout = IdleTimeout::from_secs(colloquy_http::fields::u32_in_range(
            &format!("{field}.MaxIdleTime"),
            secs,
            0..=IdleTimeout::MAX_SECS,
        )?);
    }
    if config.enable_push_to_talk == Some(true) {
        return Err(Failure::invalid(format!(
            "{field}.EnablePushToTalk: push-to-talk is not supported by this engine; the agent would answer without waiting for the button"
        )));
    }
    if let Some(turn) = config.turn_detection_config {
        let at = format!("{field}.TurnDetectionConfig");
        warn_other(&at, &turn.other);
        match turn.mode.as_deref() {
            None | Some("Normal") => {}
            Some("Semantic") => {
                tracing::warn!(field = %format!("{at}.Mode"), "semantic turn detection is not supported; VAD turn detection is used")
            }
            Some(other) => {
                return Err(Failure::invalid(format!("{at}.Mode is {other:?}; it must be Normal or Semantic")));
            }
        }
    }
    if let Some(interrupt) = config.interrupt_config {
        let at = format!("{field}.InterruptConfig");
        warn_other(&at, &interrupt.other);
        if let Some(on) = interrupt.enable_voice_interrupt {
            spec.interruption.enabled = on;
        }
        if let Some(words) = interrupt.interrupt_words.filter(|w| !w.is_empty()) {
            if words.len() > Interruption::MAX_KEYWORDS {
                return Err(Failure::invalid(format!(
                    "{at}.InterruptWords has more than {} words",
                    Interruption::MAX_KEYWORDS
                )));
            }
            if let Some(bad) =
                words.iter().find(|w| w.trim().is_empty() || w.chars().count() > Interruption::MAX_KEYWORD_CHARS)
            {
                return Err(Failure::invalid(format!(
                    "{at}.InterruptWords has {bad:?}; each word must be 1 to {} characters",
                    Interruption::MAX_KEYWORD_CHARS
                )));
            }
            spec.interruption.mode = InterruptionMode::Keywords;
            spec.interruption.keywords = words;
        }
        match interrupt.no_interrupt_mode.as_deref() {
            None => {}
            Some("cache") => spec.interruption.when_disabled = DisabledStrategy::Append,
            Some("discard") => spec.interruption.when_disabled = DisabledStrategy::Ignore,
            Some(other) => {
                return Err(Failure::invalid(format!(
                    "{at}.NoInterruptMode is {other:?}; it must be cache or discard"
                )));
            }
        }
    }
    if let Some(asr) = config.asr_config {
        let at = format!("{field}.AsrConfig");
        warn_other(&at, &asr.other);
        if let Some(ms) = asr.asr_max_silence {
            let ms = colloquy_http::fields::u32_in_range(&format!("{at}.AsrMaxSilence"), ms, 200..=1200)?;
            spec.turn_detection.silence_duration_ms = ms;
            spec.turn_detection.max_wait_ms = spec.turn_detection.max_wait_ms.max(ms);
        }
        if let Some(ms) = asr.vad_duration {
            let ms = if ms == 0 {
                0
            } else {
                colloquy_http::fields::u32_in_range(&format!("{at}.VadDuration"), ms, 200..=2000)?
            };
            spec.interruption.min_speech_ms = ms;
        }
        if let Some(level) = asr.vad_level {
            let level = colloquy_http::fields::u32_in_range(&format!("{at}.VadLevel"), level, 0..=11)?;
            if level == 0 {
                tracing::warn!(field = %format!("{at}.VadLevel"), "VAD cannot be turned off here; the default threshold is kept");
            } else {
                // 1 (most sensitive) .. 11 (hardest to trigger) onto the VAD speech probability.
                spec.turn_detection.vad_threshold = 0.3 + 0.05 * level as f32;
            }
        }
        if let Some(id) = asr.asr_language_id {
            let lang = language(&format!("{at}.AsrLanguageId"), &id)?;
            spec.asr = Asr {
                provider: AsrProvider::Local {
                    model: if lang == "en" { Asr::DEFAULT_LOCAL_MODEL } else { LocalAsrModel::WhisperBase },
                },
                language: lang.to_owned(),
            };
        }
    }
    if let Some(llm) = config.llm_config {
        let at = format!("{field}.LlmConfig");
        warn_other(&at, &llm.other);
        if let Some(messages) = prompt_messages(&at, &llm)? {
            spec.llm.system_messages = messages;
        }
        if let Some(limit) = llm.llm_history_limit {
            spec.max_history = colloquy_http::fields::u32_in_range(
                &format!("{at}.LlmHistoryLimit"),
                limit,
                AgentSpec::MAX_HISTORY_RANGE,
            )?;
        }
    }
    if let Some(tts) = config.tts_config {
        let at = format!("{field}.TtsConfig");
        warn_other(&at, &tts.other);
        if tts.voice_id.is_some() {
            tracing::warn!(field = %format!("{at}.VoiceId"), "vendor voices cannot run here; the local voice is used");
        }
        if let Some(rate) = tts.speech_rate {
            let rate = rate as f32;
            if !rate.is_finite() || !Tts::SPEED_RANGE.contains(&rate) {
                return Err(Failure::invalid(format!("{at}.SpeechRate is {rate}; it must be between 0.5 and 2.0")));
            }
            spec.tts.speed = rate;
        }
    }
    if let Some(auto) = config.auto_speech_config {
        let at = format!("{field}.AutoSpeechConfig");
        warn_other(&at, &auto.other);
        if let Some(idle) = auto.user_idle {
            let at = format!("{at}.UserIdle");
            warn_other(&at, &idle.other);
            let text = idle.messages.unwrap_or_default().into_iter().map(|m| m.text).find(|t| !t.trim().is_empty());
            if let Some(text) = text {
                let wait = idle.wait_time.unwrap_or(5000);
                let wait = colloquy_http::fields::u32_in_range(&format!("{at}.WaitTime"), wait, 5000..=600_000)?;
                let wait = wait.clamp(*SilencePrompt::TIMEOUT_RANGE_MS.start(), *SilencePrompt::TIMEOUT_RANGE_MS.end());
                spec.silence_prompt =
                    Some(SilencePrompt { timeout_ms: wait, action: SilenceAction::Speak, content: text });
            }
        }
    }
    // Keep the turn detection consistent whatever was set.
    let TurnDetection { silence_duration_ms, .. } = spec.turn_detection;
    spec.turn_detection.max_wait_ms = spec.turn_detection.max_wait_ms.max(silence_duration_ms);
    Ok(())
}

/// What `UpdateAIAgentInstance` can change on a running agent: the prompt (with its history) and
/// the speech rate. Anything else that would change behaviour is refused (see the docs).
pub fn update(field: &str, config: AgentConfig) -> Result<colloquy_model::SpecUpdate, Failure> {
    let mut update = colloquy_model::SpecUpdate::default();
    warn_other(field, &config.other);
    if config.greeting.is_some() {
        tracing::warn!(field = %format!("{field}.Greeting"), "the greeting was already said; ignored");
    }
    if let Some(llm) = config.llm_config {
        let at = format!("{field}.LlmConfig");
        warn_other(&at, &llm.other);
        update.system_messages = prompt_messages(&at, &llm)?;
    }
    if let Some(tts) = config.tts_config {
        let at = format!("{field}.TtsConfig");
        warn_other(&at, &tts.other);
        if tts.voice_id.is_some() {
            tracing::warn!(field = %format!("{at}.VoiceId"), "vendor voices cannot run here; the local voice is kept");
        }
        if let Some(rate) = tts.speech_rate {
            let rate = rate as f32;
            if !rate.is_finite() || !Tts::SPEED_RANGE.contains(&rate) {
                return Err(Failure::invalid(format!("{at}.SpeechRate is {rate}; it must be between 0.5 and 2.0")));
            }
            update.speed = Some(rate);
        }
    }
    let unchangeable = [
        ("MaxIdleTime", config.max_idle_time.is_some()),
        ("EnablePushToTalk", config.enable_push_to_talk == Some(true)),
        ("TurnDetectionConfig", config.turn_detection_config.is_some()),
        ("InterruptConfig", config.interrupt_config.is_some()),
        ("AsrConfig", config.asr_config.is_some()),
        ("AutoSpeechConfig", config.auto_speech_config.is_some()),
    ];
    if let Some((name, _)) = unchangeable.iter().find(|(_, set)| *set) {
        return Err(Failure::invalid(format!(
            "{field}.{name} cannot be changed on a running instance by this server; only LlmConfig.LlmSystemPrompt/LlmHistory and TtsConfig.SpeechRate can"
        )));
    }
    Ok(update)
}
