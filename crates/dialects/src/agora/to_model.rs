//! Agora requests into the model, checking every value. Properties this server cannot honour are
//! either accepted with a `tracing::warn!` (where ignoring them is harmless) or refused with
//! `InvalidFieldValue` (where the caller relies on them); `docs/dialects/agora.md` lists which.

use std::collections::BTreeMap;

use colloquy_model as model;
use colloquy_model::{AgentName, AgentSpec, ChannelName, IdleTimeout, Uid};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wire;
use colloquy_http::error::{ApiError, ErrorCode};
use colloquy_http::fields::{EndpointFields, finite, name, prompt_length, prompt_role, short_text, text, u32_in_range};

type Checked<T> = Result<T, ApiError>;

/// The longest `speak` text, in bytes (Agora's limit).
pub const MAX_SPEAK_BYTES: usize = 512;
/// The OpenAI path Agora's `llm.url` ends with; this server appends it to the base URL itself.
const CHAT_COMPLETIONS: &str = "/chat/completions";

/// What the dialect keeps in [`model::Origin::data`] to echo later.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OriginData {
    /// `properties.labels`, echoed in every webhook's `payload.labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, Value>,
    /// `properties.enable_string_uid`.
    #[serde(default)]
    pub enable_string_uid: bool,
}

impl OriginData {
    /// Reads an agent's origin data back; an agent of another dialect has none.
    pub fn of(spec: &AgentSpec) -> OriginData {
        spec.origin.data.as_deref().and_then(|data| serde_json::from_str(data).ok()).unwrap_or_default()
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(field, message)
}

fn unsupported(field: &str, why: &str) -> ApiError {
    invalid(field, format!("{field} is not supported by this server: {why}"))
}

fn ignored(field: &str, why: &str) {
    tracing::warn!(field, "Agora join: {field} is accepted but ignored: {why}");
}

fn f32_field(field: &str, value: f64, range: std::ops::RangeInclusive<f32>) -> Checked<f32> {
    finite(field, value as f32, range)
}

/// `{{var}}` replaced by each template variable.
fn substitute(text: String, vars: &BTreeMap<String, String>) -> String {
    vars.iter().fold(text, |text, (key, value)| text.replace(&format!("{{{{{key}}}}}"), value))
}

/// A uid given as a string or a number.
fn uid_text(field: &str, value: &Value) -> Checked<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        _ => Err(invalid(field, format!("{field} must be a string such as \"1001\""))),
    }
}

fn check_uid(field: &str, uid: String, string_uids: bool) -> Checked<Uid> {
    if !string_uids && uid.parse::<u32>().is_err() {
        return Err(invalid(
            field,
            format!("{field} is {uid:?}; without enable_string_uid it must be a number between 0 and 4294967295"),
        ));
    }
    name(field, uid, Uid::new)
}

/// A random numeric uid for `agent_rtc_uid: "0"`.
fn random_uid() -> Uid {
    let n: u32 = rand::random_range(100_000..=999_999_999);
    Uid::new(n.to_string()).expect("a number is a valid uid")
}

fn prompt_messages(
    field: &str,
    messages: Vec<wire::Message>,
    vars: &BTreeMap<String, String>,
) -> Checked<Vec<model::PromptMessage>> {
    prompt_length(field, messages.len())?;
    messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            let role = prompt_role(&format!("{field}[{i}].role"), &message.role)?;
            Ok(model::PromptMessage {
                role,
                content: text(&format!("{field}[{i}].content"), substitute(message.content, vars))?,
            })
        })
        .collect()
}

/// `llm.params`: the sampling parameters this server uses, and the model name. Starts from the
/// defaults, as Agora's `params` replaces the whole object.
fn llm_params(field: &str, params: &BTreeMap<String, Value>) -> Checked<model::LlmParams> {
    let mut out = model::LlmParams::DEFAULT;
    for (key, value) in params {
        let path = format!("{field}.{key}");
        match key.as_str() {
            "temperature" => {
                let v = value.as_f64().ok_or_else(|| invalid(&path, format!("{path} must be a number")))?;
                out.temperature = f32_field(&path, v, model::LlmParams::TEMPERATURE_RANGE)?;
            }
            "top_p" => {
                let v = value.as_f64().ok_or_else(|| invalid(&path, format!("{path} must be a number")))?;
                out.top_p = f32_field(&path, v, model::LlmParams::TOP_P_RANGE)
                    .map_err(|_| invalid(&path, format!("{path} must be greater than 0 and at most 1")))?;
            }
            "max_tokens" | "max_completion_tokens" => {
                let v = value.as_i64().ok_or_else(|| invalid(&path, format!("{path} must be an integer")))?;
                out.max_tokens = u32_in_range(&path, v, model::LlmParams::MAX_TOKENS_RANGE)?;
            }
            "model" | "stream" => {}
            _ => {
                tracing::warn!(field = %path, "Agora: {path} is not passed to the LLM; only model, temperature, top_p and max_tokens are")
            }
        }
    }
    Ok(out)
}

fn model_name(params: Option<&BTreeMap<String, Value>>) -> Checked<Option<String>> {
    match params.and_then(|p| p.get("model")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(m)) => Ok(Some(short_text("llm.params.model", m.clone(), 256)?)),
        Some(_) => Err(invalid("llm.params.model", "llm.params.model must be a string")),
    }
}

