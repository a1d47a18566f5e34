//! The IMS/ICE OpenAPI (`Version=2020-11-09`), RPC style: `POST /` with `Action` and the parameters
//! in the query or an `application/x-www-form-urlencoded` body, or the V3 headers (`x-acs-action`,
//! `x-acs-version`, `Authorization: ACS3-HMAC-SHA256 …`). Nested structs arrive as JSON strings.
//! The app is `apps().by_key(AccessKeyId)`; its secret is the AccessKeySecret.
//!
//! Success: `200 {RequestId, …}`. Error: `{RequestId, HostId, Code, Message}` with Alibaba's status.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use colloquy_model::{AgentCommand, AgentSpec, HistoryEntry, SpeakPriority};
use serde_json::{Value, json};

use super::errors::{Failure, openapi_response};
use super::to_model::{self, Launch};
use super::wire::{AgentConfig, OriginData};
use super::{VOICE_CHAT, auth, from_model, signature, token};
use crate::RawRequest;
use colloquy_http::AppState;
use colloquy_http::apps::App;

/// The API version this dialect speaks.
pub const VERSION: &str = "2020-11-09";
/// `HostId` in error answers.
pub const HOST_ID: &str = "ice.aliyuncs.com";
/// The longest `SendAIAgentSpeech.Text`.
pub const MAX_SPEECH_CHARS: usize = 1024;

/// The request's parameters: the query's, then a form body's.
#[derive(Debug, Default)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn required(&self, name: &str) -> Result<&str, Failure> {
        self.get(name).filter(|v| !v.trim().is_empty()).ok_or_else(|| Failure::missing(name))
    }

    fn bool(&self, name: &str, default: bool) -> Result<bool, Failure> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(Failure::invalid(format!("{name} is {v:?}; it must be true or false"))),
        }
    }

    fn int(&self, name: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, Failure> {
        let Some(text) = self.get(name).filter(|v| !v.is_empty()) else { return Ok(default) };
        let value: i64 =
            text.trim().parse().map_err(|_| Failure::invalid(format!("{name} is {text:?}; it must be an integer")))?;
        if !range.contains(&value) {
            return Err(Failure::invalid(format!(
                "{name} is {value}; it must be between {} and {}",
                range.start(),
                range.end()
            )));
        }
        Ok(value)
    }
}

