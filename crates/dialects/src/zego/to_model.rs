//! ZEGO's shapes into the model: the `LLM`, `TTS` and `ASR` groups into an [`AgentSpec`], a
//! template checked by applying it, `CreateAgentInstance`'s body into the spec of the instance,
//! `UpdateAgentInstance`'s into a change of a running one, and `Priority` into a [`SpeakPriority`]. What this server cannot honour is accepted with a
//! warning kept with the instance (its `GET /v1/agents/{id}` shows them) where ignoring it is
//! harmless, and refused where the caller relies on it; `docs/dialects/zego.md` lists which.

use colloquy_http::apps::{App, ConfiguredAgent};
use colloquy_http::fields;
use colloquy_http::fields::Warnings;
use colloquy_http::vendors::{Chosen, VendorFields, VendorScope};
use colloquy_model as model;
use colloquy_model::{
    AgentName, AgentSpec, ChannelName, Dialect, IdleTimeout, LlmParams, LlmProvider, Origin, PromptMessage, PromptRole,
    RemoteUids, SpeakPriority, SpecUpdate, SpeechKind, Uid,
};
use serde_json::{Map, Value};

use super::errors::{ZegoError, ZegoResult, codes};
use super::fields::{agent_id, parse_group, required, zego_id};
use super::wire;
use super::{DEFAULT_MAX_IDLE_SECS, DEFAULT_WINDOW_SIZE, MAX_HISTORY_MESSAGES, MAX_WINDOW_SIZE};

// ---------------------------------------------------------------------------------------------
// Config groups into the spec

/// Applies a template's `LLM`, `TTS` and `ASR` groups to `spec`, each read with errors named after
/// its group.
fn apply_groups(
    spec: &mut AgentSpec,
    groups: &wire::SavedTemplate,
    scope: VendorScope<'_>,
    w: &mut Warnings,
) -> ZegoResult<()> {
    apply_llm(spec, &parse_group("LLM", &groups.llm)?, w)?;
    apply_tts(spec, &parse_group("TTS", &groups.tts)?, scope, w)?;
    apply_asr(spec, &parse_group("ASR", &groups.asr)?, scope, w)?;
    Ok(())
}

/// ZEGO's `LLM.Url` is the full chat-completions URL; ours is the base the path is appended to.
fn llm_base_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    trimmed.strip_suffix("/chat/completions").unwrap_or(trimmed).to_owned()
}

/// The `LLM` group into `spec`: the endpoint, the system prompt and the parameters.
fn apply_llm(spec: &mut AgentSpec, llm: &wire::LlmConfig, w: &mut Warnings) -> ZegoResult<()> {
    if let Some(url) = &llm.url {
        let model = llm.model.clone().ok_or_else(|| ZegoError::param("LLM.Model is required with LLM.Url"))?;
        let endpoint = fields::EndpointFields {
            url: Some(llm_base_url(url)),
            api_key: llm.api_key.clone(),
            headers: None,
            timeout_ms: None,
            max_retries: None,
        }
        .into_endpoint("LLM", model)
        .map_err(|e| ZegoError::param(format!("LLM.Url or LLM.Model: {}", e.message)))?;
        spec.llm.provider = LlmProvider::OpenAiCompatible(endpoint);
    } else if llm.model.is_some() || llm.api_key.is_some() {
        w.ignored("LLM.Model", "LLM.Model and LLM.ApiKey without LLM.Url: the embedded model answers");
    }
    if let Some(vendor) = &llm.vendor
        && vendor != "OpenAIChat"
    {
        w.ignored("LLM.Vendor", format!("{vendor:?}: only the OpenAI chat-completions protocol is spoken"));
    }
    if let Some(prompt) = &llm.system_prompt {
        let prompt = fields::text("LLM.SystemPrompt", prompt.clone())?;
        set_system_prompt(&mut spec.llm.system_messages, prompt);
    }
    spec.llm.params = llm_params(spec.llm.params, llm, w)?;
    if llm.add_agent_info == Some(true) || llm.agent_extra_info.is_some() {
        w.ignored("LLM.AddAgentInfo", "agent info is not added to LLM requests; ignored");
    }
    Ok(())
}