/// `properties.llm` into the model's LLM, greeting, failure message and history length.
fn llm(spec: &mut AgentSpec, llm: wire::Llm) -> Checked<BTreeMap<String, String>> {
    let vars = llm.template_variables.clone().unwrap_or_default();
    if let Some(url) = &llm.greeting_audio_url
        && !url.is_empty()
    {
        return Err(unsupported("llm.greeting_audio_url", "greetings are synthesised from llm.greeting_message"));
    }
    if llm.mcp_servers.as_ref().is_some_and(|servers| !servers.is_empty()) {
        return Err(unsupported("llm.mcp_servers", "the agent cannot call tools"));
    }
    if let Some(style) = llm.style.as_deref()
        && style != "openai"
    {
        return Err(unsupported("llm.style", "only the OpenAI chat-completions style (\"openai\") is spoken"));
    }
    if let Some(modalities) = &llm.input_modalities
        && modalities.iter().any(|m| m != "text")
    {
        ignored("llm.input_modalities", "the LLM receives text only");
    }
    if let Some(modalities) = &llm.output_modalities
        && !modalities.iter().any(|m| m == "text")
    {
        return Err(unsupported("llm.output_modalities", "the LLM must answer in text, which is synthesised"));
    }
    let vendor = llm.vendor.as_deref().unwrap_or("openai");
    let is_local = vendor == "local" || llm.url.as_deref().is_none_or(|url| url.starts_with("local://"));
    let model = model_name(llm.params.as_ref())?;
    spec.llm.provider = if is_local {
        let from_url = llm.url.as_deref().and_then(|url| url.strip_prefix("local://")).filter(|m| !m.is_empty());
        let model =
            from_url.map(str::to_owned).or(model).unwrap_or_else(|| model::LlmProvider::DEFAULT_LOCAL_MODEL.to_owned());
        model::LlmProvider::Local { model: short_text("llm.params.model", model, 4096)? }
    } else {
        match vendor {
            "openai" | "azure" | "xai" => {}
            "custom" => ignored("llm.vendor", "\"custom\" requests carry no turn_id or timestamp here"),
            other => {
                return Err(invalid(
                    "llm.vendor",
                    format!("llm.vendor is {other:?}; expected openai, azure, xai, custom or local"),
                ));
            }
        }
        let url = llm.url.clone().unwrap_or_default();
        if url.contains('?') {
            return Err(unsupported("llm.url", "a query string cannot be kept; give the URL without one"));
        }
        let base = url.trim_end_matches('/').strip_suffix(CHAT_COMPLETIONS).ok_or_else(|| {
            invalid("llm.url", format!("llm.url must be an OpenAI-compatible URL ending in {CHAT_COMPLETIONS}"))
        })?;
        let fields = EndpointFields {
            url: Some(base.to_owned()),
            api_key: llm.api_key.clone().filter(|k| !k.is_empty()),
            headers: llm.headers.clone(),
            timeout_ms: None,
            max_retries: None,
        };
        let model = model.ok_or_else(|| {
            ApiError::field(ErrorCode::MissingField, "llm.params.model", "llm.params.model is required with llm.url")
        })?;
        model::LlmProvider::OpenAiCompatible(fields.into_endpoint("llm", model)?)
    };
    if let Some(messages) = llm.system_messages {
        spec.llm.system_messages = prompt_messages("llm.system_messages", messages, &vars)?;
    }
    if let Some(params) = &llm.params {
        spec.llm.params = llm_params("llm.params", params)?;
    }
    if let Some(max) = llm.max_history {
        spec.max_history = u32_in_range("llm.max_history", max, AgentSpec::MAX_HISTORY_RANGE)?;
    }
    let configs = llm.greeting_configs;
    if let Some(configs) = &configs {
        if configs.mode.as_deref().is_some_and(|mode| mode == "single_every") {
            ignored("llm.greeting_configs.mode", "the greeting is said once, when the first user joins");
        } else if let Some(mode) = configs.mode.as_deref().filter(|mode| *mode != "single_first") {
            return Err(invalid(
                "llm.greeting_configs.mode",
                format!("llm.greeting_configs.mode is {mode:?}; expected single_every or single_first"),
            ));
        }
        if configs.delay_ms.is_some_and(|d| d != 0) {
            ignored("llm.greeting_configs.delay_ms", "the greeting is said as soon as the user joins");
        }
    }
    if let Some(greeting) = llm.greeting_message.filter(|g| !g.is_empty()) {
        spec.greeting = Some(model::Greeting {
            text: text("llm.greeting_message", substitute(greeting, &vars))?,
            interruptible: configs.as_ref().and_then(|c| c.interruptable).unwrap_or(true),
        });
    }
    if let Some(message) = llm.failure_message.filter(|m| !m.is_empty()) {
        spec.failure_message = Some(text("llm.failure_message", substitute(message, &vars))?);
    }
    if llm.silence_message.is_some() {
        ignored("llm.silence_message", "deprecated; use parameters.silence_config");
    }
    Ok(vars)
}

/// `properties.asr`: the language picks the embedded Whisper model.
fn asr(spec: &mut AgentSpec, asr: wire::Asr) -> Checked<()> {
    if let Some(vendor) = asr.vendor.as_deref()
        && vendor != "ares"
    {
        ignored("asr.vendor", "speech is recognised by the embedded Whisper model");
    }
    if let Some(language) = asr.language {
        let language = short_text("asr.language", language, 35)?;
        if !language.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid("asr.language", "asr.language must be a BCP-47 tag such as \"en-US\""));
        }
        let model = if model::LocalAsrModel::WhisperTinyEn.understands(&language) {
            model::LocalAsrModel::WhisperTinyEn
        } else {
            model::LocalAsrModel::WhisperBase
        };
        spec.asr = model::Asr { provider: model::AsrProvider::Local { model }, language };
    }
    Ok(())
}