fn query_pairs(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn is_form(request: &RawRequest) -> bool {
    request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

pub(crate) fn header<'a>(request: &'a RawRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn is_v3(request: &RawRequest) -> bool {
    header(request, "authorization").is_some_and(|v| v.trim_start().starts_with(signature::V3_ALGORITHM))
}

/// Whether `POST /` is Alibaba's: a `Version` parameter in the query or a form body, or Alibaba's
/// signature headers.
pub fn is_openapi_request(request: &RawRequest) -> bool {
    // Parameters only Alibaba's RPC style sends (ZEGO's are `AppId`, `SignatureNonce`, …).
    let alibaba_only = |k: &str| matches!(k, "Version" | "AccessKeyId" | "SignatureMethod" | "RegionId" | "Format");
    let in_query = request.query.as_deref().is_some_and(|q| query_pairs(q).iter().any(|(k, _)| alibaba_only(k)));
    // ZEGO sends its parameters in the query and a JSON body: a form body is Alibaba's, even with
    // a damaged `Version` key, so that it gets Alibaba's error rather than ZEGO's.
    in_query
        || is_form(request)
        || request.headers.contains_key("x-acs-signature-nonce")
        || request.headers.contains_key("x-acs-action")
        || is_v3(request)
}

/// Serves one OpenAPI request.
pub async fn action(state: AppState, request: RawRequest) -> Response {
    match run(&state, &request).await {
        Ok(mut body) => {
            if let Value::Object(map) = &mut body {
                map.insert("RequestId".to_owned(), json!(super::request_id()));
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(failure) => openapi_response(failure),
    }
}

async fn run(state: &AppState, request: &RawRequest) -> Result<Value, Failure> {
    let query = request.query.as_deref().map(query_pairs).unwrap_or_default();
    let mut params = Params(query.clone());
    if is_form(request) {
        params.0.extend(query_pairs(&String::from_utf8_lossy(&request.body)));
    }
    let v3 = is_v3(request);
    let action = match header(request, "x-acs-action") {
        Some(action) if v3 => action.to_owned(),
        _ => params.required("Action")?.to_owned(),
    };
    let version = match header(request, "x-acs-version") {
        Some(version) if v3 => Some(version.to_owned()),
        _ => params.get("Version").map(str::to_owned),
    };
    let version = version.ok_or_else(|| Failure::missing("Version"))?;
    if version != VERSION {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "InvalidVersion",
            format!("Specified parameter Version {version:?} is not valid; this server speaks {VERSION}."),
        ));
    }
    let app = auth::openapi_caller(state, request, &query, &params).await?;
    match action.as_str() {
        "GenerateAIAgentCall" => generate(state, app, &params).await,
        "StartAIAgentInstance" => start(state, app, &params).await,
        "StopAIAgentInstance" => {
            let record = super::instance(state, app, params.required("InstanceId")?).await?;
            state.supervisor().leave(&app.id, &record.id).await?;
            Ok(json!({}))
        }
        "UpdateAIAgentInstance" => {
            let record = super::instance(state, app, params.required("InstanceId")?).await?;
            if params.get("UserData").is_some() {
                tracing::warn!(field = "UserData", "UserData cannot be changed after start here; ignored");
            }
            let config = to_model::read_configs(
                "AgentConfig",
                params.get("AgentConfig"),
                "TemplateConfig",
                params.get("TemplateConfig"),
            )?;
            let update = to_model::update("AgentConfig", config)?;
            super::apply_update(state, app, &record, update).await?;
            Ok(json!({}))
        }
        "DescribeAIAgentInstance" => {
            let record = super::instance(state, app, params.required("InstanceId")?).await?;
            Ok(json!({ "Instance": from_model::instance_json(&record) }))
        }
        "ListAIAgentInstance" => list(state, app, &params).await,
        "SendAIAgentSpeech" => {
            let id = params.required("InstanceId")?;
            let text = command_text("Text", params.required("Text")?, MAX_SPEECH_CHARS)?;
            match params.get("Type").unwrap_or("Text") {
                "Text" | "" => {}
                "AudioUrl" => {
                    return Err(Failure::invalid(
                        "Type AudioUrl is not supported: this server cannot fetch and play audio files; send Type Text",
                    ));
                }
                other => return Err(Failure::invalid(format!("Type is {other:?}; it must be Text or AudioUrl"))),
            }
            let interrupt = params.bool("EnableInterrupt", true)?;
            let priority = if interrupt { SpeakPriority::Interrupt } else { SpeakPriority::Append };
            let record = super::instance(state, app, id).await?;
            let command = AgentCommand::Speak { text, priority, interruptible: true };
            state.supervisor().command(&app.id, &record.id, command).await?;
            Ok(json!({}))
        }
        "SendAIAgentText" => {
            let id = params.required("InstanceId")?;
            let text = command_text("Text", params.required("Text")?, AgentSpec::MAX_TEXT_CHARS)?;
            let record = super::instance(state, app, id).await?;
            state.supervisor().command(&app.id, &record.id, AgentCommand::Think { text }).await?;
            Ok(json!({}))
        }
        "ListAIAgentDialogues" => dialogues(state, app, &params).await,
        other => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            format!("Specified api {other:?} is not found; see docs/dialects/alibaba.md for the supported actions."),
        )),
    }
}

fn command_text(field: &str, text: &str, max: usize) -> Result<String, Failure> {
    if text.chars().count() > max {
        return Err(Failure::invalid(format!("{field} is longer than {max} characters")));
    }
    Ok(text.to_owned())
}

fn read_common(params: &Params) -> Result<(String, Option<String>, Option<String>, AgentConfig), Failure> {
    let ai_agent_id = params.required("AIAgentId")?.to_owned();
    let agent_config = params.get("AgentConfig").map(str::to_owned);
    let template_config = params.get("TemplateConfig").map(str::to_owned);
    let config =
        to_model::read_configs("AgentConfig", agent_config.as_deref(), "TemplateConfig", template_config.as_deref())?;
    if params.get("ChatSyncConfig").is_some() {
        tracing::warn!(field = "ChatSyncConfig", "IM chat sync is not supported; ignored");
    }
    Ok((ai_agent_id, agent_config, template_config, config))
}