/// `params` with the `LLM` group's `Temperature`, `TopP` and `Params.max_tokens`.
fn llm_params(mut params: LlmParams, llm: &wire::LlmConfig, w: &mut Warnings) -> ZegoResult<LlmParams> {
    if let Some(t) = llm.temperature {
        params.temperature = fields::finite("LLM.Temperature", t, LlmParams::TEMPERATURE_RANGE)?;
    }
    if let Some(p) = llm.top_p {
        params.top_p = fields::finite("LLM.TopP", p, LlmParams::TOP_P_RANGE)?;
    }
    for (key, value) in llm.params.iter().flatten() {
        if key == "max_tokens" {
            let max = value
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| ZegoError::param("LLM.Params.max_tokens must be a positive integer"))?;
            params.max_tokens = fields::in_range("LLM.Params.max_tokens", max, LlmParams::MAX_TOKENS_RANGE)?;
        } else {
            w.ignored(format!("LLM.Params.{key}"), "LLM parameter not supported; ignored");
        }
    }
    Ok(params)
}

/// Replaces the first system message (or puts one first).
fn set_system_prompt(messages: &mut Vec<PromptMessage>, prompt: String) {
    match messages.iter_mut().find(|m| m.role == PromptRole::System) {
        Some(message) => message.content = prompt,
        None => messages.insert(0, PromptMessage { role: PromptRole::System, content: prompt }),
    }
}

/// The local voice named in `TTS.Params.voice`, when it is one.
fn local_voice(tts: &wire::TtsConfig) -> Option<String> {
    let voice = tts.params.as_ref()?.get("voice")?.as_str()?;
    fields::LOCAL_VOICES.contains(&voice).then(|| voice.to_owned())
}

/// A ZEGO `Vendor` as the registry names vendors (`ElevenLabs` is `elevenlabs`, ZEGO's
/// `AliyunParaformer` is `paraformer`); a vendor the registry does not have keeps the caller's
/// spelling, for the refusal to name.
fn registry_name(vendor: &str, kind: SpeechKind, scope: VendorScope<'_>) -> String {
    let lower = vendor.to_ascii_lowercase();
    let name = match lower.as_str() {
        "aliyunparaformer" => "paraformer".to_owned(),
        "aliyuncosyvoice" => "cosyvoice".to_owned(),
        _ => lower,
    };
    if scope.vendors.names(kind).contains(&name) { name } else { vendor.to_owned() }
}

/// The `TTS` group into `spec`: a vendor of the registry with its `Params`, or an embedded voice.
fn apply_tts(spec: &mut AgentSpec, tts: &wire::TtsConfig, scope: VendorScope<'_>, w: &mut Warnings) -> ZegoResult<()> {
    if let Some(vendor) = &tts.vendor {
        let at = VendorFields { vendor: "TTS.Vendor", params: "TTS.Params" };
        let params = tts.params.clone().unwrap_or_default();
        match scope.choose(at, SpeechKind::Tts, &registry_name(vendor, SpeechKind::Tts, scope), params, &[], w)? {
            Chosen::Vendor(choice) => {
                spec.tts.voice = scope.voice(&choice).unwrap_or_default();
                spec.tts.provider = model::TtsProvider::Vendor(choice);
            }
            Chosen::Substituted => {
                if tts.params.is_some() {
                    w.ignored("TTS.Params", "the vendor's parameters do not apply to the embedded voice");
                }
            }
        }
    } else {
        match local_voice(tts) {
            Some(voice) => spec.tts.voice = voice,
            None if tts.params.is_some() => {
                return Err(ZegoError::param("TTS.Params without TTS.Vendor: name the vendor they are for"));
            }
            None => {}
        }
    }
    if tts.filter_text.is_some() || tts.terminator_text.is_some() {
        w.ignored("TTS.FilterText", "TTS text filters are not supported; ignored");
    }
    Ok(())
}

