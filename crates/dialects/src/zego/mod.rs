//! ZEGOCLOUD AI Agent server API: `POST /?Action=<Action>&AppId=…&SignatureNonce=…&Timestamp=…
//! &SignatureVersion=2.0&Signature=…` with a JSON body, answered with `{Code, Message, RequestId,
//! Data}` and HTTP 200. See `docs/dialects/zego.md` for the actions, fields and choices.

mod auth;
pub mod errors;
pub mod instances;
mod routes;
pub mod signature;
pub mod webhooks;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use colloquy_model as model;
use colloquy_model::{
    AgentCommand, AgentEvent, AgentId, AgentName, AgentSpec, AgentStatus, AppId, ChannelName, ConversationState,
    Dialect, IdleTimeout, LlmParams, LlmProvider, Origin, PromptMessage, PromptRole, RemoteUids, SpeakPriority,
    SpecUpdate, Uid,
};
use colloquy_store::{OutgoingWebhook, Store};
use colloquy_supervisor::SupervisorError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::RawRequest;
use colloquy_http::AppState;
use colloquy_http::apps::App;
use colloquy_http::error::ApiError;
use colloquy_http::fields;
use errors::{ZegoError, ZegoResult, codes};

/// The templates' dialect key in the records.
const TEMPLATES: &str = "zego";
/// Where the time of each instance's last `ResetAgentInstanceMsgList` is kept (one row per
/// instance, in the templates table).
const RESETS: &str = "zego.msgreset";
/// ZEGO's default: at most 10 agent instances per account at once.
pub const MAX_INSTANCES: usize = 10;
/// How far a request's `Timestamp` may be from our clock.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 600;
/// ZEGO's default room idle time before an instance is deleted (callback code 1202).
pub const DEFAULT_MAX_IDLE_SECS: u32 = 120;
/// `MessageHistory.WindowSize`: default and range.
pub const DEFAULT_WINDOW_SIZE: u32 = 20;
pub const MAX_WINDOW_SIZE: u32 = 100;
/// The most `MessageHistory.Messages`.
pub const MAX_HISTORY_MESSAGES: usize = 100;

/// ZEGO's dialect, with what it keeps between requests: the instance limit under racing creates,
/// and each instance's callback `Sequence`.
#[derive(Debug, Default)]
pub struct Zego {
    instances: instances::InstanceGate,
    sequences: webhooks::Sequences,
}

impl Zego {
    /// `POST /zego?Action=…` and `POST /zego/?Action=…` (`POST /?Action=…` is shared with
    /// Alibaba's OpenAPI, and routed by the crate).
    pub fn routes(self: &Arc<Zego>) -> Router<AppState> {
        routes::router(Arc::clone(self))
    }

    /// The entry point for every action.
    pub async fn action(&self, state: AppState, request: RawRequest) -> Response {
        routes::action(self, &state, &request).await
    }

    /// The callbacks of `event`.
    pub async fn webhooks(&self, event: &AgentEvent, store: &Store) -> Vec<OutgoingWebhook> {
        webhooks::format(event, store, &self.sequences).await
    }
}

/// Parses a body; an empty body counts as `{}`.
fn parse<T: DeserializeOwned>(body: &[u8]) -> ZegoResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(colloquy_http::extract::parse_json(b"{}")?);
    }
    Ok(colloquy_http::extract::parse_json(body)?)
}

/// Parses one config group (`LLM`, `TTS`, `ASR`) with errors named after the group.
fn parse_group<T: DeserializeOwned + Default>(group: &str, value: &Map<String, Value>) -> ZegoResult<T> {
    if value.is_empty() {
        return Ok(T::default());
    }
    let bytes = serde_json::to_vec(value).map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.to_string()))?;
    colloquy_http::extract::parse_json(&bytes).map_err(|e: ApiError| {
        let field = e.field.clone().map(|f| format!("{group}.{f}")).unwrap_or_else(|| group.to_owned());
        ZegoError::param(format!("{field}: {}", e.message))
    })
}

fn required(field: &str, value: Option<String>) -> ZegoResult<String> {
    match value {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ZegoError::param(format!("{field} is required"))),
    }
}