async fn generate(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let (ai_agent_id, agent_config, template_config, config) = read_common(params)?;
    let expire = match params.int("Expire", 3600, 0..=604_800)? {
        0 => 3600,
        secs => secs.unsigned_abs(),
    };
    let user = match params.get("UserId").filter(|u| !u.is_empty()) {
        Some(user) => to_model::uid_param("UserId", user)?,
        None => to_model::uid_param("UserId", &super::random_id())?,
    };
    let channel = to_model::channel_param("ChannelId", &super::random_id())?;
    let agent_uid = to_model::uid_param("AIAgentUserId", &super::random_id())?;
    let origin = OriginData {
        ai_agent_id,
        channel_id: channel.to_string(),
        agent_user_id: agent_uid.to_string(),
        user_id: Some(user.to_string()),
        session_id: params.get("SessionId").map(str::to_owned),
        user_data: params.get("UserData").map(str::to_owned),
        workflow_type: VOICE_CHAT.to_owned(),
        agent_config,
        template_config,
    };
    let launch = Launch {
        channel: channel.clone(),
        agent_uid: agent_uid.clone(),
        user: Some(user.clone()),
        config,
        config_field: "AgentConfig",
        origin,
    };
    let record = to_model::launch(state, app, launch).await?;
    let expires_at = super::unix_now() + expire;
    Ok(json!({
        "AIAgentUserId": agent_uid.as_str(),
        "ChannelId": channel.as_str(),
        "InstanceId": record.id.as_str(),
        "Token": token::rtc_auth_token(app, channel.as_str(), user.as_str(), expires_at),
        "UserId": user.as_str(),
    }))
}

async fn start(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let (ai_agent_id, agent_config, template_config, config) = read_common(params)?;
    let runtime: Value = to_model::parse_json_param("RuntimeConfig", params.required("RuntimeConfig")?)?;
    for unsupported in ["AvatarChat3D", "VisionChat"] {
        if runtime.get(unsupported).is_some() {
            return Err(Failure::invalid(format!(
                "RuntimeConfig.{unsupported} is not supported: this server runs voice agents only (VoiceChat)"
            )));
        }
    }
    let runtime = runtime.get("VoiceChat").cloned().unwrap_or(runtime);
    let text = |name: &str| runtime.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let channel = text("ChannelId").ok_or_else(|| Failure::missing("RuntimeConfig.ChannelId"))?;
    let channel = to_model::channel_param("RuntimeConfig.ChannelId", &channel)?;
    let agent_uid = match text("AgentUserId") {
        Some(uid) => to_model::uid_param("RuntimeConfig.AgentUserId", &uid)?,
        None => to_model::uid_param("RuntimeConfig.AgentUserId", &super::random_id())?,
    };
    if let Some(auth) = text("AuthToken") {
        let grant = token::verify_rtc_auth_token(state.apps(), &auth, super::unix_now())
            .ok_or_else(|| Failure::invalid("RuntimeConfig.AuthToken is not an ARTC token"))?
            .map_err(|e| Failure::invalid(format!("RuntimeConfig.AuthToken: {e}")))?;
        if grant.channel != channel.as_str() || grant.uid != agent_uid.as_str() {
            return Err(Failure::invalid(format!(
                "RuntimeConfig.AuthToken is for {}/{}, not the ChannelId/AgentUserId {}/{}",
                grant.channel, grant.uid, channel, agent_uid
            )));
        }
    }
    let origin = OriginData {
        ai_agent_id,
        channel_id: channel.to_string(),
        agent_user_id: agent_uid.to_string(),
        user_id: None,
        session_id: params.get("SessionId").map(str::to_owned),
        user_data: params.get("UserData").map(str::to_owned),
        workflow_type: VOICE_CHAT.to_owned(),
        agent_config,
        template_config,
    };
    let launch = Launch { channel, agent_uid, user: None, config, config_field: "AgentConfig", origin };
    let record = to_model::launch(state, app, launch).await?;
    Ok(json!({ "InstanceId": record.id.as_str() }))
}

fn time_param(params: &Params, name: &str) -> Result<Option<u64>, Failure> {
    match params.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => signature::parse_iso8601(text)
            .map(Some)
            .ok_or_else(|| Failure::invalid(format!("{name} is {text:?}; it must be yyyy-MM-ddTHH:mm:ssZ"))),
    }
}

