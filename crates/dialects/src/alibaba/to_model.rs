//! Alibaba's requests into the model: `AgentConfig` / `agent_config` and the legacy
//! `TemplateConfig` / `template_config` (see `wire.rs`) onto an [`AgentSpec`] or a [`SpecUpdate`],
//! the id parameters, and the [`Launch`] both APIs start an instance with. Knobs this engine cannot
//! honour are accepted with a warning, except where ignoring them would change what the caller
//! relies on (see `docs/dialects/alibaba.md`).

use std::collections::BTreeMap;

use colloquy_model::{
    AgentName, AgentRecord, AgentSpec, Asr, AsrProvider, ChannelName, Dialect, DisabledStrategy, Greeting, IdleTimeout,
    Interruption, InterruptionMode, LocalAsrModel, Origin, PromptMessage, PromptRole, RemoteUids, SilenceAction,
    SilencePrompt, SpecUpdate, SpeechKind, Tts, TurnDetection, Uid,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::errors::Failure;
use super::random_id;
use super::wire::{
    AgentConfig, AsrConfig, AutoSpeechConfig, InterruptConfig, LlmConfig, OriginData, TemplateConfig, TtsConfig,
    TurnDetectionConfig,
};
use colloquy_http::AppState;
use colloquy_http::apps::App;
use colloquy_http::fields;
use colloquy_http::fields::Warnings;
use colloquy_http::vendors::{Chosen, VendorFields, VendorScope};

/// Vendor default of `MaxIdleTime`, seconds.
pub(crate) const DEFAULT_MAX_IDLE_SECS: u32 = 600;

/// The `AgentConfig` a legacy template means; refuses the avatar and vision templates.
fn from_template(field: &str, template: TemplateConfig) -> Result<AgentConfig, Failure> {
    let mut noticed = Warnings::default();
    let w = &mut noticed;
    if template.avatar_chat_3d.is_some() || template.vision_chat.is_some() {
        return Err(Failure::invalid(format!(
            "{field}: AvatarChat3D and VisionChat templates are not supported; this server runs voice agents only"
        )));
    }
    warn_other(w, field, &template.other);
    let Some(flat) = template.voice_chat else { return Ok(AgentConfig { noticed, ..AgentConfig::default() }) };
    warn_other(w, &format!("{field}.VoiceChat"), &flat.other);
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
        noticed,
        ..AgentConfig::default()
    })
}

/// Parses a JSON-string parameter, naming the field (and the path inside it) on error.
pub(crate) fn parse_json_param<T: DeserializeOwned>(field: &str, text: &str) -> Result<T, Failure> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." { field.to_owned() } else { format!("{field}.{path}") };
        Failure::invalid(format!("{at}: {}; it must be a JSON object string", e.inner()))
    })
}

fn warn_other(w: &mut Warnings, field: &str, other: &BTreeMap<String, Value>) {
    for key in other.keys() {
        w.ignored(format!("{field}.{key}"), "accepted but not supported by this engine");
    }
}

fn role(field: &str, role: &str, w: &mut Warnings) -> Result<Option<PromptRole>, Failure> {
    match role {
        "function" | "plugin" | "tool" => {
            w.ignored(field, "accepted but not supported by this engine");
            Ok(None)
        }
        other => Ok(Some(fields::prompt_role(field, other)?)),
    }
}

