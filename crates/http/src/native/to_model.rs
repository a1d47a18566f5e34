//! Native requests into the model, checking every value; the model back into native answers.

use colloquy_model as model;
use colloquy_model::{AgentName, AgentSpec, ChannelName, IdleTimeout, RemoteEndpoint, Secret, Uid};

use super::wire;
use crate::error::ApiError;
use crate::fields::{
    Checked, EndpointFields, OPENAI_ASR_MODEL, OPENAI_LLM_MODEL, OPENAI_TTS_MODEL, command_text, finite, http_url,
    in_range, local_voice, name, prompt_length, short_text, text,
};
use crate::vendors::{Chosen, VendorFields, VendorScope};
use colloquy_model::SpeechKind;

/// Checks a `POST /v1/agents` body and resolves its defaults.
pub fn spec_from_wire(config: wire::AgentConfig, scope: VendorScope<'_>) -> Checked<AgentSpec> {
    let mut spec = AgentSpec::with_defaults(
        name("name", config.name, AgentName::new)?,
        name("channel", config.channel, ChannelName::new)?,
    );
    if let Some(uid) = config.agent_uid {
        spec.agent_uid = name("agent_uid", uid, Uid::new)?;
    }
    if let Some(uids) = config.remote_uids {
        spec.remote_uids = remote_uids(uids)?;
    }
    let profile = profile_from_wire(
        wire::ProfileConfig {
            prompt: None,
            idle_timeout: config.idle_timeout,
            llm: config.llm,
            asr: config.asr,
            tts: config.tts,
            turn_detection: config.turn_detection,
            interruption: config.interruption,
            greeting: config.greeting,
            failure_message: config.failure_message,
            max_history: config.max_history,
            silence_prompt: config.silence_prompt,
        },
        scope,
    )?;
    profile.apply_to(&mut spec);
    if let Some(callbacks) = config.callbacks {
        spec.callbacks = Some(model::Callbacks {
            url: http_url("callbacks.url", callbacks.url)?,
            secret: match callbacks.secret {
                Some(secret) => Some(Secret::new(short_text("callbacks.secret", secret, 256)?)),
                None => None,
            },
        });
    }
    if config.tools.is_some() || config.tool_options.is_some() {
        spec.tools = tools_from_wire(config.tools.unwrap_or_default(), config.tool_options.unwrap_or_default())?;
    }
    crate::tools::llm_can_call("tools", &spec)?;
    Ok(spec)
}

fn tools_from_wire(list: Vec<wire::ToolConfig>, options: wire::ToolOptionsConfig) -> Checked<model::Tools> {
    let mut available = list
        .into_iter()
        .enumerate()
        .map(|(i, tool)| {
            let field = format!("tools[{i}]");
            let kind = match (tool.url, tool.client) {
                (Some(url), None | Some(false)) => {
                    model::ToolKind::Http { url: http_url(&format!("{field}.url"), url)? }
                }
                (None, Some(true)) => model::ToolKind::Client,
                (Some(_), Some(true)) => {
                    return Err(ApiError::invalid(format!("{field}.client"), "give url or client: true, not both"));
                }
                (None, _) => {
                    return Err(ApiError::invalid(
                        format!("{field}.url"),
                        format!("{field} needs a url (an HTTP tool) or client: true (a client tool)"),
                    ));
                }
            };
            crate::tools::tool(crate::tools::ToolFields {
                field,
                name: tool.name,
                description: tool.description,
                parameters: tool.parameters,
                timeout_ms: tool.timeout_ms,
                kind,
            })
        })
        .collect::<Checked<Vec<_>>>()?;
    if options.end_call == Some(true) {
        available.push(model::Tool::end_call());
    }
    let given = crate::tools::ToolOptions {
        max_rounds: options.max_rounds,
        filler_after_ms: options.filler_after_ms,
        fillers: options.fillers,
    };
    let mut tools = crate::tools::tools("tools", available, "tool_options", given)?;
    tools.webhooks = options.webhooks.unwrap_or(false);
    Ok(tools)
}

fn tools_to_wire(tools: &model::Tools) -> (Option<Vec<wire::ToolConfig>>, Option<wire::ToolOptionsConfig>) {
    let list: Vec<_> = tools
        .available
        .iter()
        .filter_map(|tool| match &tool.kind {
            model::ToolKind::Http { .. } | model::ToolKind::Client => Some(wire::ToolConfig {
                name: tool.function.name.clone(),
                description: Some(tool.function.description.clone()),
                parameters: serde_json::from_str(&tool.function.parameters).ok(),
                url: match &tool.kind {
                    model::ToolKind::Http { url } => Some(url.clone()),
                    _ => None,
                },
                client: (tool.kind == model::ToolKind::Client).then_some(true),
                timeout_ms: Some(tool.timeout_ms),
            }),
            model::ToolKind::EndCall => None,
        })
        .collect();
    let options = wire::ToolOptionsConfig {
        max_rounds: Some(tools.max_rounds),
        filler_after_ms: Some(tools.filler_after_ms),
        fillers: Some(tools.fillers.clone()),
        end_call: Some(tools.available.iter().any(|t| t.kind == model::ToolKind::EndCall)),
        webhooks: Some(tools.webhooks),
    };
    (Some(list), Some(options))
}