/// ZEGO's id rules: ASCII letters, digits and the characters in `extra`, at most `max` bytes.
fn zego_id(field: &str, value: &str, max: usize, extra: &str) -> ZegoResult<()> {
    if value.len() > max {
        return Err(ZegoError::param(format!("{field} is {} bytes long; the maximum is {max}", value.len())));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || extra.contains(*c))) {
        let allowed = extra.chars().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
        return Err(ZegoError::param(format!(
            "{field} contains {bad:?}; only numbers, English letters and {allowed} are allowed"
        )));
    }
    Ok(())
}

fn instance_id(value: Option<String>) -> ZegoResult<AgentId> {
    let id = required("AgentInstanceId", value)?;
    zego_id("AgentInstanceId", &id, 128, "-_")?;
    Ok(AgentId::from_string(id))
}

fn agent_id(value: Option<String>) -> ZegoResult<String> {
    let id = required("AgentId", value)?;
    zego_id("AgentId", &id, 128, "-_.")?;
    Ok(id)
}

// ---------------------------------------------------------------------------------------------
// Agent templates

async fn register_agent(state: &AppState, app: &AppId, body: wire::AgentTemplate) -> ZegoResult<Value> {
    let id = agent_id(body.agent_id)?;
    let saved = wire::SavedTemplate {
        agent_id: id.clone(),
        name: body.name.unwrap_or_default(),
        llm: body.llm.unwrap_or_default(),
        tts: body.tts.unwrap_or_default(),
        asr: body.asr.unwrap_or_default(),
    };
    check_template(&saved)?;
    let text = serde_json::to_string(&saved).map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.to_string()))?;
    let store = state.supervisor().store();
    if !store.insert_template(app, TEMPLATES, &id, &text, colloquy_supervisor::now()).await? {
        return Err(ZegoError::new(codes::AGENT_EXISTS, format!("AgentId {id:?} is already registered")));
    }
    Ok(json!({}))
}

async fn update_agent(state: &AppState, app: &AppId, body: wire::AgentTemplate) -> ZegoResult<Value> {
    let id = agent_id(body.agent_id)?;
    let mut saved = load_template(state, app, &id).await?;
    if let Some(name) = body.name {
        saved.name = name;
    }
    if let Some(llm) = body.llm {
        merge(&mut saved.llm, llm);
    }
    if let Some(tts) = body.tts {
        merge(&mut saved.tts, tts);
    }
    if let Some(asr) = body.asr {
        merge(&mut saved.asr, asr);
    }
    check_template(&saved)?;
    let text = serde_json::to_string(&saved).map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.to_string()))?;
    let store = state.supervisor().store();
    if !store.update_template(app, TEMPLATES, &id, &text, colloquy_supervisor::now()).await? {
        return Err(agent_not_found(&id));
    }
    Ok(json!({}))
}

async fn unregister_agent(state: &AppState, app: &AppId, body: wire::AgentIdOnly) -> ZegoResult<Value> {
    let id = agent_id(body.agent_id)?;
    if !state.supervisor().store().delete_template(app, TEMPLATES, &id).await? {
        return Err(agent_not_found(&id));
    }
    Ok(json!({}))
}

/// The most templates `ListAgents` answers at once, and its default.
pub const MAX_LIST_LIMIT: u32 = 100;
pub const DEFAULT_LIST_LIMIT: u32 = 10;

async fn list_agents(state: &AppState, app: &AppId, body: wire::ListAgents) -> ZegoResult<Value> {
    let limit = body.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ZegoError::param(format!("Limit is {limit}; it must be between 1 and {MAX_LIST_LIMIT}")));
    }
    let cursor = body.cursor.filter(|c| !c.is_empty());
    let store = state.supervisor().store();
    // One more than asked, to know whether a next page exists.
    let mut page = store.list_templates(app, TEMPLATES, cursor.as_deref(), limit + 1).await?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let next = if more { page.last().map(|t| t.id.clone()).unwrap_or_default() } else { String::new() };
    let agents = page.iter().map(|t| template_to_wire(&t.body)).collect::<ZegoResult<Vec<_>>>()?;
    Ok(json!({ "Total": agents.len(), "Agents": agents, "Cursor": next }))
}

async fn query_agents(state: &AppState, app: &AppId, body: wire::QueryAgents) -> ZegoResult<Value> {
    let ids = body.agent_ids.unwrap_or_default();
    if ids.is_empty() {
        return Err(ZegoError::param("AgentIds is required"));
    }
    if ids.len() > MAX_LIST_LIMIT as usize {
        return Err(ZegoError::param(format!("AgentIds has more than {MAX_LIST_LIMIT} ids")));
    }
    let store = state.supervisor().store();
    let mut agents = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        zego_id(&format!("AgentIds[{i}]"), id, 128, "-_.")?;
        if let Some(template) = store.template(app, TEMPLATES, id).await? {
            agents.push(template_to_wire(&template.body)?);
        }
    }
    Ok(json!({ "Agents": agents }))
}