async fn list(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let ai_agent_id = params.required("AIAgentId")?;
    let start = time_param(params, "StartTime")?;
    let end = time_param(params, "EndTime")?;
    let page = params.int("PageNumber", 1, 1..=100)?.unsigned_abs() as usize;
    let size = match params.int("PageSize", 10, 0..=100)?.unsigned_abs() as usize {
        0 => 10,
        size => size,
    };
    let matching: Vec<_> = super::all_instances(state, app)
        .await?
        .into_iter()
        .filter(|r| OriginData::of(r).ai_agent_id == ai_agent_id)
        .filter(|r| {
            let created = u64::try_from(r.created_at.0 / 1000).unwrap_or(0);
            start.is_none_or(|s| created >= s) && end.is_none_or(|e| created <= e)
        })
        .collect();
    let instances: Vec<Value> =
        matching.iter().skip((page - 1) * size).take(size).map(from_model::instance_json).collect();
    Ok(json!({ "Instances": instances, "TotalCount": matching.len(), "PageNumber": page, "PageSize": size }))
}

async fn dialogues(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let session = params.required("SessionId")?;
    let start = params.int("StartTime", 0, 0..=i64::MAX)?;
    let end = params.int("EndTime", i64::MAX, 0..=i64::MAX)?;
    if params.get("EndTime").is_none_or(str::is_empty) {
        return Err(Failure::missing("EndTime"));
    }
    let descending = match params.get("Order").unwrap_or("ASC") {
        "ASC" | "asc" | "" => false,
        "DESC" | "desc" => true,
        other => return Err(Failure::invalid(format!("Order is {other:?}; it must be ASC or DESC"))),
    };
    let page = params.int("PageNumber", 1, 1..=i64::from(u32::MAX))?.unsigned_abs() as usize;
    let size = params.int("PageSize", 20, 1..=100)?.unsigned_abs() as usize;
    let mut rows: Vec<(i64, Value)> = Vec::new();
    for record in super::all_instances(state, app).await? {
        if OriginData::of(&record).session_id.as_deref() != Some(session) {
            continue;
        }
        let history: Vec<HistoryEntry> = state.supervisor().history(&app.id, &record.id).await?;
        let turns = state.supervisor().turns(&app.id, &record.id).await?;
        for (i, entry) in history.into_iter().enumerate() {
            if entry.at.0 < start || entry.at.0 > end {
                continue;
            }
            rows.push((entry.at.0, from_model::dialogue_json(&record, i, entry, &turns)));
        }
    }
    rows.sort_by_key(|(at, _)| *at);
    if descending {
        rows.reverse();
    }
    let total = rows.len();
    let dialogues: Vec<Value> = rows.into_iter().skip((page - 1) * size).take(size).map(|(_, v)| v).collect();
    Ok(json!({ "Dialogues": dialogues, "TotalCount": total }))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, Method, Uri};

    use super::*;

    fn request(query: Option<&str>, headers: &[(&'static str, &str)], body: &str) -> RawRequest {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        RawRequest {
            method: Method::POST,
            uri: Uri::from_static("/"),
            query: query.map(str::to_owned),
            headers: map,
            body: body.to_owned().into(),
            peer: Default::default(),
        }
    }

    #[test]
    fn alibaba_requests_are_told_from_zegos() {
        assert!(is_openapi_request(&request(Some("Action=StopAIAgentInstance&Version=2020-11-09"), &[], "")));
        let form = [("content-type", "application/x-www-form-urlencoded")];
        assert!(is_openapi_request(&request(None, &form, "Action=X&Version=2020-11-09")));
        assert!(is_openapi_request(&request(None, &[("x-acs-action", "StopAIAgentInstance")], "")));
        assert!(is_openapi_request(&request(None, &[("authorization", "ACS3-HMAC-SHA256 Credential=a")], "")));
        // ZEGO's calling convention: Action, AppId, SignatureNonce, Timestamp, Signature, SignatureVersion.
        let zego =
            "Action=RegisterAgent&AppId=1234567890&SignatureNonce=abc&Timestamp=1&Signature=x&SignatureVersion=2.0";
        assert!(!is_openapi_request(&request(Some(zego), &[], "{\"AgentId\":\"a\"}")));
        // A JSON body that happens to hold "Version" is not a form.
        assert!(!is_openapi_request(&request(Some("Action=X"), &[("content-type", "application/json")], "Version=1")));
    }
}