/// Checks a configured agent's settings (and the same fields of a `POST /v1/agents` body).
pub fn profile_from_wire(config: wire::ProfileConfig, scope: VendorScope<'_>) -> Checked<model::AgentProfile> {
    let mut profile = model::AgentProfile::default();
    if let Some(secs) = config.idle_timeout {
        profile.idle_timeout = Some(IdleTimeout::from_secs(in_range("idle_timeout", secs, 0..=IdleTimeout::MAX_SECS)?));
    }
    let sets_messages = config.llm.as_ref().is_some_and(|llm| llm.system_messages.is_some());
    if let Some(llm) = config.llm {
        profile.llm = Some(llm_from_wire(llm)?);
    }
    if let Some(prompt) = config.prompt {
        if sets_messages {
            return Err(ApiError::invalid("prompt", "set prompt or llm.system_messages, not both"));
        }
        let mut llm = match profile.llm.take() {
            Some(llm) => llm,
            None => llm_from_wire(wire::LlmConfig::default())?,
        };
        llm.system_messages =
            vec![model::PromptMessage { role: model::PromptRole::System, content: text("prompt", prompt)? }];
        profile.llm = Some(llm);
    }
    if let Some(asr) = config.asr {
        profile.asr = Some(asr_from_wire(asr, scope)?);
    }
    if let Some(tts) = config.tts {
        profile.tts = Some(tts_from_wire(tts, scope)?);
    }
    if let Some(turn) = config.turn_detection {
        profile.turn_detection = Some(turn_detection_from_wire(turn)?);
    }
    if let Some(interruption) = config.interruption {
        profile.interruption = Some(interruption_from_wire(interruption)?);
    }
    if let Some(greeting) = config.greeting {
        profile.greeting = Some(model::Greeting {
            text: text("greeting.text", greeting.text)?,
            interruptible: greeting.interruptible.unwrap_or(true),
        });
    }
    if let Some(message) = config.failure_message {
        profile.failure_message = Some(text("failure_message", message)?);
    }
    if let Some(prompt) = config.silence_prompt {
        profile.silence_prompt = Some(model::SilencePrompt {
            timeout_ms: in_range(
                "silence_prompt.timeout_ms",
                prompt.timeout_ms,
                model::SilencePrompt::TIMEOUT_RANGE_MS,
            )?,
            action: match prompt.action.unwrap_or(wire::SilenceAction::Speak) {
                wire::SilenceAction::Speak => model::SilenceAction::Speak,
                wire::SilenceAction::Think => model::SilenceAction::Think,
            },
            content: text("silence_prompt.content", prompt.content)?,
        });
    }
    if let Some(max) = config.max_history {
        profile.max_history = Some(in_range("max_history", max, AgentSpec::MAX_HISTORY_RANGE)?);
    }
    Ok(profile)
}

fn remote_uids(uids: Vec<String>) -> Checked<model::RemoteUids> {
    if uids.is_empty() {
        return Err(ApiError::invalid("remote_uids", "remote_uids is empty; leave it out or use [\"*\"] for anyone"));
    }
    if uids.len() > AgentSpec::MAX_REMOTE_UIDS {
        return Err(ApiError::invalid(
            "remote_uids",
            format!("remote_uids has {} entries; the maximum is {}", uids.len(), AgentSpec::MAX_REMOTE_UIDS),
        ));
    }
    if uids.iter().any(|uid| uid == "*") {
        return if uids.len() == 1 {
            Ok(model::RemoteUids::Any)
        } else {
            Err(ApiError::invalid("remote_uids", "\"*\" means anyone and cannot be combined with other uids"))
        };
    }
    let uids = uids
        .into_iter()
        .enumerate()
        .map(|(i, uid)| name(&format!("remote_uids[{i}]"), uid, Uid::new))
        .collect::<Checked<Vec<_>>>()?;
    Ok(model::RemoteUids::Only(uids))
}