/// The `ASR` group into `spec`: a vendor of the registry with its `Params`, and the turn
/// detection's silence and wait.
fn apply_asr(spec: &mut AgentSpec, asr: &wire::AsrConfig, scope: VendorScope<'_>, w: &mut Warnings) -> ZegoResult<()> {
    let mut vendor_runs = false;
    if let Some(vendor) = &asr.vendor {
        let at = VendorFields { vendor: "ASR.Vendor", params: "ASR.Params" };
        let params = asr.params.clone().unwrap_or_default();
        match scope.choose(at, SpeechKind::Asr, &registry_name(vendor, SpeechKind::Asr, scope), params, &[], w)? {
            Chosen::Vendor(choice) => {
                spec.asr.provider = model::AsrProvider::Vendor(choice);
                vendor_runs = true;
            }
            Chosen::Substituted => {
                if asr.params.is_some() {
                    w.ignored("ASR.Params", "the vendor's parameters do not apply to the embedded model");
                }
            }
        }
    } else if asr.params.is_some() {
        return Err(ZegoError::param("ASR.Params without ASR.Vendor: name the vendor they are for"));
    }
    if asr.hot_word.is_some() {
        let why = if vendor_runs {
            "ASR.HotWord is not passed to the vendor; set the vendor's own boost words in ASR.Params"
        } else {
            "hot words are not supported by the embedded ASR; ignored"
        };
        w.ignored("ASR.HotWord", why);
    }
    let td = &mut spec.turn_detection;
    if let Some(ms) = asr.vad_silence_segmentation {
        td.silence_duration_ms =
            fields::in_range("ASR.VADSilenceSegmentation", ms, model::TurnDetection::SILENCE_DURATION_RANGE_MS)?;
    }
    if let Some(ms) = asr.pause_interval {
        td.max_wait_ms = fields::in_range("ASR.PauseInterval", ms, model::TurnDetection::MAX_WAIT_RANGE_MS)?;
    }
    td.max_wait_ms = td.max_wait_ms.max(td.silence_duration_ms);
    Ok(())
}

/// Checks a template's groups by applying them to a default spec.
pub(crate) fn check_template(saved: &wire::SavedTemplate, scope: VendorScope<'_>) -> ZegoResult<()> {
    let mut spec = AgentSpec::with_defaults(
        AgentName::new("check").map_err(|e| ZegoError::param(e.0))?,
        ChannelName::new("check").map_err(|e| ZegoError::param(e.0))?,
    );
    apply_groups(&mut spec, saved, scope, &mut Warnings::default())
}

// ---------------------------------------------------------------------------------------------
// Instances

/// Where a `CreateAgentInstance` puts its agent, read before its template is loaded.
pub(crate) struct Placement {
    /// The ids, kept in the instance's origin (its `CallbackConfig` is set by [`instance_spec`]).
    origin: wire::OriginData,
    channel: ChannelName,
    welcome: Option<String>,
}

impl Placement {
    /// The `AgentId` of the template the instance is made from.
    pub(crate) fn template_id(&self) -> &str {
        &self.origin.agent_id
    }
}