/// `properties.tts`: `openai` maps to an OpenAI-compatible endpoint, every other vendor to the
/// embedded voice.
fn tts(spec: &mut AgentSpec, tts: wire::Tts) -> Checked<()> {
    let params = tts.params.unwrap_or_default();
    let string = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
    if tts.skip_patterns.as_ref().is_some_and(|p| !p.is_empty()) {
        ignored("tts.skip_patterns", "bracketed text is spoken");
    }
    match tts.vendor.as_deref() {
        Some("openai") if string("api_key").is_some() => {
            let fields = EndpointFields {
                url: Some(string("base_url").unwrap_or_else(|| colloquy_http::fields::OPENAI_URL.to_owned())),
                api_key: string("api_key"),
                headers: None,
                timeout_ms: None,
                max_retries: None,
            };
            let model = string("model").unwrap_or_else(|| colloquy_http::fields::OPENAI_TTS_MODEL.to_owned());
            let endpoint = fields.into_endpoint("tts.params", model)?;
            let voice = string("voice").unwrap_or_else(|| model::Tts::DEFAULT_REMOTE_VOICE.to_owned());
            spec.tts.provider = model::TtsProvider::OpenAiCompatible(endpoint);
            spec.tts.voice = short_text("tts.params.voice", voice, 128)?;
            if let Some(speed) = params.get("speed").and_then(Value::as_f64) {
                spec.tts.speed = f32_field("tts.params.speed", speed, model::Tts::SPEED_RANGE)?;
            }
        }
        Some("local") => {
            if let Some(voice) = string("voice") {
                spec.tts.voice = colloquy_http::fields::local_voice("tts.params.voice", voice)?;
            }
        }
        Some(_) => ignored("tts.vendor", "speech is synthesised with the embedded Piper voice"),
        None => {}
    }
    Ok(())
}

fn interrupt_mode(field: &str, mode: &str, interruption: &mut model::Interruption) -> Checked<()> {
    match mode {
        "interrupt" | "start_of_speech" => {
            interruption.enabled = true;
            interruption.mode = model::InterruptionMode::StartOfSpeech;
        }
        "adaptive" => {
            ignored(field, "adaptive interruption works as \"interrupt\"");
            interruption.enabled = true;
            interruption.mode = model::InterruptionMode::StartOfSpeech;
        }
        "keywords" => {
            interruption.enabled = true;
            interruption.mode = model::InterruptionMode::Keywords;
        }
        "append" => {
            interruption.enabled = false;
            interruption.when_disabled = model::DisabledStrategy::Append;
        }
        "ignore" => {
            interruption.enabled = false;
            interruption.when_disabled = model::DisabledStrategy::Ignore;
        }
        other => {
            return Err(invalid(
                field,
                format!("{field} is {other:?}; expected interrupt, append, ignore or keywords"),
            ));
        }
    }
    Ok(())
}

fn strategy(field: &str, value: &str) -> Checked<model::DisabledStrategy> {
    match value {
        "append" => Ok(model::DisabledStrategy::Append),
        "ignore" => Ok(model::DisabledStrategy::Ignore),
        other => Err(invalid(field, format!("{field} is {other:?}; expected append or ignore"))),
    }
}

fn keywords(field: &str, words: Vec<String>) -> Checked<Vec<String>> {
    use model::Interruption as I;
    if words.len() > I::MAX_KEYWORDS {
        return Err(invalid(field, format!("{field} has {} words; the maximum is {}", words.len(), I::MAX_KEYWORDS)));
    }
    words.into_iter().enumerate().map(|(i, w)| short_text(&format!("{field}[{i}]"), w, I::MAX_KEYWORD_CHARS)).collect()
}