fn prompt_messages(field: &str, messages: Vec<wire::PromptMessage>) -> Checked<Vec<model::PromptMessage>> {
    prompt_length(field, messages.len())?;
    messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            Ok(model::PromptMessage {
                role: match message.role {
                    wire::PromptRole::System => model::PromptRole::System,
                    wire::PromptRole::User => model::PromptRole::User,
                    wire::PromptRole::Assistant => model::PromptRole::Assistant,
                },
                content: text(&format!("{field}[{i}].content"), message.content)?,
            })
        })
        .collect()
}

fn llm_params(field: &str, params: wire::LlmParams, base: model::LlmParams) -> Checked<model::LlmParams> {
    Ok(model::LlmParams {
        temperature: match params.temperature {
            Some(t) => finite(&format!("{field}.temperature"), t, model::LlmParams::TEMPERATURE_RANGE)?,
            None => base.temperature,
        },
        top_p: match params.top_p {
            Some(p) => finite(&format!("{field}.top_p"), p, model::LlmParams::TOP_P_RANGE).map_err(|mut e| {
                e.message = format!("{field}.top_p must be greater than 0 and at most 1");
                e
            })?,
            None => base.top_p,
        },
        max_tokens: match params.max_tokens {
            Some(n) => in_range(&format!("{field}.max_tokens"), n, model::LlmParams::MAX_TOKENS_RANGE)?,
            None => base.max_tokens,
        },
    })
}

fn llm_from_wire(llm: wire::LlmConfig) -> Checked<model::Llm> {
    let fields = EndpointFields {
        url: llm.url,
        api_key: llm.api_key,
        headers: llm.headers,
        timeout_ms: llm.timeout_ms,
        max_retries: llm.max_retries,
    };
    let provider = match llm.vendor.unwrap_or(wire::Vendor::Local) {
        wire::Vendor::Local => {
            fields.refuse_for_local("llm")?;
            let model = llm.model.unwrap_or_else(|| model::LlmProvider::DEFAULT_LOCAL_MODEL.to_owned());
            model::LlmProvider::Local { model: short_text("llm.model", model, 4096)? }
        }
        wire::Vendor::Openai => model::LlmProvider::OpenAiCompatible(
            fields.into_endpoint("llm", llm.model.unwrap_or_else(|| OPENAI_LLM_MODEL.to_owned()))?,
        ),
    };
    Ok(model::Llm {
        provider,
        system_messages: match llm.system_messages {
            Some(messages) => prompt_messages("llm.system_messages", messages)?,
            None => model::Llm::default_system_messages(),
        },
        params: llm_params("llm.params", llm.params.unwrap_or_default(), model::LlmParams::DEFAULT)?,
    })
}

/// The names the native API takes for `asr.vendor` and `tts.vendor` besides the registry's.
const BUILT_IN_SPEECH: [&str; 2] = ["local", "openai"];

/// A registry vendor for the group `group`: its endpoint fields and model are refused (they go in
/// its `params`), and the registry checks the rest.
fn registry_vendor(
    group: &str,
    kind: SpeechKind,
    vendor: &str,
    fields: &EndpointFields,
    model: bool,
    params: Option<serde_json::Map<String, serde_json::Value>>,
    scope: VendorScope<'_>,
) -> Checked<model::VendorChoice> {
    fields.refuse_for(group, vendor)?;
    if model {
        return Err(ApiError::invalid(
            format!("{group}.model"),
            format!(
                "{group}.model applies to vendors \"local\" and \"openai\"; put {vendor:?}'s model in {group}.params"
            ),
        ));
    }
    // The native API names the vendors it takes: it never substitutes.
    let scope = VendorScope { substitute_unsupported: false, ..scope };
    let (vendor_field, params_field) = VendorFields::lower(group);
    let at = VendorFields { vendor: &vendor_field, params: &params_field };
    match scope.choose(at, kind, vendor, params.unwrap_or_default(), &BUILT_IN_SPEECH, &mut Default::default())? {
        Chosen::Vendor(choice) => Ok(choice),
        Chosen::Substituted => Err(ApiError::internal("the native API never substitutes a vendor")),
    }
}

/// `params` belongs to a registry vendor: refused for `local` and `openai`.
fn refuse_params(
    group: &str,
    vendor: &str,
    params: &Option<serde_json::Map<String, serde_json::Value>>,
) -> Checked<()> {
    match params {
        Some(_) => Err(ApiError::invalid(
            format!("{group}.params"),
            format!("{group}.params applies to a speech vendor such as \"deepgram\"; {group}.vendor is {vendor:?}"),
        )),
        None => Ok(()),
    }
}

