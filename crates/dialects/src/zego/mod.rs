//! ZEGOCLOUD AI Agent server API: `POST /?Action=<Action>&AppId=…&SignatureNonce=…&Timestamp=…
//! &SignatureVersion=2.0&Signature=…` with a JSON body, answered with `{Code, Message, RequestId,
//! Data}` and HTTP 200. See `docs/dialects/zego.md` for the actions, fields and choices.

mod auth;
pub mod errors;
mod fields;
pub mod from_model;
pub mod instances;
mod routes;
pub mod signature;
pub mod to_model;
pub mod webhooks;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use colloquy_http::AppState;
use colloquy_http::apps::App;
use colloquy_model as model;
use colloquy_model::{AgentCommand, AgentEvent, AgentId, AppId, SpeakPriority, SpecUpdate};
use colloquy_store::{OutgoingWebhook, Store};
use colloquy_supervisor::SupervisorError;
use serde_json::{Value, json};

use crate::RawRequest;
use errors::{ZegoError, ZegoResult, codes};
use fields::{agent_id, instance_id, parse_group, prefix, required, zego_id};

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
    to_model::check_template(&saved)?;
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
    saved.merge_groups(body.llm, body.tts, body.asr);
    to_model::check_template(&saved)?;
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
    let limit = colloquy_http::fields::in_range("Limit", body.limit.unwrap_or(DEFAULT_LIST_LIMIT), 1..=MAX_LIST_LIMIT)?;
    let cursor = body.cursor.filter(|c| !c.is_empty());
    let store = state.supervisor().store();
    // One more than asked, to know whether a next page exists.
    let mut page = store.list_templates(app, TEMPLATES, cursor.as_deref(), limit + 1).await?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let next = if more { page.last().map(|t| t.id.clone()).unwrap_or_default() } else { String::new() };
    let agents = page.iter().map(|t| from_model::template_to_wire(&t.body)).collect::<ZegoResult<Vec<_>>>()?;
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
            agents.push(from_model::template_to_wire(&template.body)?);
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

// ---------------------------------------------------------------------------------------------
// Instances

async fn create_instance(
    zego: &Zego,
    state: &AppState,
    app: &App,
    mut body: wire::CreateInstance,
) -> ZegoResult<Value> {
    let placement = to_model::placement(&mut body)?;
    let template = load_template(state, &app.id, placement.template_id()).await?;
    let spec = to_model::instance_spec(app, placement, template, body)?;
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
            let prompt = colloquy_http::fields::text("LLM.SystemPrompt", prompt)?;
            let mut messages = record.spec.llm.system_messages.clone();
            to_model::set_system_prompt(&mut messages, prompt);
            update.system_messages = Some(messages);
        }
        let params = to_model::llm_params(record.spec.llm.params, &llm)?;
        if params != record.spec.llm.params {
            update.llm_params = Some(params);
        }
    }
    if let Some(tts) = body.tts {
        let tts: wire::TtsConfig = parse_group("TTS", &tts)?;
        match to_model::local_voice(&tts) {
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
    let status = from_model::status_name(record.state.status(), state.supervisor().conversation_state(app, &id));
    let turns = state.supervisor().turns(app, &id).await?;
    Ok(from_model::instance_status(status, &turns))
}

async fn send_tts(state: &AppState, app: &AppId, body: wire::SendTts) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let text = colloquy_http::fields::command_text(required("Text", body.text)?).map_err(|e| prefix("Text", e))?;
    let priority = to_model::speak_priority(body.priority.as_deref(), body.same_priority_option.as_deref())?;
    if body.add_history == Some(false) {
        tracing::warn!(field = "AddHistory", "spoken text always goes to the history; AddHistory=false ignored");
    }
    live_record(state, app, &id).await?;
    state.supervisor().command(app, &id, AgentCommand::Speak { text, priority, interruptible: true }).await?;
    Ok(json!({}))
}

async fn send_llm(state: &AppState, app: &AppId, body: wire::SendLlm) -> ZegoResult<Value> {
    let id = instance_id(body.agent_instance_id)?;
    let text = colloquy_http::fields::command_text(required("Text", body.text)?).map_err(|e| prefix("Text", e))?;
    // Checked for its values; the LLM turn always cuts off what the agent says.
    let priority = to_model::speak_priority(body.priority.as_deref(), body.same_priority_option.as_deref())?;
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
    let history = state.supervisor().history(app, &id).await?;
    Ok(from_model::message_list(&record.spec.llm.system_messages, &history, reset_at))
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