/// `turn_detection` (both forms), the deprecated `vad` and `interruption`.
fn turn_taking(
    spec: &mut AgentSpec,
    turn: Option<wire::TurnDetection>,
    vad: Option<wire::DeprecatedVad>,
    interruption: Option<wire::Interruption>,
) -> Checked<()> {
    use model::TurnDetection as T;
    let td = &mut spec.turn_detection;
    let int = &mut spec.interruption;
    let mut semantic_wait = None;
    if let Some(vad) = vad {
        if let Some(v) = vad.threshold {
            td.vad_threshold = f32_field("vad.threshold", v, T::VAD_THRESHOLD_RANGE)?;
        }
        if let Some(v) = vad.silence_duration_ms {
            td.silence_duration_ms = u32_in_range("vad.silence_duration_ms", v, T::SILENCE_DURATION_RANGE_MS)?;
        }
        if let Some(v) = vad.prefix_padding_ms {
            td.prefix_padding_ms = u32_in_range("vad.prefix_padding_ms", v, T::PREFIX_PADDING_RANGE_MS)?;
        }
        if let Some(v) = vad.interrupt_duration_ms {
            int.min_speech_ms = u32_in_range("vad.interrupt_duration_ms", v, model::Interruption::MIN_SPEECH_RANGE_MS)?;
        }
    }
    if let Some(turn) = turn {
        if let Some(mode) = turn.mode.as_deref().filter(|m| *m != "default") {
            return Err(invalid(
                "turn_detection.mode",
                format!("turn_detection.mode is {mode:?}; expected \"default\""),
            ));
        }
        // The deprecated flat fields.
        match turn.kind.as_deref() {
            None | Some("agora_vad") => {}
            Some("server_vad" | "semantic_vad") => {
                ignored("turn_detection.type", "server_vad and semantic_vad need an MLLM; the local VAD is used")
            }
            Some(other) => {
                return Err(invalid(
                    "turn_detection.type",
                    format!("turn_detection.type is {other:?}; expected agora_vad, server_vad or semantic_vad"),
                ));
            }
        }
        if turn.eagerness.is_some() {
            ignored("turn_detection.eagerness", "applies to semantic_vad with an MLLM");
        }
        if let Some(v) = turn.threshold {
            td.vad_threshold = f32_field("turn_detection.threshold", v, T::VAD_THRESHOLD_RANGE)?;
        }
        if let Some(v) = turn.silence_duration_ms {
            td.silence_duration_ms =
                u32_in_range("turn_detection.silence_duration_ms", v, T::SILENCE_DURATION_RANGE_MS)?;
        }
        if let Some(v) = turn.prefix_padding_ms {
            td.prefix_padding_ms = u32_in_range("turn_detection.prefix_padding_ms", v, T::PREFIX_PADDING_RANGE_MS)?;
        }
        if let Some(v) = turn.interrupt_duration_ms {
            int.min_speech_ms =
                u32_in_range("turn_detection.interrupt_duration_ms", v, model::Interruption::MIN_SPEECH_RANGE_MS)?;
        }
        if let Some(mode) = turn.interrupt_mode.as_deref() {
            interrupt_mode("turn_detection.interrupt_mode", mode, int)?;
        }
        if let Some(words) = turn.interrupt_keywords {
            int.keywords = keywords("turn_detection.interrupt_keywords", words)?;
        }
        // The v2.6 form.
        if let Some(config) = turn.config {
            if let Some(v) = config.speech_threshold {
                td.vad_threshold = f32_field("turn_detection.config.speech_threshold", v, T::VAD_THRESHOLD_RANGE)?;
            }
            if let Some(sos) = config.start_of_speech {
                let field = "turn_detection.config.start_of_speech";
                match sos.mode.as_deref() {
                    None | Some("vad") => {}
                    Some("manual") => {
                        return Err(unsupported(
                            &format!("{field}.mode"),
                            "manual turn control needs RTM, which this server does not carry",
                        ));
                    }
                    Some("keywords") => interrupt_mode(&format!("{field}.mode"), "keywords", int)?,
                    Some("disabled") => {
                        int.enabled = false;
                        if let Some(s) = sos.disabled_config.as_ref().and_then(|d| d.strategy.as_deref()) {
                            int.when_disabled = strategy(&format!("{field}.disabled_config.strategy"), s)?;
                        }
                    }
                    Some(other) => {
                        return Err(invalid(
                            &format!("{field}.mode"),
                            format!("{field}.mode is {other:?}; expected vad, manual, keywords or disabled"),
                        ));
                    }
                }
                if let Some(words) = sos.keywords_config.and_then(|k| k.trigger_keywords) {
                    int.keywords = keywords(&format!("{field}.keywords_config.triggered_keywords"), words)?;
                }
                if let Some(vad) = sos.vad_config {
                    if let Some(v) = vad.interrupt_duration_ms {
                        int.min_speech_ms = u32_in_range(
                            &format!("{field}.vad_config.interrupt_duration_ms"),
                            v,
                            model::Interruption::MIN_SPEECH_RANGE_MS,
                        )?;
                    }
                    if vad.speaking_interrupt_duration_ms.is_some() {
                        ignored(
                            "turn_detection.config.start_of_speech.vad_config.speaking_interrupt_duration_ms",
                            "interrupt_duration_ms applies whether or not the agent speaks",
                        );
                    }
                    if let Some(v) = vad.prefix_padding_ms {
                        td.prefix_padding_ms = u32_in_range(
                            &format!("{field}.vad_config.prefix_padding_ms"),
                            v,
                            T::PREFIX_PADDING_RANGE_MS,
                        )?;
                    }
                }
            }
            if let Some(eos) = config.end_of_speech {
                let field = "turn_detection.config.end_of_speech";
                match eos.mode.as_deref() {
                    None | Some("vad") => {
                        if let Some(v) = eos.vad_config.and_then(|c| c.silence_duration_ms) {
                            td.silence_duration_ms = u32_in_range(
                                &format!("{field}.vad_config.silence_duration_ms"),
                                v,
                                T::SILENCE_DURATION_RANGE_MS,
                            )?;
                        }
                    }
                    Some("semantic") => {
                        if let Some(semantic) = eos.semantic_config {
                            if let Some(v) = semantic.silence_duration_ms {
                                td.silence_duration_ms = u32_in_range(
                                    &format!("{field}.semantic_config.silence_duration_ms"),
                                    v,
                                    T::SILENCE_DURATION_RANGE_MS,
                                )?;
                            }
                            match semantic.max_wait_ms {
                                Some(-1) => semantic_wait = Some(*T::MAX_WAIT_RANGE_MS.end()),
                                Some(v) => {
                                    semantic_wait = Some(u32_in_range(
                                        &format!("{field}.semantic_config.max_wait_ms"),
                                        v,
                                        T::MAX_WAIT_RANGE_MS,
                                    )?)
                                }
                                None => {}
                            }
                        }
                    }
                    Some("manual") => {
                        return Err(unsupported(
                            &format!("{field}.mode"),
                            "manual turn control needs RTM, which this server does not carry",
                        ));
                    }
                    Some(other) => {
                        return Err(invalid(
                            &format!("{field}.mode"),
                            format!("{field}.mode is {other:?}; expected vad, semantic or manual"),
                        ));
                    }
                }
            }
        }
    }
    if let Some(interruption) = interruption {
        let field = "interruption";
        if let Some(enable) = interruption.enable {
            int.enabled = enable;
        }
        match interruption.mode.as_deref() {
            None | Some("start_of_speech") => int.mode = model::InterruptionMode::StartOfSpeech,
            Some("keywords") => int.mode = model::InterruptionMode::Keywords,
            Some(other) => {
                return Err(invalid(
                    "interruption.mode",
                    format!("interruption.mode is {other:?}; expected start_of_speech or keywords"),
                ));
            }
        }
        if let Some(words) = interruption.keywords_config.and_then(|k| k.trigger_keywords) {
            int.keywords = keywords(&format!("{field}.keywords_config.trigger_keywords"), words)?;
        }
        if let Some(s) = interruption.disabled_config.and_then(|d| d.strategy) {
            int.when_disabled = strategy("interruption.disabled_config.strategy", &s)?;
        }
    }
    if int.mode == model::InterruptionMode::Keywords && int.keywords.is_empty() {
        return Err(ApiError::field(
            ErrorCode::MissingField,
            "interruption.keywords_config.trigger_keywords",
            "interruption.keywords_config.trigger_keywords is required (at least one word) in keywords mode",
        ));
    }
    if int.mode == model::InterruptionMode::StartOfSpeech {
        int.keywords.clear();
    }
    if let Some(wait) = semantic_wait {
        td.max_wait_ms = wait;
    }
    if td.max_wait_ms < td.silence_duration_ms {
        td.max_wait_ms = td.silence_duration_ms;
    }
    Ok(())
}