fn asr_from_wire(asr: wire::AsrConfig, scope: VendorScope<'_>) -> Checked<model::Asr> {
    let language = short_text(
        "asr.language",
        asr.language.clone().unwrap_or_else(|| model::Asr::DEFAULT_LANGUAGE.to_owned()),
        35,
    )?;
    if !language.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApiError::invalid("asr.language", "asr.language must be a BCP-47 tag such as \"en\" or \"en-US\""));
    }
    let fallback = fallbacks("asr", asr.fallback.clone(), |group, f| {
        if f.language.is_some() {
            return Err(ApiError::invalid(
                format!("{group}.language"),
                format!("{group}.language: a fallback hears the agent's asr.language"),
            ));
        }
        asr_provider(group, f, &language, scope)
    })?;
    let provider = asr_provider("asr", asr, &language, scope)?;
    Ok(model::Asr { provider, language, fallback })
}

/// A group's `fallback` list, each checked by `check` under its own name (`asr.fallback[0]`);
/// a fallback names no fallbacks of its own.
fn fallbacks<C, T>(group: &str, list: Option<Vec<C>>, check: impl Fn(&str, C) -> Checked<T>) -> Checked<Vec<T>>
where
    C: HasFallback,
{
    let list = list.unwrap_or_default();
    if list.len() > model::Asr::MAX_FALLBACKS {
        return Err(ApiError::invalid(
            format!("{group}.fallback"),
            format!("{group}.fallback lists {}; the most is {}", list.len(), model::Asr::MAX_FALLBACKS),
        ));
    }
    list.into_iter()
        .enumerate()
        .map(|(i, config)| {
            let at = format!("{group}.fallback[{i}]");
            if config.has_fallback() {
                return Err(ApiError::invalid(format!("{at}.fallback"), format!("{at}: a fallback has no fallbacks")));
            }
            check(&at, config)
        })
        .collect()
}

/// A speech group that may list fallbacks.
trait HasFallback {
    fn has_fallback(&self) -> bool;
}

impl HasFallback for wire::AsrConfig {
    fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }
}

impl HasFallback for wire::TtsConfig {
    fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }
}

/// One recogniser of the group named `group` (`asr`, `asr.fallback[0]`).
fn asr_provider(
    group: &str,
    asr: wire::AsrConfig,
    language: &str,
    scope: VendorScope<'_>,
) -> Checked<model::AsrProvider> {
    let fields = EndpointFields {
        url: asr.url,
        api_key: asr.api_key,
        headers: asr.headers,
        timeout_ms: asr.timeout_ms,
        max_retries: asr.max_retries,
    };
    let vendor = asr.vendor.unwrap_or_else(|| "local".to_owned());
    Ok(match vendor.as_str() {
        "local" => {
            refuse_params(group, &vendor, &asr.params)?;
            fields.refuse_for_local(group)?;
            let model = match asr.model.as_deref() {
                None => model::Asr::DEFAULT_LOCAL_MODEL,
                Some(name) => model::LocalAsrModel::ALL.into_iter().find(|m| m.as_str() == name).ok_or_else(|| {
                    ApiError::invalid(
                        format!("{group}.model"),
                        format!("unknown local ASR model {name:?}; expected \"whisper-tiny.en\" or \"whisper-base\""),
                    )
                })?,
            };
            if !model.understands(language) {
                let field = if group == "asr" { "asr.language".to_owned() } else { format!("{group}.model") };
                return Err(ApiError::invalid(
                    field,
                    format!(
                        "{} only understands English; use {group}.model \"whisper-base\" for {language:?}",
                        model.as_str()
                    ),
                ));
            }
            model::AsrProvider::Local { model }
        }
        "openai" => {
            refuse_params(group, &vendor, &asr.params)?;
            model::AsrProvider::OpenAiCompatible(
                fields.into_endpoint(group, asr.model.unwrap_or_else(|| OPENAI_ASR_MODEL.to_owned()))?,
            )
        }
        _ => model::AsrProvider::Vendor(registry_vendor(
            group,
            SpeechKind::Asr,
            &vendor,
            &fields,
            asr.model.is_some(),
            asr.params,
            scope,
        )?),
    })
}

fn tts_from_wire(tts: wire::TtsConfig, scope: VendorScope<'_>) -> Checked<model::Tts> {
    let speed = finite("tts.speed", tts.speed.unwrap_or(model::Tts::DEFAULT_SPEED), model::Tts::SPEED_RANGE)?;
    let fallback = fallbacks("tts", tts.fallback.clone(), |group, f| {
        if f.speed.is_some() {
            return Err(ApiError::invalid(
                format!("{group}.speed"),
                format!("{group}.speed: a fallback speaks at the agent's tts.speed"),
            ));
        }
        let (provider, voice) = tts_provider(group, f, scope)?;
        Ok(model::TtsFallback { provider, voice })
    })?;
    let (provider, voice) = tts_provider("tts", tts, scope)?;
    Ok(model::Tts { provider, voice, speed, fallback })
}