/// `CreateAgentInstance`'s `AgentId`, `UserId` and `RTC` group, checked.
pub(crate) fn placement(body: &mut wire::CreateInstance) -> ZegoResult<Placement> {
    let template_id = agent_id(body.agent_id.take())?;
    let user_id = required("UserId", body.user_id.take())?;
    zego_id("UserId", &user_id, 32, "-_")?;
    let rtc = body.rtc.take().ok_or_else(|| ZegoError::param("RTC is required"))?;
    let room_id = required("RTC.RoomId", rtc.room_id)?;
    zego_id("RTC.RoomId", &room_id, 128, "-_.")?;
    let agent_stream_id = required("RTC.AgentStreamId", rtc.agent_stream_id)?;
    zego_id("RTC.AgentStreamId", &agent_stream_id, 128, "-_.")?;
    let agent_user_id = required("RTC.AgentUserId", rtc.agent_user_id)?;
    zego_id("RTC.AgentUserId", &agent_user_id, 32, "-_.")?;
    let user_stream_id = rtc.user_stream_id.filter(|s| !s.is_empty());
    if let Some(stream) = &user_stream_id {
        zego_id("RTC.UserStreamId", stream, 128, "-_.")?;
    }
    if agent_user_id == user_id {
        return Err(ZegoError::param("RTC.AgentUserId must differ from UserId"));
    }
    let channel = ChannelName::new(room_id.clone())
        .map_err(|e| ZegoError::param(format!("RTC.RoomId: {} (this server's room ids are at most 64 bytes)", e.0)))?;
    let origin = wire::OriginData {
        agent_id: template_id,
        user_id,
        room_id,
        agent_user_id,
        agent_stream_id,
        user_stream_id,
        callback_config: wire::CallbackConfig::default(),
    };
    Ok(Placement { origin, channel, welcome: rtc.welcome_message.filter(|w| !w.is_empty()) })
}

/// The spec of a `CreateAgentInstance`: its template's groups overridden by the body's, the
/// welcome message, the message history, the callbacks wanted and the advanced settings.
pub(crate) fn instance_spec(
    app: &App,
    placement: Placement,
    mut template: wire::SavedTemplate,
    configured: Option<&ConfiguredAgent>,
    body: wire::CreateInstance,
    scope: VendorScope<'_>,
) -> ZegoResult<AgentSpec> {
    let Placement { mut origin, channel, welcome } = placement;
    let mut spec = AgentSpec::with_defaults(instance_name(&origin.room_id, &origin.agent_user_id)?, channel);
    spec.agent_uid =
        Uid::new(origin.agent_user_id.clone()).map_err(|e| ZegoError::param(format!("RTC.AgentUserId: {}", e.0)))?;
    spec.remote_uids = RemoteUids::Only(vec![
        Uid::new(origin.user_id.clone()).map_err(|e| ZegoError::param(format!("UserId: {}", e.0)))?,
    ]);
    spec.max_history = DEFAULT_WINDOW_SIZE;
    spec.idle_timeout = IdleTimeout::AfterSecs(DEFAULT_MAX_IDLE_SECS);
    if let Some(agent) = configured {
        agent.profile.apply_to(&mut spec);
    }
    let mut w = Warnings::default();
    template.merge_groups(body.llm, body.tts, body.asr);
    apply_groups(&mut spec, &template, scope, &mut w)?;
    if let Some(welcome) = welcome {
        let text = fields::text("RTC.WelcomeMessage", welcome)?;
        spec.greeting = Some(model::Greeting { text, interruptible: true });
    }
    apply_history(&mut spec, body.message_history)?;
    origin.callback_config = callback_config(body.callback_config.unwrap_or_default(), &mut w)?;
    apply_advanced(&mut spec, body.advanced_config)?;
    spec.callbacks = app.callbacks(configured);
    spec.warnings = w.into_vec();
    spec.origin = Origin {
        dialect: Dialect::Zego,
        data: Some(serde_json::to_string(&origin).map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.to_string()))?),
    };
    Ok(spec)
}