fn parameters(spec: &mut AgentSpec, parameters: wire::Parameters, vars: &BTreeMap<String, String>) -> Checked<()> {
    if let Some(silence) = parameters.silence_config {
        let timeout = silence.timeout_ms.unwrap_or(0);
        if timeout != 0 {
            let field = "parameters.silence_config";
            let timeout_ms =
                u32_in_range(&format!("{field}.timeout_ms"), timeout, model::SilencePrompt::TIMEOUT_RANGE_MS)?;
            let action = match silence.action.as_deref().unwrap_or("speak") {
                "speak" => model::SilenceAction::Speak,
                "think" => model::SilenceAction::Think,
                other => {
                    return Err(invalid(
                        &format!("{field}.action"),
                        format!("{field}.action is {other:?}; expected speak or think"),
                    ));
                }
            };
            let content = silence.content.ok_or_else(|| {
                ApiError::field(
                    ErrorCode::MissingField,
                    format!("{field}.content"),
                    format!("{field}.content is required when {field}.timeout_ms is set"),
                )
            })?;
            spec.silence_prompt = Some(model::SilencePrompt {
                timeout_ms,
                action,
                content: text(&format!("{field}.content"), substitute(content, vars))?,
            });
        }
    }
    if let Some(channel) = parameters.data_channel.as_deref()
        && channel != "datastream"
    {
        ignored("parameters.data_channel", "transcripts go out on the channel's data stream");
    }
    if parameters.farewell_config.is_some() {
        ignored("parameters.farewell_config", "the agent leaves when told to");
    }
    for (field, set) in [
        ("parameters.enable_metrics", parameters.enable_metrics == Some(true)),
        ("parameters.enable_error_message", parameters.enable_error_message == Some(true)),
        ("parameters.audio_scenario", parameters.audio_scenario.is_some()),
        ("parameters.opt_out", parameters.opt_out.is_some()),
    ] {
        if set {
            ignored(field, "not applicable to this server");
        }
    }
    Ok(())
}

fn enabled(value: &Option<Value>) -> bool {
    value.as_ref().and_then(|v| v.get("enable")).and_then(Value::as_bool).unwrap_or(false)
}

/// The keys of `properties` this dialect reads.
const KNOWN_PROPERTIES: &[&str] = &[
    "channel",
    "token",
    "agent_rtc_uid",
    "remote_rtc_uids",
    "enable_string_uid",
    "idle_timeout",
    "silence_timeout",
    "agent_rtm_uid",
    "llm",
    "asr",
    "tts",
    "mllm",
    "avatar",
    "sal",
    "turn_detection",
    "interruption",
    "vad",
    "parameters",
    "advanced_features",
    "filler_words",
    "geofence",
    "rtc",
    "labels",
];

/// Warns about keys of `properties` this dialect does not know (Agora allows additional properties).
pub fn warn_unknown_properties(body: &Value) {
    if let Some(properties) = body.get("properties").and_then(Value::as_object) {
        for key in properties.keys().filter(|k| !KNOWN_PROPERTIES.contains(&k.as_str())) {
            tracing::warn!(field = %format!("properties.{key}"), "Agora join: unknown property ignored");
        }
    }
}