/// One synthesiser of the group named `group` (`tts`, `tts.fallback[0]`), and its voice.
fn tts_provider(group: &str, tts: wire::TtsConfig, scope: VendorScope<'_>) -> Checked<(model::TtsProvider, String)> {
    let fields = EndpointFields {
        url: tts.url,
        api_key: tts.api_key,
        headers: tts.headers,
        timeout_ms: tts.timeout_ms,
        max_retries: tts.max_retries,
    };
    let vendor = tts.vendor.unwrap_or_else(|| "local".to_owned());
    let voice_field = format!("{group}.voice");
    Ok(match vendor.as_str() {
        "local" => {
            refuse_params(group, &vendor, &tts.params)?;
            fields.refuse_for_local(group)?;
            if tts.model.is_some() {
                return Err(ApiError::invalid(
                    format!("{group}.model"),
                    format!("{group}.model applies only to vendor \"openai\"; choose a local voice with {group}.voice"),
                ));
            }
            let voice = tts.voice.unwrap_or_else(|| model::Tts::DEFAULT_LOCAL_VOICE.to_owned());
            (model::TtsProvider::Local, local_voice(&voice_field, voice)?)
        }
        "openai" => {
            refuse_params(group, &vendor, &tts.params)?;
            let endpoint = fields.into_endpoint(group, tts.model.unwrap_or_else(|| OPENAI_TTS_MODEL.to_owned()))?;
            let voice = tts.voice.unwrap_or_else(|| model::Tts::DEFAULT_REMOTE_VOICE.to_owned());
            (model::TtsProvider::OpenAiCompatible(endpoint), short_text(&voice_field, voice, 128)?)
        }
        _ => {
            if tts.voice.is_some() {
                return Err(ApiError::invalid(
                    voice_field,
                    format!(
                        "{vendor:?} takes its voice in {group}.params, in its own name for it (elevenlabs: voice_id)"
                    ),
                ));
            }
            let choice =
                registry_vendor(group, SpeechKind::Tts, &vendor, &fields, tts.model.is_some(), tts.params, scope)?;
            let voice = scope.voice(&choice).unwrap_or_default();
            (model::TtsProvider::Vendor(choice), voice)
        }
    })
}

fn turn_detection_from_wire(turn: wire::TurnDetectionConfig) -> Checked<model::TurnDetection> {
    use model::TurnDetection as T;
    let d = T::DEFAULT;
    let checked = T {
        vad_threshold: finite(
            "turn_detection.vad_threshold",
            turn.vad_threshold.unwrap_or(d.vad_threshold),
            T::VAD_THRESHOLD_RANGE,
        )?,
        min_speech_ms: in_range(
            "turn_detection.min_speech_ms",
            turn.min_speech_ms.unwrap_or(d.min_speech_ms),
            T::MIN_SPEECH_RANGE_MS,
        )?,
        prefix_padding_ms: in_range(
            "turn_detection.prefix_padding_ms",
            turn.prefix_padding_ms.unwrap_or(d.prefix_padding_ms),
            T::PREFIX_PADDING_RANGE_MS,
        )?,
        silence_duration_ms: in_range(
            "turn_detection.silence_duration_ms",
            turn.silence_duration_ms.unwrap_or(d.silence_duration_ms),
            T::SILENCE_DURATION_RANGE_MS,
        )?,
        max_wait_ms: in_range(
            "turn_detection.max_wait_ms",
            turn.max_wait_ms.unwrap_or(d.max_wait_ms),
            T::MAX_WAIT_RANGE_MS,
        )?,
    };
    if checked.max_wait_ms < checked.silence_duration_ms {
        return Err(ApiError::invalid(
            "turn_detection.max_wait_ms",
            format!(
                "turn_detection.max_wait_ms ({}) must be at least turn_detection.silence_duration_ms ({})",
                checked.max_wait_ms, checked.silence_duration_ms
            ),
        ));
    }
    Ok(checked)
}