/// `MessageHistory`: the window size, and the messages the conversation starts with.
fn apply_history(spec: &mut AgentSpec, history: Option<wire::MessageHistory>) -> ZegoResult<()> {
    let Some(history) = history else { return Ok(()) };
    if history.sync_mode.unwrap_or(1) == 0 && history.zim.is_some() {
        return Err(ZegoError::param(
            "MessageHistory.SyncMode 0 (sync from ZIM) is not supported by this server; use SyncMode 1 with Messages",
        ));
    }
    if let Some(size) = history.window_size {
        spec.max_history = fields::in_range("MessageHistory.WindowSize", size, 0..=MAX_WINDOW_SIZE)?;
    }
    let messages = history.messages.unwrap_or_default();
    if messages.len() > MAX_HISTORY_MESSAGES {
        return Err(ZegoError::param(format!(
            "MessageHistory.Messages has {} entries; the maximum is {MAX_HISTORY_MESSAGES}",
            messages.len()
        )));
    }
    if spec.llm.system_messages.len() + messages.len() > model::Llm::MAX_SYSTEM_MESSAGES + MAX_HISTORY_MESSAGES {
        return Err(ZegoError::param("MessageHistory.Messages: too many messages"));
    }
    for (i, message) in messages.into_iter().enumerate() {
        let field = format!("MessageHistory.Messages[{i}].Role");
        let role = match fields::prompt_role(&field, &message.role)? {
            PromptRole::System => {
                return Err(ZegoError::param(format!("{field} is \"system\"; it must be \"user\" or \"assistant\"")));
            }
            role => role,
        };
        let content = fields::text(&format!("MessageHistory.Messages[{i}].Content"), message.content)?;
        spec.llm.system_messages.push(PromptMessage { role, content });
    }
    Ok(())
}

/// `CallbackConfig`, each flag checked.
fn callback_config(config: wire::CallbackConfig, w: &mut Warnings) -> ZegoResult<wire::CallbackConfig> {
    flag("CallbackConfig.ASRResult", config.asr_result)?;
    flag("CallbackConfig.LLMResult", config.llm_result)?;
    flag("CallbackConfig.Interrupted", config.interrupted)?;
    flag("CallbackConfig.UserSpeakAction", config.user_speak_action)?;
    flag("CallbackConfig.AgentSpeakAction", config.agent_speak_action)?;
    if flag("CallbackConfig.UserAudioData", config.user_audio_data)? == 1 {
        w.ignored("CallbackConfig.UserAudioData", "user audio callbacks are not sent; ignored");
    }
    Ok(config)
}

/// `AdvancedConfig`: whether the user can interrupt the agent, and the room idle time.
fn apply_advanced(spec: &mut AgentSpec, advanced: Option<wire::AdvancedConfig>) -> ZegoResult<()> {
    if let Some(advanced) = advanced {
        if let Some(mode) = advanced.interrupt_mode {
            spec.interruption.enabled = match mode {
                0 => true,
                1 => false,
                other => {
                    return Err(ZegoError::param(format!(
                        "AdvancedConfig.InterruptMode is {other}; it must be 0 or 1"
                    )));
                }
            };
        }
        if let Some(secs) = advanced.max_idle_time {
            let secs = fields::in_range("AdvancedConfig.MaxIdleTime", secs, 1..=IdleTimeout::MAX_SECS)?;
            spec.idle_timeout = IdleTimeout::AfterSecs(secs);
        }
    }
    Ok(())
}

/// The agent name of the instance of `agent_user_id` in `room`: unique per room and agent user, so
/// a second one is refused while the first lives.
fn instance_name(room: &str, agent_user_id: &str) -> ZegoResult<AgentName> {
    use sha1::Digest;
    let digest =
        sha1::Sha1::new().chain_update(room.as_bytes()).chain_update([0]).chain_update(agent_user_id).finalize();
    AgentName::new(format!("zego.{}", &hex::encode(digest)[..40])).map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.0))
}