fn agent_not_found(id: &str) -> ZegoError {
    ZegoError::new(codes::AGENT_NOT_FOUND, format!("no agent is registered with AgentId {id:?}"))
}

async fn load_template(state: &AppState, app: &AppId, id: &str) -> ZegoResult<wire::SavedTemplate> {
    let template = state.supervisor().store().template(app, TEMPLATES, id).await?.ok_or_else(|| agent_not_found(id))?;
    serde_json::from_str(&template.body)
        .map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, format!("a saved agent could not be read: {e}")))
}

/// A saved template as answered, with API keys redacted.
fn template_to_wire(body: &str) -> ZegoResult<Value> {
    let mut saved: wire::SavedTemplate = serde_json::from_str(body)
        .map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, format!("a saved agent could not be read: {e}")))?;
    if saved.llm.contains_key("ApiKey") {
        saved.llm.insert("ApiKey".to_owned(), Value::String(model::Secret::REDACTED.to_owned()));
    }
    serde_json::to_value(saved).map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.to_string()))
}

/// Checks a template's groups by applying them to a default spec.
fn check_template(saved: &wire::SavedTemplate) -> ZegoResult<()> {
    let mut spec = AgentSpec::with_defaults(
        AgentName::new("check").map_err(|e| ZegoError::param(e.0))?,
        ChannelName::new("check").map_err(|e| ZegoError::param(e.0))?,
    );
    apply_llm(&mut spec, &parse_group("LLM", &saved.llm)?)?;
    apply_tts(&mut spec, &parse_group("TTS", &saved.tts)?)?;
    apply_asr(&mut spec, &parse_group("ASR", &saved.asr)?)?;
    Ok(())
}

/// Overrides `base`'s keys with `over`'s.
fn merge(base: &mut Map<String, Value>, over: Map<String, Value>) {
    for (key, value) in over {
        base.insert(key, value);
    }
}

// ---------------------------------------------------------------------------------------------
// Config groups into the spec

/// ZEGO's `LLM.Url` is the full chat-completions URL; ours is the base the path is appended to.
fn llm_base_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    trimmed.strip_suffix("/chat/completions").unwrap_or(trimmed).to_owned()
}

fn apply_llm(spec: &mut AgentSpec, llm: &wire::LlmConfig) -> ZegoResult<()> {
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
        tracing::warn!(field = "LLM.Model", "LLM.Model and LLM.ApiKey without LLM.Url: the embedded model answers");
    }
    if let Some(vendor) = &llm.vendor
        && vendor != "OpenAIChat"
    {
        tracing::warn!(field = "LLM.Vendor", vendor, "only the OpenAI chat-completions protocol is spoken");
    }
    if let Some(prompt) = &llm.system_prompt {
        let prompt = fields::text("LLM.SystemPrompt", prompt.clone())?;
        set_system_prompt(&mut spec.llm.system_messages, prompt);
    }
    spec.llm.params = llm_params(spec.llm.params, llm)?;
    if llm.add_agent_info == Some(true) || llm.agent_extra_info.is_some() {
        tracing::warn!(field = "LLM.AddAgentInfo", "agent info is not added to LLM requests; ignored");
    }
    Ok(())
}