fn interruption_from_wire(interruption: wire::InterruptionConfig) -> Checked<model::Interruption> {
    use model::Interruption as I;
    let mode = match interruption.mode.unwrap_or(wire::InterruptionMode::StartOfSpeech) {
        wire::InterruptionMode::StartOfSpeech => model::InterruptionMode::StartOfSpeech,
        wire::InterruptionMode::Keywords => model::InterruptionMode::Keywords,
    };
    let keywords = interruption.keywords.unwrap_or_default();
    match mode {
        model::InterruptionMode::Keywords if keywords.is_empty() => {
            return Err(ApiError::field(
                crate::error::ErrorCode::MissingField,
                "interruption.keywords",
                "interruption.keywords is required (at least one word) when interruption.mode is \"keywords\"",
            ));
        }
        model::InterruptionMode::StartOfSpeech if !keywords.is_empty() => {
            return Err(ApiError::invalid(
                "interruption.keywords",
                "interruption.keywords applies only to interruption.mode \"keywords\"",
            ));
        }
        _ => {}
    }
    if keywords.len() > I::MAX_KEYWORDS {
        return Err(ApiError::invalid(
            "interruption.keywords",
            format!("interruption.keywords has {} words; the maximum is {}", keywords.len(), I::MAX_KEYWORDS),
        ));
    }
    let keywords = keywords
        .into_iter()
        .enumerate()
        .map(|(i, word)| short_text(&format!("interruption.keywords[{i}]"), word, I::MAX_KEYWORD_CHARS))
        .collect::<Checked<Vec<_>>>()?;
    Ok(I {
        enabled: interruption.enabled.unwrap_or(true),
        mode,
        min_speech_ms: in_range(
            "interruption.min_speech_ms",
            interruption.min_speech_ms.unwrap_or(I::DEFAULT_MIN_SPEECH_MS),
            I::MIN_SPEECH_RANGE_MS,
        )?,
        keywords,
        when_disabled: match interruption.when_disabled.unwrap_or(wire::DisabledStrategy::Append) {
            wire::DisabledStrategy::Append => model::DisabledStrategy::Append,
            wire::DisabledStrategy::Ignore => model::DisabledStrategy::Ignore,
        },
    })
}

/// Checks an update against the agent's current configuration.
pub fn update_from_wire(request: wire::UpdateRequest, current: &AgentSpec) -> Checked<model::SpecUpdate> {
    let mut update = model::SpecUpdate::default();
    if let Some(llm) = request.llm {
        if let Some(messages) = llm.system_messages {
            update.system_messages = Some(prompt_messages("llm.system_messages", messages)?);
        }
        if let Some(params) = llm.params {
            update.llm_params = Some(llm_params("llm.params", params, current.llm.params)?);
        }
    }
    if let Some(tts) = request.tts {
        if let Some(voice) = tts.voice {
            update.voice = Some(match current.tts.provider {
                model::TtsProvider::Local => local_voice("tts.voice", voice)?,
                model::TtsProvider::OpenAiCompatible(_) | model::TtsProvider::Vendor(_) => {
                    short_text("tts.voice", voice, 128)?
                }
            });
        }
        if let Some(speed) = tts.speed {
            update.speed = Some(finite("tts.speed", speed, model::Tts::SPEED_RANGE)?);
        }
    }
    if update.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            crate::error::ErrorCode::MissingField,
            "nothing to update: send llm.system_messages, llm.params, tts.voice or tts.speed",
        ));
    }
    Ok(update)
}

pub fn speak_from_wire(request: wire::SpeakRequest) -> Checked<model::AgentCommand> {
    let priority = match request.priority.unwrap_or(wire::SpeakPriority::Interrupt) {
        wire::SpeakPriority::Interrupt => model::SpeakPriority::Interrupt,
        wire::SpeakPriority::Append => model::SpeakPriority::Append,
        wire::SpeakPriority::Ignore => model::SpeakPriority::Ignore,
    };
    Ok(model::AgentCommand::Speak {
        text: command_text(request.text)?,
        priority,
        interruptible: request.interruptible.unwrap_or(true),
    })
}

// ---- the model back into answers ----

pub fn status_to_wire(status: model::AgentStatus) -> wire::Status {
    use model::AgentStatus as S;
    match status {
        S::Idle => wire::Status::Idle,
        S::Starting => wire::Status::Starting,
        S::Running => wire::Status::Running,
        S::Stopping => wire::Status::Stopping,
        S::Stopped => wire::Status::Stopped,
        S::Recovering => wire::Status::Recovering,
        S::Failed => wire::Status::Failed,
    }
}

/// An agent record as an answer; `with_config` adds its full configuration.
pub fn agent_to_wire(record: &model::AgentRecord, with_config: bool) -> wire::Agent {
    wire::Agent {
        agent_id: record.id.to_string(),
        name: record.spec.name.to_string(),
        channel: record.spec.channel.to_string(),
        status: status_to_wire(record.state.status()),
        reason: record.state.reason().map(|r| wire::Reason { code: r.code().to_owned(), message: r.message() }),
        created_at: record.created_at.0,
        stopped_at: record.stopped_at.map(|t| t.0),
        config: with_config.then(|| spec_to_wire(&record.spec)),
        warnings: with_config.then(|| {
            let warnings = record.spec.warnings.iter();
            warnings.map(|w| wire::Warning { field: w.field.clone(), message: w.message.clone() }).collect()
        }),
    }
}