/// Checks a `join` body and resolves its defaults.
pub fn spec_from_join(request: wire::JoinRequest, callbacks: Option<model::Callbacks>) -> Checked<AgentSpec> {
    let p = request.properties;
    let field_name = |f: &str| format!("properties.{f}");
    let mut spec = AgentSpec::with_defaults(
        name("name", request.name, AgentName::new)?,
        name("properties.channel", p.channel, ChannelName::new)?,
    );
    if request.preset.is_some() || request.pipeline_id.is_some() {
        ignored("preset / pipeline_id", "no presets or pipelines are configured here; properties decide");
    }
    // Refused: ignoring these would change what the caller gets.
    if enabled(&p.mllm) {
        return Err(unsupported(
            "properties.mllm.enable",
            "multimodal (realtime) LLMs cannot run here; use asr + llm + tts",
        ));
    }
    if enabled(&p.avatar) {
        return Err(unsupported("properties.avatar.enable", "no avatar vendor is available"));
    }
    if p.sal.is_some() {
        return Err(unsupported(
            "properties.sal",
            "selective attention locking needs voiceprints this server cannot match",
        ));
    }
    if let Some(features) = &p.advanced_features {
        if features.enable_mllm == Some(true) {
            return Err(unsupported("properties.advanced_features.enable_mllm", "multimodal LLMs cannot run here"));
        }
        if features.enable_sal == Some(true) {
            return Err(unsupported("properties.advanced_features.enable_sal", "selective attention locking"));
        }
        for (name, on) in [
            ("enable_rtm", features.enable_rtm),
            ("enable_tools", features.enable_tools),
            ("enable_aivad", features.enable_aivad),
        ] {
            if on == Some(true) {
                ignored(&format!("properties.advanced_features.{name}"), "not available on this server");
            }
        }
    }
    // Accepted with a warning: harmless to ignore.
    for (field, set) in [
        ("properties.geofence", p.geofence.is_some()),
        ("properties.rtc", p.rtc.is_some()),
        ("properties.filler_words", enabled(&p.filler_words)),
        ("properties.agent_rtm_uid", p.agent_rtm_uid.is_some()),
        ("properties.silence_timeout", p.silence_timeout.is_some()),
    ] {
        if set {
            ignored(field, "not applicable to this server");
        }
    }
    let string_uids = p.enable_string_uid.unwrap_or(false);
    if let Some(uid) = &p.agent_rtc_uid {
        let uid = uid_text(&field_name("agent_rtc_uid"), uid)?;
        spec.agent_uid =
            if uid == "0" { random_uid() } else { check_uid(&field_name("agent_rtc_uid"), uid, string_uids)? };
    } else {
        spec.agent_uid = random_uid();
    }
    if let Some(uids) = p.remote_rtc_uids {
        let field = field_name("remote_rtc_uids");
        if uids.is_empty() {
            return Err(invalid(&field, format!("{field} is empty; use [\"*\"] for everyone")));
        }
        if uids.len() > AgentSpec::MAX_REMOTE_UIDS {
            return Err(invalid(&field, format!("{field} has more than {} uids", AgentSpec::MAX_REMOTE_UIDS)));
        }
        let uids = uids
            .iter()
            .enumerate()
            .map(|(i, uid)| uid_text(&format!("{field}[{i}]"), uid))
            .collect::<Checked<Vec<_>>>()?;
        spec.remote_uids = if uids.iter().any(|u| u == "*") {
            if uids.len() > 1 {
                return Err(invalid(&field, format!("{field}: \"*\" means everyone and cannot be combined with uids")));
            }
            model::RemoteUids::Any
        } else {
            model::RemoteUids::Only(
                uids.into_iter()
                    .enumerate()
                    .map(|(i, uid)| check_uid(&format!("{field}[{i}]"), uid, string_uids))
                    .collect::<Checked<_>>()?,
            )
        };
    }
    if let Some(secs) = p.idle_timeout {
        spec.idle_timeout =
            IdleTimeout::from_secs(u32_in_range(&field_name("idle_timeout"), secs, 0..=IdleTimeout::MAX_SECS)?);
    }
    let vars = match p.llm {
        Some(l) => llm(&mut spec, l).map_err(|e| prefix(e, "properties."))?,
        None => BTreeMap::new(),
    };
    if let Some(a) = p.asr {
        asr(&mut spec, a).map_err(|e| prefix(e, "properties."))?;
    }
    if let Some(t) = p.tts {
        tts(&mut spec, t).map_err(|e| prefix(e, "properties."))?;
    }
    turn_taking(&mut spec, p.turn_detection, p.vad, p.interruption).map_err(|e| prefix(e, "properties."))?;
    if let Some(params) = p.parameters {
        parameters(&mut spec, params, &vars).map_err(|e| prefix(e, "properties."))?;
    }
    spec.callbacks = callbacks;
    let origin = OriginData { labels: p.labels.unwrap_or_default(), enable_string_uid: string_uids };
    spec.origin = model::Origin {
        dialect: model::Dialect::Agora,
        data: Some(serde_json::to_string(&origin).map_err(|e| ApiError::internal(e.to_string()))?),
    };
    Ok(spec)
}

/// Puts `properties.` before the field names of errors raised by the group checks.
fn prefix(mut error: ApiError, prefix: &str) -> ApiError {
    if let Some(field) = error.field.take() {
        let full = format!("{prefix}{field}");
        if !error.message.contains(&full) {
            error.message = error.message.replacen(&field, &full, 1);
        }
        error.field = Some(full);
    }
    error
}