fn llm_params(mut params: LlmParams, llm: &wire::LlmConfig) -> ZegoResult<LlmParams> {
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
            tracing::warn!(field = %format!("LLM.Params.{key}"), "LLM parameter not supported; ignored");
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

fn apply_tts(spec: &mut AgentSpec, tts: &wire::TtsConfig) -> ZegoResult<()> {
    if let Some(vendor) = &tts.vendor {
        tracing::warn!(field = "TTS.Vendor", vendor, "vendor TTS cannot run here; the embedded voice speaks");
    }
    match local_voice(tts) {
        Some(voice) => spec.tts.voice = voice,
        None if tts.params.is_some() => {
            tracing::warn!(field = "TTS.Params", "vendor TTS parameters ignored; the embedded voice speaks")
        }
        None => {}
    }
    if tts.filter_text.is_some() || tts.terminator_text.is_some() {
        tracing::warn!(field = "TTS.FilterText", "TTS text filters are not supported; ignored");
    }
    Ok(())
}

fn apply_asr(spec: &mut AgentSpec, asr: &wire::AsrConfig) -> ZegoResult<()> {
    if let Some(vendor) = &asr.vendor {
        tracing::warn!(field = "ASR.Vendor", vendor, "vendor ASR cannot run here; the embedded model listens");
    }
    if asr.hot_word.is_some() {
        tracing::warn!(field = "ASR.HotWord", "hot words are not supported by the embedded ASR; ignored");
    }
    if asr.params.is_some() {
        tracing::warn!(field = "ASR.Params", "vendor ASR parameters ignored");
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

// ---------------------------------------------------------------------------------------------
// Instances

/// The agent name of the instance of `agent_user_id` in `room`: unique per room and agent user, so
/// a second one is refused while the first lives.
fn instance_name(room: &str, agent_user_id: &str) -> ZegoResult<AgentName> {
    use sha1::Digest;
    let digest =
        sha1::Sha1::new().chain_update(room.as_bytes()).chain_update([0]).chain_update(agent_user_id).finalize();
    AgentName::new(format!("zego.{}", &hex::encode(digest)[..40])).map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.0))
}

fn flag(field: &str, value: u8) -> ZegoResult<u8> {
    if value > 1 {
        return Err(ZegoError::param(format!("{field} is {value}; it must be 0 or 1")));
    }
    Ok(value)
}

async fn create_instance(zego: &Zego, state: &AppState, app: &App, body: wire::CreateInstance) -> ZegoResult<Value> {
    let template_id = agent_id(body.agent_id)?;
    let user_id = required("UserId", body.user_id)?;
    zego_id("UserId", &user_id, 32, "-_")?;
    let rtc = body.rtc.ok_or_else(|| ZegoError::param("RTC is required"))?;
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

    let template = load_template(state, &app.id, &template_id).await?;
    let mut spec = AgentSpec::with_defaults(instance_name(&room_id, &agent_user_id)?, channel);
    spec.agent_uid =
        Uid::new(agent_user_id.clone()).map_err(|e| ZegoError::param(format!("RTC.AgentUserId: {}", e.0)))?;
    spec.remote_uids =
        RemoteUids::Only(vec![Uid::new(user_id.clone()).map_err(|e| ZegoError::param(format!("UserId: {}", e.0)))?]);
    let mut llm = template.llm;
    merge(&mut llm, body.llm.unwrap_or_default());
    let mut tts = template.tts;
    merge(&mut tts, body.tts.unwrap_or_default());
    let mut asr = template.asr;
    merge(&mut asr, body.asr.unwrap_or_default());
    apply_llm(&mut spec, &parse_group("LLM", &llm)?)?;
    apply_tts(&mut spec, &parse_group("TTS", &tts)?)?;
    apply_asr(&mut spec, &parse_group("ASR", &asr)?)?;

    if let Some(welcome) = rtc.welcome_message.filter(|w| !w.is_empty()) {
        let text = fields::text("RTC.WelcomeMessage", welcome)?;
        spec.greeting = Some(model::Greeting { text, interruptible: true });
    }

    spec.max_history = DEFAULT_WINDOW_SIZE;
    if let Some(history) = body.message_history {
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
                    return Err(ZegoError::param(format!(
                        "{field} is \"system\"; it must be \"user\" or \"assistant\""
                    )));
                }
                role => role,
            };
            let content = fields::text(&format!("MessageHistory.Messages[{i}].Content"), message.content)?;
            spec.llm.system_messages.push(PromptMessage { role, content });
        }
    }

    let callback_config = body.callback_config.unwrap_or_default();
    flag("CallbackConfig.ASRResult", callback_config.asr_result)?;
    flag("CallbackConfig.LLMResult", callback_config.llm_result)?;
    flag("CallbackConfig.Interrupted", callback_config.interrupted)?;
    flag("CallbackConfig.UserSpeakAction", callback_config.user_speak_action)?;
    flag("CallbackConfig.AgentSpeakAction", callback_config.agent_speak_action)?;
    if flag("CallbackConfig.UserAudioData", callback_config.user_audio_data)? == 1 {
        tracing::warn!(field = "CallbackConfig.UserAudioData", "user audio callbacks are not sent; ignored");
    }

    let mut idle = DEFAULT_MAX_IDLE_SECS;
    if let Some(advanced) = body.advanced_config {
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
            idle = fields::in_range("AdvancedConfig.MaxIdleTime", secs, 1..=IdleTimeout::MAX_SECS)?;
        }
    }
    spec.idle_timeout = IdleTimeout::AfterSecs(idle);
    spec.callbacks = app.callbacks();
    let origin = wire::OriginData {
        agent_id: template_id,
        user_id,
        room_id,
        agent_user_id,
        agent_stream_id,
        user_stream_id,
        callback_config,
    };
    spec.origin = Origin {
        dialect: Dialect::Zego,
        data: Some(serde_json::to_string(&origin).map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.to_string()))?),
    };

    if state.supervisor().name_is_live(&app.id, &spec.name) {
        return Err(SupervisorError::NameTaken(spec.name.to_string()).into());
    }
    let _place = zego.instances.reserve(state, &app.id, &spec.name).await?;
    let record = state.supervisor().start(app.id.clone(), spec).await?;
    Ok(json!({ "AgentInstanceId": record.id.as_str() }))
}