/// A `CallbackConfig` flag: 0 or 1.
fn flag(field: &str, value: u8) -> ZegoResult<u8> {
    if value > 1 {
        return Err(ZegoError::param(format!("{field} is {value}; it must be 0 or 1")));
    }
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// A running instance

/// `UpdateAgentInstance`'s groups as a change to the running `spec`: only `LLM.SystemPrompt`,
/// `LLM.Temperature`, `LLM.TopP`, `LLM.Params.max_tokens` and an embedded voice can change.
pub(crate) fn running_update(
    spec: &AgentSpec,
    llm: Option<Map<String, Value>>,
    tts: Option<Map<String, Value>>,
    asr: Option<Map<String, Value>>,
) -> ZegoResult<SpecUpdate> {
    let mut update = SpecUpdate::default();
    let mut w = Warnings::default();
    if let Some(llm) = llm {
        let llm: wire::LlmConfig = parse_group("LLM", &llm)?;
        refuse_endpoint_change(spec, &llm)?;
        if let Some(prompt) = llm.system_prompt.clone() {
            let prompt = fields::text("LLM.SystemPrompt", prompt)?;
            let mut messages = spec.llm.system_messages.clone();
            set_system_prompt(&mut messages, prompt);
            update.system_messages = Some(messages);
        }
        let params = llm_params(spec.llm.params, &llm, &mut w)?;
        if params != spec.llm.params {
            update.llm_params = Some(params);
        }
    }
    if let Some(tts) = tts {
        let tts: wire::TtsConfig = parse_group("TTS", &tts)?;
        match local_voice(&tts) {
            Some(voice) => update.voice = Some(voice),
            None => w.ignored("TTS", "only an embedded voice in TTS.Params.voice can be set"),
        }
    }
    if asr.is_some() {
        w.ignored("ASR", "ASR settings cannot change while the instance runs");
    }
    update.warnings = w.into_vec();
    Ok(update)
}

/// ZEGO's update "covers" the `LLM` group, and its own sample sends the instance's `Url`, `ApiKey`
/// and `Model` again: those are accepted when they are the instance's. A real change of endpoint
/// or model cannot be made while the instance runs, and is refused naming the field.
fn refuse_endpoint_change(spec: &AgentSpec, llm: &wire::LlmConfig) -> ZegoResult<()> {
    let current = match &spec.llm.provider {
        LlmProvider::OpenAiCompatible(endpoint) => Some(endpoint),
        LlmProvider::Local { .. } => None,
    };
    let unchanged = [
        ("LLM.Url", llm.url.as_deref().map(|url| current.is_some_and(|e| e.url == llm_base_url(url)))),
        (
            "LLM.ApiKey",
            llm.api_key
                .as_deref()
                .map(|key| current.is_some_and(|e| e.api_key.as_ref().is_some_and(|k| k.expose() == key))),
        ),
        ("LLM.Model", llm.model.as_deref().map(|model| current.is_some_and(|e| e.model == model))),
    ];
    for (field, same) in unchanged {
        if same == Some(false) {
            return Err(ZegoError::param(format!(
                "{field} cannot change while the instance runs (it may be sent again unchanged); only \
                 LLM.SystemPrompt, LLM.Temperature, LLM.TopP and LLM.Params.max_tokens can"
            )));
        }
    }
    Ok(())
}

/// ZEGO's `Priority` and `SamePriorityOption` as our speak priority:
/// High → Interrupt; Medium (default) with ClearAndInterrupt (default) → Interrupt; Medium with
/// Enqueue → Append; Low with Enqueue → Append; Low with ClearAndInterrupt → Ignore (said only when
/// the agent is idle).
pub(crate) fn speak_priority(priority: Option<&str>, option: Option<&str>) -> ZegoResult<SpeakPriority> {
    let enqueue = match option.unwrap_or("ClearAndInterrupt") {
        "ClearAndInterrupt" => false,
        "Enqueue" => true,
        other => {
            return Err(ZegoError::param(format!(
                "SamePriorityOption is {other:?}; it must be ClearAndInterrupt or Enqueue"
            )));
        }
    };
    Ok(match (priority.unwrap_or("Medium"), enqueue) {
        ("High", _) => SpeakPriority::Interrupt,
        ("Medium", false) => SpeakPriority::Interrupt,
        ("Medium" | "Low", true) => SpeakPriority::Append,
        ("Low", false) => SpeakPriority::Ignore,
        (other, _) => {
            return Err(ZegoError::param(format!("Priority is {other:?}; it must be High, Medium or Low")));
        }
    })
}