fn endpoint_to_wire(endpoint: &RemoteEndpoint) -> EndpointFields {
    EndpointFields {
        url: Some(endpoint.url.clone()),
        api_key: endpoint.api_key.as_ref().map(|_| Secret::REDACTED.to_owned()),
        headers: Some(endpoint.headers.iter().cloned().collect()),
        timeout_ms: Some(endpoint.timeout_ms),
        max_retries: Some(endpoint.max_retries),
    }
}

fn params_to_wire(params: model::LlmParams) -> wire::LlmParams {
    wire::LlmParams {
        temperature: Some(params.temperature),
        top_p: Some(params.top_p),
        max_tokens: Some(params.max_tokens),
    }
}

fn no_endpoint() -> EndpointFields {
    EndpointFields { url: None, api_key: None, headers: None, timeout_ms: None, max_retries: None }
}

/// One recogniser as the native API shows it (without the group's `language` and `fallback`).
fn asr_to_wire(provider: &model::AsrProvider) -> wire::AsrConfig {
    let (vendor, model, endpoint, params) = match provider {
        model::AsrProvider::Local { model } => ("local".to_owned(), Some(model.as_str().to_owned()), None, None),
        model::AsrProvider::OpenAiCompatible(e) => {
            ("openai".to_owned(), Some(e.model.clone()), Some(endpoint_to_wire(e)), None)
        }
        model::AsrProvider::Vendor(choice) => (choice.vendor.clone(), None, None, Some(choice.redacted_params())),
    };
    let endpoint = endpoint.unwrap_or_else(no_endpoint);
    wire::AsrConfig {
        vendor: Some(vendor),
        params,
        model,
        language: None,
        url: endpoint.url,
        api_key: endpoint.api_key,
        headers: endpoint.headers,
        timeout_ms: endpoint.timeout_ms,
        max_retries: endpoint.max_retries,
        fallback: None,
    }
}

/// One synthesiser as the native API shows it (without the group's `speed` and `fallback`); a
/// vendor's voice is in its params.
fn tts_to_wire(provider: &model::TtsProvider, voice: &str) -> wire::TtsConfig {
    let (vendor, model, endpoint, params) = match provider {
        model::TtsProvider::Local => ("local".to_owned(), None, None, None),
        model::TtsProvider::OpenAiCompatible(e) => {
            ("openai".to_owned(), Some(e.model.clone()), Some(endpoint_to_wire(e)), None)
        }
        model::TtsProvider::Vendor(choice) => (choice.vendor.clone(), None, None, Some(choice.redacted_params())),
    };
    let voice = match provider {
        model::TtsProvider::Vendor(_) => None,
        _ => Some(voice.to_owned()),
    };
    let endpoint = endpoint.unwrap_or_else(no_endpoint);
    wire::TtsConfig {
        vendor: Some(vendor),
        params,
        model,
        voice,
        speed: None,
        url: endpoint.url,
        api_key: endpoint.api_key,
        headers: endpoint.headers,
        timeout_ms: endpoint.timeout_ms,
        max_retries: endpoint.max_retries,
        fallback: None,
    }
}

