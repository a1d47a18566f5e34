//! ZEGO's field readers: the JSON body and its config groups read with errors named after
//! ZEGO's fields, required fields (which are `Option`s in [`wire`](super::wire)), and ZEGO's id
//! rules. They are their own module, beside the shared checks in `colloquy_http::fields`, because
//! both the actions (every instance action reads its `AgentInstanceId`) and the translation into
//! the model ([`to_model`](super::to_model)) use them: they read ZEGO's fields, they do not
//! translate anything.

use colloquy_http::error::ApiError;
use colloquy_model::AgentId;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::errors::{ZegoError, ZegoResult, codes};

/// Parses a body; an empty body counts as `{}`.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> ZegoResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(colloquy_http::extract::parse_json(b"{}")?);
    }
    Ok(colloquy_http::extract::parse_json(body)?)
}

/// Parses one config group (`LLM`, `TTS`, `ASR`) with errors named after the group.
pub(crate) fn parse_group<T: DeserializeOwned + Default>(group: &str, value: &Map<String, Value>) -> ZegoResult<T> {
    if value.is_empty() {
        return Ok(T::default());
    }
    let bytes = serde_json::to_vec(value).map_err(|e| ZegoError::new(codes::SYSTEM_ERROR, e.to_string()))?;
    colloquy_http::extract::parse_json(&bytes).map_err(|e: ApiError| {
        let field = e.field.clone().map(|f| format!("{group}.{f}")).unwrap_or_else(|| group.to_owned());
        ZegoError::param(format!("{field}: {}", e.message))
    })
}

/// `value`, which must be given and not empty.
pub(crate) fn required(field: &str, value: Option<String>) -> ZegoResult<String> {
    match value {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ZegoError::param(format!("{field} is required"))),
    }
}

/// ZEGO's id rules: ASCII letters, digits and the characters in `extra`, at most `max` bytes.
pub(crate) fn zego_id(field: &str, value: &str, max: usize, extra: &str) -> ZegoResult<()> {
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

/// `AgentInstanceId`: required; letters, digits, `-` and `_`; at most 128 bytes.
pub(crate) fn instance_id(value: Option<String>) -> ZegoResult<AgentId> {
    let id = required("AgentInstanceId", value)?;
    zego_id("AgentInstanceId", &id, 128, "-_")?;
    Ok(AgentId::from_string(id))
}

/// `AgentId` (a template's): required; letters, digits, `-`, `_` and `.`; at most 128 bytes.
/// What an `AgentId` may hold besides digits and letters (ZEGO's RegisterAgent page: up to 128
/// characters).
pub(crate) const AGENT_ID_PUNCTUATION: &str = "!#$%&()+-:;<=.>?@[]^_{}|~,";

pub(crate) fn agent_id(value: Option<String>) -> ZegoResult<String> {
    let id = required("AgentId", value)?;
    zego_id("AgentId", &id, 128, AGENT_ID_PUNCTUATION)?;
    Ok(id)
}

/// `e` as a parameter error about `field`.
pub(crate) fn prefix(field: &str, e: ApiError) -> ZegoError {
    ZegoError::param(format!("{field}: {}", e.message))
}