/// The live record of an instance; a deleted one is "not found", as at ZEGO.
async fn live_record(state: &AppState, app: &AppId, id: &AgentId) -> ZegoResult<model::AgentRecord> {
    let record = state.supervisor().get(app, id).await?;
    if record.state.status().is_terminal() {
        return Err(ZegoError::new(codes::INSTANCE_NOT_FOUND, "agent instance not found: it was deleted"));
    }
    Ok(record)
}

async fn delete_instance(state: &AppState, app: &AppId, body: wire::InstanceOnly) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    live_record(state, app, &id).await?;
    state.supervisor().leave(app, &id).await?;
    Ok(json!({}))
}

async fn update_instance(state: &AppState, app: &AppId, body: wire::UpdateInstance) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let record = live_record(state, app, &id).await?;
    let mut update = SpecUpdate::default();
    if let Some(llm) = body.llm {
        let llm: wire::LlmConfig = parse_group("LLM", &llm)?;
        for (field, set) in [
            ("LLM.Url", llm.url.is_some()),
            ("LLM.ApiKey", llm.api_key.is_some()),
            ("LLM.Model", llm.model.is_some()),
            ("LLM.Vendor", llm.vendor.is_some()),
        ] {
            if set {
                return Err(ZegoError::param(format!(
                    "{field} cannot change while the instance runs; only LLM.SystemPrompt, LLM.Temperature, LLM.TopP \
                     and LLM.Params.max_tokens can"
                )));
            }
        }
        if let Some(prompt) = llm.system_prompt.clone() {
            let prompt = fields::text("LLM.SystemPrompt", prompt)?;
            let mut messages = record.spec.llm.system_messages.clone();
            set_system_prompt(&mut messages, prompt);
            update.system_messages = Some(messages);
        }
        let params = llm_params(record.spec.llm.params, &llm)?;
        if params != record.spec.llm.params {
            update.llm_params = Some(params);
        }
    }
    if let Some(tts) = body.tts {
        let tts: wire::TtsConfig = parse_group("TTS", &tts)?;
        match local_voice(&tts) {
            Some(voice) => update.voice = Some(voice),
            None => tracing::warn!(field = "TTS", "only an embedded voice in TTS.Params.voice can be set; ignored"),
        }
    }
    if body.asr.is_some() {
        tracing::warn!(field = "ASR", "ASR settings cannot change while the instance runs; ignored");
    }
    if !update.is_empty() {
        state.supervisor().update(app, &id, update).await?;
    }
    Ok(json!({}))
}

async fn query_status(state: &AppState, app: &AppId, body: wire::InstanceOnly) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let record = live_record(state, app, &id).await?;
    // A running instance is where its conversation is; one without media (or before its first
    // report) counts as listening.
    let status = match (record.state.status(), state.supervisor().conversation_state(app, &id)) {
        (AgentStatus::Running | AgentStatus::Recovering, Some(moment)) => match moment {
            ConversationState::Idle => "IDLE",
            ConversationState::Listening => "LISTENING",
            ConversationState::Thinking => "THINKING",
            ConversationState::Speaking => "SPEAKING",
        },
        (AgentStatus::Running | AgentStatus::Recovering, None) => "LISTENING",
        _ => "IDLE",
    };
    let mut data = json!({ "Status": status });
    let turns = state.supervisor().turns(app, &id).await?;
    if let Some(last) = turns.iter().rev().find(|t| t.metrics.llm_ttft_ms.is_some() || t.metrics.tts_ttfb_ms.is_some())
    {
        if let Some(ms) = last.metrics.llm_ttft_ms {
            data["LLMFirstTokenLatency"] = json!(ms);
        }
        if let Some(ms) = last.metrics.tts_ttfb_ms {
            data["TTSFirstAudioLatency"] = json!(ms);
        }
    }
    Ok(data)
}

