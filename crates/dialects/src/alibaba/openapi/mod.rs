//! The IMS/ICE OpenAPI (`Version=2020-11-09`), RPC style: `POST /` with `Action` and the parameters
//! in the query or an `application/x-www-form-urlencoded` body, or the V3 headers (`x-acs-action`,
//! `x-acs-version`, `Authorization: ACS3-HMAC-SHA256 …`). Nested structs arrive as JSON strings.
//! The app is `apps().by_key(AccessKeyId)`; its secret is the AccessKeySecret.
//!
//! Success: `200 {RequestId, …}`. Error: `{RequestId, HostId, Code, Message}` with Alibaba's status.
//!
//! One file per action, named after it in snake_case; `run` reads the action and the version,
//! authenticates (`auth.rs`) and dispatches.

mod describe_ai_agent_instance;
mod generate_ai_agent_call;
mod list_ai_agent_dialogues;
mod list_ai_agent_instance;
mod send_ai_agent_speech;
mod send_ai_agent_text;
mod start_ai_agent_instance;
mod stop_ai_agent_instance;
mod update_ai_agent_instance;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::errors::{Failure, openapi_response};
use super::to_model;
use super::wire::{AgentConfig, OriginData};
use super::{VOICE_CHAT, auth, request_id, signature};
use crate::RawRequest;
use colloquy_http::AppState;
use colloquy_http::fields;

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

    pub(crate) fn bool(&self, name: &str, default: bool) -> Result<bool, Failure> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(Failure::invalid(format!("{name} is {v:?}; it must be true or false"))),
        }
    }

    pub(crate) fn int(&self, name: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, Failure> {
        let Some(text) = self.get(name).filter(|v| !v.is_empty()) else { return Ok(default) };
        let value: i64 =
            text.trim().parse().map_err(|_| Failure::invalid(format!("{name} is {text:?}; it must be an integer")))?;
        Ok(fields::in_range(name, value, range)?)
    }
}

fn query_pairs(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

pub(crate) fn header<'a>(request: &'a RawRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn is_v3(request: &RawRequest) -> bool {
    is_v3_signed(&request.headers)
}

fn is_v3_signed(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with(signature::V3_ALGORITHM))
}

/// Whether `POST /` is Alibaba's: a `Version` parameter in the query or a form body, or Alibaba's
/// signature headers.
pub fn is_openapi_request(request: &RawRequest) -> bool {
    is_openapi_head(request.query.as_deref(), &request.headers)
}

/// [`is_openapi_request`] from the query and headers alone (all it reads), for errors raised
/// before the body is read.
pub fn is_openapi_head(query: Option<&str>, headers: &HeaderMap) -> bool {
    // Parameters only Alibaba's RPC style sends (ZEGO's are `AppId`, `SignatureNonce`, …).
    let alibaba_only = |k: &str| matches!(k, "Version" | "AccessKeyId" | "SignatureMethod" | "RegionId" | "Format");
    let in_query = query.is_some_and(|q| query_pairs(q).iter().any(|(k, _)| alibaba_only(k)));
    // ZEGO sends its parameters in the query and a JSON body: a form body is Alibaba's, even with
    // a damaged `Version` key, so that it gets Alibaba's error rather than ZEGO's.
    in_query
        || is_form(headers)
        || headers.contains_key("x-acs-signature-nonce")
        || headers.contains_key("x-acs-action")
        || is_v3_signed(headers)
}

/// Serves one OpenAPI request.
pub async fn action(state: AppState, request: RawRequest) -> Response {
    match run(&state, &request).await {
        Ok(mut body) => {
            if let Value::Object(map) = &mut body {
                map.insert("RequestId".to_owned(), json!(request_id()));
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(failure) => openapi_response(failure),
    }
}

async fn run(state: &AppState, request: &RawRequest) -> Result<Value, Failure> {
    let query = request.query.as_deref().map(query_pairs).unwrap_or_default();
    let mut params = Params(query.clone());
    if is_form(&request.headers) {
        params.0.extend(query_pairs(&String::from_utf8_lossy(&request.body)));
    }
    let action = read_action(request, &params)?;
    let app = auth::openapi_caller(state, request, &query, &params).await?;
    let params = &params;
    match action.as_str() {
        "GenerateAIAgentCall" => generate_ai_agent_call::handle(state, app, params).await,
        "StartAIAgentInstance" => start_ai_agent_instance::handle(state, app, params).await,
        "StopAIAgentInstance" => stop_ai_agent_instance::handle(state, app, params).await,
        "UpdateAIAgentInstance" => update_ai_agent_instance::handle(state, app, params).await,
        "DescribeAIAgentInstance" => describe_ai_agent_instance::handle(state, app, params).await,
        "ListAIAgentInstance" => list_ai_agent_instance::handle(state, app, params).await,
        "SendAIAgentSpeech" => send_ai_agent_speech::handle(state, app, params).await,
        "SendAIAgentText" => send_ai_agent_text::handle(state, app, params).await,
        "ListAIAgentDialogues" => list_ai_agent_dialogues::handle(state, app, params).await,
        other => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            format!("Specified api {other:?} is not found; see docs/dialects/alibaba.md for the supported actions."),
        )),
    }
}

/// The action (`x-acs-action` with a V3 signature, else `Action`), once the version is this one.
fn read_action(request: &RawRequest, params: &Params) -> Result<String, Failure> {
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
    Ok(action)
}

/// A text parameter of at most `max` characters.
fn text_up_to(field: &str, text: &str, max: usize) -> Result<String, Failure> {
    if text.chars().count() > max {
        return Err(Failure::invalid(format!("{field} is longer than {max} characters")));
    }
    Ok(text.to_owned())
}

/// What GenerateAIAgentCall and StartAIAgentInstance both read: `AIAgentId`, `AgentConfig` /
/// `TemplateConfig` (kept as sent, and read into one config), `SessionId` and `UserData`. The
/// origin's ids in the channel are the action's to fill.
fn read_start(params: &Params) -> Result<(OriginData, AgentConfig), Failure> {
    let ai_agent_id = params.required("AIAgentId")?.to_owned();
    let agent_config = params.get("AgentConfig").map(str::to_owned);
    let template_config = params.get("TemplateConfig").map(str::to_owned);
    let mut config =
        to_model::read_configs("AgentConfig", agent_config.as_deref(), "TemplateConfig", template_config.as_deref())?;
    if params.get("ChatSyncConfig").is_some() {
        config.noticed.ignored("ChatSyncConfig", "IM chat sync is not supported");
    }
    let origin = OriginData {
        ai_agent_id,
        session_id: params.get("SessionId").map(str::to_owned),
        user_data: params.get("UserData").map(str::to_owned),
        workflow_type: VOICE_CHAT.to_owned(),
        agent_config,
        template_config,
        ..OriginData::default()
    };
    Ok((origin, config))
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