/// `update.properties` into a [`model::SpecUpdate`] (empty when only the token changes).
pub fn update_from_request(request: wire::UpdateRequest) -> Checked<model::SpecUpdate> {
    let p = request.properties;
    if p.mllm.is_some() {
        return Err(unsupported("properties.mllm", "this agent has no multimodal LLM"));
    }
    let mut update = model::SpecUpdate::default();
    if let Some(llm) = p.llm {
        if let Some(messages) = llm.system_messages {
            update.system_messages =
                Some(prompt_messages("properties.llm.system_messages", messages, &BTreeMap::new())?);
        }
        if let Some(params) = llm.params {
            update.llm_params = Some(llm_params("properties.llm.params", &params)?);
        }
    }
    if update.is_empty() && p.token.is_none() {
        return Err(ApiError::field(
            ErrorCode::MissingField,
            "properties",
            "nothing to update: send properties.token, properties.llm.system_messages or properties.llm.params",
        ));
    }
    Ok(update)
}

/// `speak` into [`model::AgentCommand::Speak`].
pub fn speak_from_request(request: wire::SpeakRequest) -> Checked<model::AgentCommand> {
    let text = text("text", request.text)?;
    if text.len() > MAX_SPEAK_BYTES {
        return Err(invalid("text", format!("text is {} bytes long; the maximum is {MAX_SPEAK_BYTES}", text.len())));
    }
    let priority = match request.priority.as_deref().unwrap_or("INTERRUPT") {
        "INTERRUPT" => model::SpeakPriority::Interrupt,
        "APPEND" => model::SpeakPriority::Append,
        "IGNORE" => model::SpeakPriority::Ignore,
        other => {
            return Err(invalid("priority", format!("priority is {other:?}; expected INTERRUPT, APPEND or IGNORE")));
        }
    };
    Ok(model::AgentCommand::Speak { text, priority, interruptible: request.interruptable.unwrap_or(true) })
}