/// ZEGO's `Priority` and `SamePriorityOption` as our speak priority:
/// High → Interrupt; Medium (default) with ClearAndInterrupt (default) → Interrupt; Medium with
/// Enqueue → Append; Low with Enqueue → Append; Low with ClearAndInterrupt → Ignore (said only when
/// the agent is idle).
fn speak_priority(priority: Option<&str>, option: Option<&str>) -> ZegoResult<SpeakPriority> {
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

async fn send_tts(state: &AppState, app: &AppId, body: wire::SendTts) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let text = fields::command_text(required("Text", body.text)?).map_err(|e| prefix("Text", e))?;
    let priority = speak_priority(body.priority.as_deref(), body.same_priority_option.as_deref())?;
    if body.add_history == Some(false) {
        tracing::warn!(field = "AddHistory", "spoken text always goes to the history; AddHistory=false ignored");
    }
    live_record(state, app, &id).await?;
    state.supervisor().command(app, &id, AgentCommand::Speak { text, priority, interruptible: true }).await?;
    Ok(json!({}))
}

async fn send_llm(state: &AppState, app: &AppId, body: wire::SendLlm) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let text = fields::command_text(required("Text", body.text)?).map_err(|e| prefix("Text", e))?;
    // Checked for its values; the LLM turn always cuts off what the agent says.
    let priority = speak_priority(body.priority.as_deref(), body.same_priority_option.as_deref())?;
    if priority != SpeakPriority::Interrupt {
        tracing::warn!(field = "Priority", "SendAgentInstanceLLM always interrupts the agent; Priority ignored");
    }
    if body.system_prompt.is_some() {
        tracing::warn!(field = "SystemPrompt", "a per-request system prompt is not supported; ignored");
    }
    if body.add_question_to_history == Some(false) || body.add_answer_to_history == Some(false) {
        tracing::warn!(field = "AddQuestionToHistory", "the question and the answer always go to the history");
    }
    live_record(state, app, &id).await?;
    state.supervisor().command(app, &id, AgentCommand::Think { text }).await?;
    Ok(json!({}))
}

fn prefix(field: &str, e: ApiError) -> ZegoError {
    ZegoError::param(format!("{field}: {}", e.message))
}

async fn interrupt(state: &AppState, app: &AppId, body: wire::InstanceOnly) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    live_record(state, app, &id).await?;
    state.supervisor().command(app, &id, AgentCommand::Interrupt).await?;
    Ok(json!({}))
}

async fn msg_list(state: &AppState, app: &AppId, body: wire::InstanceOnly) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let record = state.supervisor().get(app, &id).await?;
    let store = state.supervisor().store();
    let reset_at = match store.template(app, RESETS, id.as_str()).await? {
        Some(reset) => Some(reset.body.parse::<i64>().map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.to_string()))?),
        None => None,
    };
    let mut messages: Vec<Value> = Vec::new();
    if reset_at.is_none() {
        // The MessageHistory given at creation comes first.
        for message in &record.spec.llm.system_messages {
            let role = match message.role {
                PromptRole::User => "user",
                PromptRole::Assistant => "assistant",
                PromptRole::System => continue,
            };
            messages.push(json!({ "Role": role, "Content": message.content }));
        }
    }
    for entry in state.supervisor().history(app, &id).await? {
        if reset_at.is_some_and(|at| entry.at.0 <= at) {
            continue;
        }
        messages.push(json!({ "Role": entry.speaker.as_str(), "Content": entry.content }));
    }
    Ok(json!({ "Total": messages.len(), "MessageList": messages }))
}

async fn reset_msg_list(state: &AppState, app: &AppId, body: wire::InstanceOnly) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    live_record(state, app, &id).await?;
    state.supervisor().command(app, &id, AgentCommand::ClearHistory).await?;
    let now = colloquy_supervisor::now();
    let store = state.supervisor().store();
    let at = now.0.to_string();
    if !store.update_template(app, RESETS, id.as_str(), &at, now).await? {
        store.insert_template(app, RESETS, id.as_str(), &at, now).await?;
    }
    Ok(json!({}))
}