/// The configuration as the native API shows it: every default filled in, secrets redacted.
pub fn spec_to_wire(spec: &AgentSpec) -> wire::AgentConfig {
    let (llm_vendor, llm_model, llm_endpoint) = match &spec.llm.provider {
        model::LlmProvider::Local { model } => (wire::Vendor::Local, model.clone(), None),
        model::LlmProvider::OpenAiCompatible(e) => (wire::Vendor::Openai, e.model.clone(), Some(endpoint_to_wire(e))),
    };
    let llm_endpoint = llm_endpoint.unwrap_or_else(no_endpoint);
    let t = &spec.turn_detection;
    let i = &spec.interruption;
    let (tools, tool_options) = tools_to_wire(&spec.tools);
    wire::AgentConfig {
        name: spec.name.to_string(),
        channel: spec.channel.to_string(),
        agent_uid: Some(spec.agent_uid.to_string()),
        remote_uids: Some(match &spec.remote_uids {
            model::RemoteUids::Any => vec!["*".to_owned()],
            model::RemoteUids::Only(uids) => uids.iter().map(ToString::to_string).collect(),
        }),
        idle_timeout: Some(spec.idle_timeout.as_secs()),
        llm: Some(wire::LlmConfig {
            vendor: Some(llm_vendor),
            model: Some(llm_model),
            url: llm_endpoint.url,
            api_key: llm_endpoint.api_key,
            headers: llm_endpoint.headers,
            timeout_ms: llm_endpoint.timeout_ms,
            max_retries: llm_endpoint.max_retries,
            system_messages: Some(
                spec.llm
                    .system_messages
                    .iter()
                    .map(|m| wire::PromptMessage {
                        role: match m.role {
                            model::PromptRole::System => wire::PromptRole::System,
                            model::PromptRole::User => wire::PromptRole::User,
                            model::PromptRole::Assistant => wire::PromptRole::Assistant,
                        },
                        content: m.content.clone(),
                    })
                    .collect(),
            ),
            params: Some(params_to_wire(spec.llm.params)),
        }),
        asr: Some(wire::AsrConfig {
            language: Some(spec.asr.language.clone()),
            fallback: (!spec.asr.fallback.is_empty()).then(|| spec.asr.fallback.iter().map(asr_to_wire).collect()),
            ..asr_to_wire(&spec.asr.provider)
        }),
        tts: Some(wire::TtsConfig {
            speed: Some(spec.tts.speed),
            fallback: (!spec.tts.fallback.is_empty())
                .then(|| spec.tts.fallback.iter().map(|f| tts_to_wire(&f.provider, &f.voice)).collect()),
            ..tts_to_wire(&spec.tts.provider, &spec.tts.voice)
        }),
        turn_detection: Some(wire::TurnDetectionConfig {
            vad_threshold: Some(t.vad_threshold),
            min_speech_ms: Some(t.min_speech_ms),
            prefix_padding_ms: Some(t.prefix_padding_ms),
            silence_duration_ms: Some(t.silence_duration_ms),
            max_wait_ms: Some(t.max_wait_ms),
        }),
        interruption: Some(wire::InterruptionConfig {
            enabled: Some(i.enabled),
            mode: Some(match i.mode {
                model::InterruptionMode::StartOfSpeech => wire::InterruptionMode::StartOfSpeech,
                model::InterruptionMode::Keywords => wire::InterruptionMode::Keywords,
            }),
            min_speech_ms: Some(i.min_speech_ms),
            keywords: (!i.keywords.is_empty()).then(|| i.keywords.clone()),
            when_disabled: Some(match i.when_disabled {
                model::DisabledStrategy::Append => wire::DisabledStrategy::Append,
                model::DisabledStrategy::Ignore => wire::DisabledStrategy::Ignore,
            }),
        }),
        greeting: spec
            .greeting
            .as_ref()
            .map(|g| wire::GreetingConfig { text: g.text.clone(), interruptible: Some(g.interruptible) }),
        failure_message: spec.failure_message.clone(),
        max_history: Some(spec.max_history),
        silence_prompt: spec.silence_prompt.as_ref().map(|p| wire::SilencePromptConfig {
            timeout_ms: p.timeout_ms,
            action: Some(match p.action {
                model::SilenceAction::Speak => wire::SilenceAction::Speak,
                model::SilenceAction::Think => wire::SilenceAction::Think,
            }),
            content: p.content.clone(),
        }),
        callbacks: spec.callbacks.as_ref().map(|c| wire::CallbacksConfig {
            url: c.url.clone(),
            secret: c.secret.as_ref().map(|_| Secret::REDACTED.to_owned()),
        }),
        tools,
        tool_options,
    }
}

pub fn history_to_wire(id: &model::AgentId, entries: Vec<model::HistoryEntry>) -> wire::History {
    wire::History {
        agent_id: id.to_string(),
        history: entries
            .into_iter()
            .map(|e| wire::HistoryItem {
                turn_id: e.turn_id,
                role: e.speaker.as_str().to_owned(),
                content: e.content,
                interrupted: e.interrupted,
                at: e.at.0,
            })
            .collect(),
    }
}

fn snake_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

pub fn turns_to_wire(id: &model::AgentId, turns: Vec<model::TurnRecord>) -> wire::Turns {
    wire::Turns {
        agent_id: id.to_string(),
        turns: turns
            .into_iter()
            .map(|t| wire::Turn {
                turn_id: t.turn_id,
                start: snake_name(&t.start),
                end: snake_name(&t.end),
                started_at: t.started_at.0,
                ended_at: t.ended_at.0,
                metrics: wire::TurnMetrics {
                    eou_delay_ms: t.metrics.eou_delay_ms,
                    asr_ttlw_ms: t.metrics.asr_ttlw_ms,
                    llm_ttft_ms: t.metrics.llm_ttft_ms,
                    llm_ttfs_ms: t.metrics.llm_ttfs_ms,
                    tts_ttfb_ms: t.metrics.tts_ttfb_ms,
                    engine_overhead_ms: t.metrics.engine_overhead_ms,
                    e2e_ms: t.metrics.e2e_ms,
                    tool_ms: t.metrics.tool_ms,
                },
            })
            .collect(),
    }
}