/// `think` into [`model::AgentCommand::Think`]. The actions other than the defaults cannot be
/// honoured; they are accepted with a warning.
pub fn think_from_request(request: wire::ThinkRequest) -> Checked<model::AgentCommand> {
    let text = text("text", request.text)?;
    for (field, value, allowed, default) in [
        ("on_listening_action", &request.on_listening_action, &["inject", "interrupt", "ignore"][..], "interrupt"),
        ("on_thinking_action", &request.on_thinking_action, &["interrupt", "ignore"][..], "interrupt"),
        ("on_speaking_action", &request.on_speaking_action, &["interrupt", "ignore"][..], "ignore"),
    ] {
        if let Some(value) = value.as_deref() {
            if !allowed.contains(&value) {
                return Err(invalid(field, format!("{field} is {value:?}; expected one of {allowed:?}")));
            }
            if value != default {
                tracing::warn!(field, value, "Agora think: only the default {field} ({default}) is honoured");
            }
        }
    }
    if request.interruptable == Some(false) {
        tracing::warn!("Agora think: interruptable=false is not honoured; the answer can be interrupted");
    }
    if request.metadata.is_some() {
        tracing::warn!("Agora think: metadata is not passed to the LLM");
    }
    Ok(model::AgentCommand::Think { text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(body: &str) -> Checked<AgentSpec> {
        let request: wire::JoinRequest = colloquy_http::extract::parse_json(body.as_bytes())?;
        spec_from_join(request, None)
    }

    #[test]
    fn template_variables_fill_prompts_greeting_failure_and_silence() {
        let spec = join(
            r#"{"name":"a","properties":{"channel":"c","llm":{"url":"https://x.test/v1/chat/completions","params":{"model":"m"},
            "system_messages":[{"role":"system","content":"You help {{user}}."}],"greeting_message":"Hi {{user}}",
            "failure_message":"Sorry {{user}}","template_variables":{"user":"Ann"}},
            "parameters":{"silence_config":{"timeout_ms":5000,"action":"think","content":"{{user}} is quiet"}}}}"#,
        )
        .unwrap();
        assert_eq!(spec.llm.system_messages[0].content, "You help Ann.");
        assert_eq!(spec.greeting.unwrap().text, "Hi Ann");
        assert_eq!(spec.failure_message.as_deref(), Some("Sorry Ann"));
        let silence = spec.silence_prompt.unwrap();
        assert_eq!(
            (silence.timeout_ms, silence.action, silence.content.as_str()),
            (5000, model::SilenceAction::Think, "Ann is quiet")
        );
        match spec.llm.provider {
            model::LlmProvider::OpenAiCompatible(e) => {
                assert_eq!((e.url.as_str(), e.model.as_str()), ("https://x.test/v1", "m"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn turn_detection_new_and_deprecated_forms() {
        let spec = join(
            r#"{"name":"a","properties":{"channel":"c","turn_detection":{"config":{"speech_threshold":0.6,
            "start_of_speech":{"mode":"vad","vad_config":{"interrupt_duration_ms":200,"prefix_padding_ms":700}},
            "end_of_speech":{"mode":"semantic","semantic_config":{"silence_duration_ms":320,"max_wait_ms":-1}}}}}}"#,
        )
        .unwrap();
        let td = spec.turn_detection;
        assert_eq!(
            (td.vad_threshold, td.prefix_padding_ms, td.silence_duration_ms, td.max_wait_ms),
            (0.6, 700, 320, 60_000)
        );
        assert_eq!(spec.interruption.min_speech_ms, 200);

        let spec = join(
            r#"{"name":"a","properties":{"channel":"c","turn_detection":{"type":"agora_vad","threshold":0.4,
            "silence_duration_ms":900,"interrupt_mode":"keywords","interrupt_keywords":["stop","wait"]}}}"#,
        )
        .unwrap();
        assert_eq!((spec.turn_detection.vad_threshold, spec.turn_detection.silence_duration_ms), (0.4, 900));
        assert_eq!(spec.interruption.mode, model::InterruptionMode::Keywords);
        assert_eq!(spec.interruption.keywords, ["stop", "wait"]);

        let spec =
            join(r#"{"name":"a","properties":{"channel":"c","turn_detection":{"interrupt_mode":"ignore"}}}"#).unwrap();
        assert!(!spec.interruption.enabled);
        assert_eq!(spec.interruption.when_disabled, model::DisabledStrategy::Ignore);

        let spec = join(
            r#"{"name":"a","properties":{"channel":"c","interruption":{"enable":false,"disabled_config":{"strategy":"append"}}}}"#,
        )
        .unwrap();
        assert!(!spec.interruption.enabled);
        let e = join(r#"{"name":"a","properties":{"channel":"c","interruption":{"mode":"keywords"}}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("properties.interruption.keywords_config.trigger_keywords"));
    }

    #[test]
    fn refuses_what_cannot_be_honoured() {
        for (body, field) in [
            (r#"{"mllm":{"enable":true}}"#, "properties.mllm.enable"),
            (r#"{"avatar":{"enable":true}}"#, "properties.avatar.enable"),
            (r#"{"sal":{"sal_mode":"locking"}}"#, "properties.sal"),
            (
                r#"{"llm":{"url":"https://x.test/v1/chat/completions","greeting_audio_url":"https://a.test/a.mp3"}}"#,
                "properties.llm.greeting_audio_url",
            ),
            (
                r#"{"llm":{"url":"https://x.test/v1/chat/completions","params":{"model":"m"},"style":"anthropic"}}"#,
                "properties.llm.style",
            ),
            (r#"{"llm":{"url":"https://x.test/v1/messages","params":{"model":"m"}}}"#, "properties.llm.url"),
            (r#"{"llm":{"url":"https://x.test/v1/chat/completions"}}"#, "properties.llm.params.model"),
            (
                r#"{"turn_detection":{"config":{"end_of_speech":{"mode":"manual"}}}}"#,
                "properties.turn_detection.config.end_of_speech.mode",
            ),
            (r#"{"idle_timeout":-1}"#, "properties.idle_timeout"),
            (r#"{"agent_rtc_uid":"bot"}"#, "properties.agent_rtc_uid"),
        ] {
            let props = &body[1..body.len() - 1];
            let e = join(&format!(r#"{{"name":"a","properties":{{"channel":"c",{props}}}}}"#)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{body}: {}", e.message);
            assert!(e.message.contains(field), "{}", e.message);
        }
        // Harmless ones are accepted.
        join(r#"{"name":"a","properties":{"channel":"c","geofence":{"area":"GLOBAL"},"advanced_features":{"enable_rtm":true},
            "rtc":{"encryption_mode":1},"tts":{"vendor":"elevenlabs","params":{"key":"k"}},"asr":{"vendor":"deepgram","language":"de-DE"}}}"#)
        .unwrap();
    }

    #[test]
    fn uids_and_local_llm() {
        let spec =
            join(r#"{"name":"a","properties":{"channel":"c","agent_rtc_uid":"0","remote_rtc_uids":["*"]}}"#).unwrap();
        assert!(spec.agent_uid.as_str().parse::<u32>().unwrap() > 0);
        assert_eq!(spec.remote_uids, model::RemoteUids::Any);
        let spec = join(
            r#"{"name":"a","properties":{"channel":"c","enable_string_uid":true,"agent_rtc_uid":"bot","remote_rtc_uids":["alice"],
            "llm":{"url":"local://","system_messages":[{"role":"user","content":"earlier"}]}}}"#,
        )
        .unwrap();
        assert_eq!(spec.agent_uid.as_str(), "bot");
        assert_eq!(spec.remote_uids, model::RemoteUids::Only(vec![Uid::new("alice").unwrap()]));
        assert_eq!(
            spec.llm.provider,
            model::LlmProvider::Local { model: model::LlmProvider::DEFAULT_LOCAL_MODEL.into() }
        );
        assert_eq!(spec.llm.system_messages[0].role, model::PromptRole::User);
    }

    #[test]
    fn speak_checks_priority_and_length() {
        let speak = |body: &str| speak_from_request(colloquy_http::extract::parse_json(body.as_bytes())?);
        assert_eq!(
            speak(r#"{"text":"hi","priority":"APPEND","interruptable":false}"#).unwrap(),
            model::AgentCommand::Speak {
                text: "hi".into(),
                priority: model::SpeakPriority::Append,
                interruptible: false
            }
        );
        assert_eq!(speak(r#"{"text":"hi","priority":"LOUD"}"#).unwrap_err().field.as_deref(), Some("priority"));
        let long = format!(r#"{{"text":"{}"}}"#, "é".repeat(257));
        assert_eq!(speak(&long).unwrap_err().field.as_deref(), Some("text"));
    }
}