/// The messages of `LlmSystemPrompt` + `LlmHistory`, when either is set.
fn prompt_messages(field: &str, llm: &LlmConfig, w: &mut Warnings) -> Result<Option<Vec<PromptMessage>>, Failure> {
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
        let Some(role) = role(&format!("{at}.Role"), &message.role, w)? else { continue };
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

/// The prompt of a running instance after an update: a non-blank `LlmSystemPrompt` replaces its
/// system prompt and a non-empty `LlmHistory` its initial history; an absent or empty one changes
/// nothing (Alibaba's SDK sends every list, so each update carries `LlmHistory: []`), and the
/// prompt is never dropped for the built-in one.
fn updated_prompt(
    field: &str,
    llm: &LlmConfig,
    current: &AgentSpec,
    w: &mut Warnings,
) -> Result<Option<Vec<PromptMessage>>, Failure> {
    let prompt = llm.llm_system_prompt.as_ref().filter(|p| !p.trim().is_empty());
    let history = llm.llm_history.as_ref().filter(|h| !h.is_empty());
    if prompt.is_none() && history.is_none() {
        return Ok(None);
    }
    let given = LlmConfig { llm_system_prompt: prompt.cloned(), llm_history: history.cloned(), ..LlmConfig::default() };
    let Some(new) = prompt_messages(field, &given, w)? else { return Ok(None) };
    let (system, initial): (Vec<PromptMessage>, Vec<PromptMessage>) =
        current.llm.system_messages.iter().cloned().partition(|m| m.role == PromptRole::System);
    let mut messages =
        if prompt.is_some() { new.iter().filter(|m| m.role == PromptRole::System).cloned().collect() } else { system };
    if history.is_some() {
        messages.extend(new.into_iter().skip_while(|m| m.role == PromptRole::System));
    } else {
        messages.extend(initial);
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
pub(crate) fn apply(
    field: &str,
    mut config: AgentConfig,
    spec: &mut AgentSpec,
    scope: VendorScope<'_>,
) -> Result<(), Failure> {
    let mut noticed = std::mem::take(&mut config.noticed);
    let w = &mut noticed;
    warn_other(w, field, &config.other);
    if let Some(text) = config.greeting {
        spec.greeting = greeting(field, text)?;
    }
    if let Some(secs) = config.max_idle_time {
        let secs = fields::u32_in_range(&format!("{field}.MaxIdleTime"), secs, 0..=IdleTimeout::MAX_SECS)?;
        spec.idle_timeout = IdleTimeout::from_secs(secs);
    }
    if config.enable_push_to_talk == Some(true) {
        return Err(Failure::invalid(format!(
            "{field}.EnablePushToTalk: push-to-talk is not supported by this engine; the agent would answer without waiting for the button"
        )));
    }
    if let Some(turn) = config.turn_detection_config {
        turn_detection(&format!("{field}.TurnDetectionConfig"), turn, w)?;
    }
    if let Some(interrupt) = config.interrupt_config {
        interruption(&format!("{field}.InterruptConfig"), interrupt, &mut spec.interruption, w)?;
    }
    if let Some(asr) = config.asr_config {
        speech_recognition(&format!("{field}.AsrConfig"), asr, spec, w)?;
    }
    if let Some(llm) = config.llm_config {
        language_model(&format!("{field}.LlmConfig"), llm, spec, w)?;
    }
    if let Some(tts) = config.tts_config {
        speech_synthesis(&format!("{field}.TtsConfig"), tts, &mut spec.tts, scope, w)?;
    }
    if let Some(auto) = config.auto_speech_config {
        auto_speech(&format!("{field}.AutoSpeechConfig"), auto, &mut spec.silence_prompt, w)?;
    }
    // Keep the turn detection consistent whatever was set.
    let TurnDetection { silence_duration_ms, .. } = spec.turn_detection;
    spec.turn_detection.max_wait_ms = spec.turn_detection.max_wait_ms.max(silence_duration_ms);
    spec.warnings.extend(noticed.into_vec());
    Ok(())
}

/// `Greeting`: none when blank.
fn greeting(field: &str, text: String) -> Result<Option<Greeting>, Failure> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    if text.chars().count() > AgentSpec::MAX_TEXT_CHARS {
        return Err(Failure::invalid(format!(
            "{field}.Greeting is longer than {} characters",
            AgentSpec::MAX_TEXT_CHARS
        )));
    }
    Ok(Some(Greeting { text, interruptible: true }))
}

/// `TurnDetectionConfig` (at `at`): only VAD turn detection runs here.
fn turn_detection(at: &str, turn: TurnDetectionConfig, w: &mut Warnings) -> Result<(), Failure> {
    warn_other(w, at, &turn.other);
    match turn.mode.as_deref() {
        None | Some("Normal") => Ok(()),
        Some("Semantic") => {
            w.ignored(format!("{at}.Mode"), "semantic turn detection is not supported; VAD turn detection is used");
            Ok(())
        }
        Some(other) => Err(Failure::invalid(format!("{at}.Mode is {other:?}; it must be Normal or Semantic"))),
    }
}

/// `InterruptConfig` (at `at`): voice interruption, its keywords and what an uninterruptible agent
/// does with what it hears.
fn interruption(
    at: &str,
    interrupt: InterruptConfig,
    spec: &mut Interruption,
    w: &mut Warnings,
) -> Result<(), Failure> {
    warn_other(w, at, &interrupt.other);
    if let Some(on) = interrupt.enable_voice_interrupt {
        spec.enabled = on;
    }
    if let Some(words) = interrupt.interrupt_words.filter(|w| !w.is_empty()) {
        spec.keywords = interrupt_words(at, words)?;
        spec.mode = InterruptionMode::Keywords;
    }
    match interrupt.no_interrupt_mode.as_deref() {
        None => {}
        Some("cache") => spec.when_disabled = DisabledStrategy::Append,
        Some("discard") => spec.when_disabled = DisabledStrategy::Ignore,
        Some(other) => {
            return Err(Failure::invalid(format!("{at}.NoInterruptMode is {other:?}; it must be cache or discard")));
        }
    }
    Ok(())
}

/// `InterruptWords`: at most [`Interruption::MAX_KEYWORDS`], each 1 to
/// [`Interruption::MAX_KEYWORD_CHARS`] characters.
fn interrupt_words(at: &str, words: Vec<String>) -> Result<Vec<String>, Failure> {
    if words.len() > Interruption::MAX_KEYWORDS {
        return Err(Failure::invalid(format!(
            "{at}.InterruptWords has more than {} words",
            Interruption::MAX_KEYWORDS
        )));
    }
    if let Some(bad) = words.iter().find(|w| w.trim().is_empty() || w.chars().count() > Interruption::MAX_KEYWORD_CHARS)
    {
        return Err(Failure::invalid(format!(
            "{at}.InterruptWords has {bad:?}; each word must be 1 to {} characters",
            Interruption::MAX_KEYWORD_CHARS
        )));
    }
    Ok(words)
}

/// `AsrConfig` (at `at`): end-of-turn silence, the speech that interrupts, VAD sensitivity and the
/// language.
fn speech_recognition(at: &str, asr: AsrConfig, spec: &mut AgentSpec, w: &mut Warnings) -> Result<(), Failure> {
    warn_other(w, at, &asr.other);
    if let Some(ms) = asr.asr_max_silence {
        let ms = fields::u32_in_range(&format!("{at}.AsrMaxSilence"), ms, 200..=1200)?;
        spec.turn_detection.silence_duration_ms = ms;
        spec.turn_detection.max_wait_ms = spec.turn_detection.max_wait_ms.max(ms);
    }
    if let Some(ms) = asr.vad_duration {
        let ms = if ms == 0 { 0 } else { fields::u32_in_range(&format!("{at}.VadDuration"), ms, 200..=2000)? };
        spec.interruption.min_speech_ms = ms;
    }
    if let Some(level) = asr.vad_level {
        let level = fields::u32_in_range(&format!("{at}.VadLevel"), level, 0..=11)?;
        if level == 0 {
            w.ignored(format!("{at}.VadLevel"), "VAD cannot be turned off here; the default threshold is kept");
        } else {
            // 1 (most sensitive) .. 11 (hardest to trigger) onto the VAD speech probability.
            spec.turn_detection.vad_threshold = 0.3 + 0.05 * level as f32;
        }
    }
    if let Some(id) = asr.asr_language_id {
        let lang = language(&format!("{at}.AsrLanguageId"), &id)?;
        spec.asr.provider = AsrProvider::Local {
            model: if lang == "en" { Asr::DEFAULT_LOCAL_MODEL } else { LocalAsrModel::WhisperBase },
        };
        spec.asr.language = lang.to_owned();
    }
    Ok(())
}

/// `LlmConfig` (at `at`): the prompt with its history, and how much history is kept.
fn language_model(at: &str, llm: LlmConfig, spec: &mut AgentSpec, w: &mut Warnings) -> Result<(), Failure> {
    warn_other(w, at, &llm.other);
    if let Some(messages) = prompt_messages(at, &llm, w)? {
        spec.llm.system_messages = messages;
    }
    if let Some(limit) = llm.llm_history_limit {
        spec.max_history = fields::u32_in_range(&format!("{at}.LlmHistoryLimit"), limit, AgentSpec::MAX_HISTORY_RANGE)?;
    }
    Ok(())
}

/// `TtsConfig` (at `at`): the speech rate, and the voice. An Alibaba voice (`VoiceId`) is spoken by
/// CosyVoice when the app keeps a DashScope key (`vendor_keys.cosyvoice`); otherwise it is refused,
/// or replaced by the embedded voice when the app allows substitution.
fn speech_synthesis(
    at: &str,
    tts: TtsConfig,
    spec: &mut Tts,
    scope: VendorScope<'_>,
    w: &mut Warnings,
) -> Result<(), Failure> {
    warn_other(w, at, &tts.other);
    if let Some(voice) = &tts.voice_id {
        let field = format!("{at}.VoiceId");
        // The model names the vendor: MiniMax's `speech-*`, else CosyVoice (AICallKit's voices).
        let model = tts.model_id.as_deref();
        let (vendor, voice_param) = match model {
            Some(model) if model.starts_with("speech-") => ("minimax", "voice_id"),
            _ => ("cosyvoice", "voice"),
        };
        if scope.keys.is_some_and(|keys| keys.contains_key(vendor)) {
            let mut params = serde_json::Map::from_iter([(voice_param.to_owned(), Value::String(voice.clone()))]);
            if let Some(model) = model {
                params.insert("model".to_owned(), Value::String(model.to_owned()));
            }
            let at = VendorFields { vendor: &field, params: &format!("{at}.ModelId") };
            if let Chosen::Vendor(choice) = scope.choose(at, SpeechKind::Tts, vendor, params, &[], w)? {
                spec.voice = voice.clone();
                spec.provider = colloquy_model::TtsProvider::Vendor(choice);
            }
        } else {
            let shown = match model {
                Some(model) => format!("Alibaba voice {voice} of model {model} (needs vendor_keys.{vendor})"),
                None => format!("Alibaba voice {voice} (needs vendor_keys.{vendor})"),
            };
            scope.unsupported(&field, SpeechKind::Tts, &shown, &[], w)?;
        }
    } else if tts.model_id.is_some() {
        w.ignored(format!("{at}.ModelId"), "a model without a VoiceId: the local voice speaks");
    }
    if let Some(rate) = tts.speech_rate {
        spec.speed = speech_rate(at, rate)?;
    }
    Ok(())
}

/// `TtsConfig.SpeechRate`, within [`Tts::SPEED_RANGE`].
fn speech_rate(at: &str, rate: f64) -> Result<f32, Failure> {
    let rate = rate as f32;
    if !rate.is_finite() || !Tts::SPEED_RANGE.contains(&rate) {
        return Err(Failure::invalid(format!("{at}.SpeechRate is {rate}; it must be between 0.5 and 2.0")));
    }
    Ok(rate)
}

/// `AutoSpeechConfig` (at `at`): `UserIdle`'s first message, said after `WaitTime` of silence.
fn auto_speech(
    at: &str,
    auto: AutoSpeechConfig,
    prompt: &mut Option<SilencePrompt>,
    w: &mut Warnings,
) -> Result<(), Failure> {
    warn_other(w, at, &auto.other);
    let Some(idle) = auto.user_idle else { return Ok(()) };
    let at = format!("{at}.UserIdle");
    warn_other(w, &at, &idle.other);
    let text = idle.messages.unwrap_or_default().into_iter().map(|m| m.text).find(|t| !t.trim().is_empty());
    if let Some(text) = text {
        let wait = idle.wait_time.unwrap_or(5000);
        let wait = fields::u32_in_range(&format!("{at}.WaitTime"), wait, 5000..=600_000)?;
        let wait = wait.clamp(*SilencePrompt::TIMEOUT_RANGE_MS.start(), *SilencePrompt::TIMEOUT_RANGE_MS.end());
        *prompt = Some(SilencePrompt { timeout_ms: wait, action: SilenceAction::Speak, content: text });
    }
    Ok(())
}

/// What `UpdateAIAgentInstance` can change on a running agent: the prompt (with its history) and
/// the speech rate. Anything else that would change behaviour is refused (see the docs).
pub(crate) fn update(field: &str, mut config: AgentConfig, current: &AgentSpec) -> Result<SpecUpdate, Failure> {
    let mut update = SpecUpdate::default();
    let mut noticed = std::mem::take(&mut config.noticed);
    let w = &mut noticed;
    warn_other(w, field, &config.other);
    if config.greeting.is_some() {
        w.ignored(format!("{field}.Greeting"), "the greeting was already said; ignored");
    }
    if let Some(llm) = config.llm_config {
        let at = format!("{field}.LlmConfig");
        warn_other(w, &at, &llm.other);
        update.system_messages = updated_prompt(&at, &llm, current, w)?;
    }
    if let Some(tts) = config.tts_config {
        let at = format!("{field}.TtsConfig");
        warn_other(w, &at, &tts.other);
        if tts.voice_id.is_some() {
            w.ignored(format!("{at}.VoiceId"), "vendor voices cannot run here; the local voice is kept");
        }
        if let Some(rate) = tts.speech_rate {
            update.speed = Some(speech_rate(&at, rate)?);
        }
    }
    let unchangeable = [
        ("MaxIdleTime", config.max_idle_time.is_some()),
        ("EnablePushToTalk", config.enable_push_to_talk == Some(true)),
        ("TurnDetectionConfig", config.turn_detection_config.is_some()),
        ("AsrConfig", config.asr_config.is_some()),
        ("AutoSpeechConfig", config.auto_speech_config.is_some()),
    ];
    if let Some((name, _)) = unchangeable.iter().find(|(_, set)| *set) {
        return Err(Failure::invalid(format!(
            "{field}.{name} cannot be changed on a running instance by this server; only LlmConfig.LlmSystemPrompt/LlmHistory, TtsConfig.SpeechRate and InterruptConfig can"
        )));
    }
    // The AICallKit clients' voice-interrupt switch (and the interrupt words): from the next time
    // the user speaks over the agent.
    if let Some(interrupt) = config.interrupt_config {
        let mut interruption = current.interruption.clone();
        self::interruption(&format!("{field}.InterruptConfig"), interrupt, &mut interruption, w)?;
        if interruption != current.interruption {
            update.interruption = Some(interruption);
        }
    }
    update.warnings = noticed.into_vec();
    Ok(update)
}

/// Checks a uid-like parameter.
pub(crate) fn uid_param(field: &str, value: &str) -> Result<Uid, Failure> {
    Ok(fields::name(field, value.to_owned(), Uid::new)?)
}

/// Checks a channel parameter.
pub(crate) fn channel_param(field: &str, value: &str) -> Result<ChannelName, Failure> {
    Ok(fields::name(field, value.to_owned(), ChannelName::new)?)
}

/// Reads `AgentConfig` and/or the legacy `TemplateConfig` (JSON strings) into one config.
pub(crate) fn read_configs(
    agent_field: &str,
    agent_config: Option<&str>,
    template_field: &str,
    template_config: Option<&str>,
) -> Result<AgentConfig, Failure> {
    let agent_config = agent_config.filter(|s| !s.trim().is_empty());
    let template_config = template_config.filter(|s| !s.trim().is_empty());
    match (agent_config, template_config) {
        (Some(text), template) => {
            let mut config: AgentConfig = parse_json_param(agent_field, text)?;
            if template.is_some() {
                config.noticed.ignored(
                    template_field,
                    format!("{agent_field} takes precedence over the deprecated {template_field}"),
                );
            }
            Ok(config)
        }
        (None, Some(text)) => from_template(template_field, parse_json_param(template_field, text)?),
        (None, None) => Ok(AgentConfig::default()),
    }
}

/// An instance to start.
#[derive(Debug)]
pub(crate) struct Launch {
    pub(crate) channel: ChannelName,
    pub(crate) agent_uid: Uid,
    /// The user the agent listens to; anyone when `None`.
    pub(crate) user: Option<Uid>,
    pub(crate) config: AgentConfig,
    /// The parameter the config came in, for error messages.
    pub(crate) config_field: &'static str,
    pub(crate) origin: OriginData,
}

/// Starts an instance for `app`; answers once it runs.
pub(crate) async fn launch(state: &AppState, app: &App, launch: Launch) -> Result<AgentRecord, Failure> {
    let name = AgentName::new(format!("ali-{}", random_id())).map_err(|e| Failure::invalid(e.0))?;
    let mut spec = AgentSpec::with_defaults(name, launch.channel);
    spec.agent_uid = launch.agent_uid;
    spec.remote_uids = match launch.user {
        Some(user) => RemoteUids::Only(vec![user]),
        None => RemoteUids::Any,
    };
    spec.idle_timeout = IdleTimeout::from_secs(DEFAULT_MAX_IDLE_SECS);
    let ai_agent_id = &launch.origin.ai_agent_id;
    let configured = app.configured_agent(ai_agent_id).map_err(|_| Failure::agent_not_found(ai_agent_id))?;
    if let Some(agent) = configured {
        agent.profile.apply_to(&mut spec);
    }
    apply(launch.config_field, launch.config, &mut spec, state.vendor_scope(Some(app)))?;
    spec.callbacks = app.callbacks(configured);
    spec.origin = Origin {
        dialect: Dialect::Alibaba,
        data: Some(serde_json::to_string(&launch.origin).expect("origin data serializes")),
    };
    Ok(state.supervisor().start(app.id.clone(), spec).await?)
}
