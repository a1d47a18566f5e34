//! The checks every API shares: the native `/v1` API and each vendor dialect read their fields
//! through these, so a value is held to one rule, and refused with one message naming the field,
//! whichever dialect carried it. A dialect turns the [`ApiError`] into its own envelope.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::RangeInclusive;

use axum::http::{HeaderName, HeaderValue, Uri};
use base64::Engine;
use colloquy_model as model;
use colloquy_model::{AgentSpec, KeyHeader, RemoteEndpoint, Secret};
use colloquy_store::ListCursor;

use crate::error::ApiError;

pub const OPENAI_URL: &str = "https://api.openai.com/v1";
pub const OPENAI_LLM_MODEL: &str = "gpt-4o-mini";
pub const OPENAI_ASR_MODEL: &str = "whisper-1";
pub const OPENAI_TTS_MODEL: &str = "tts-1";
/// The embedded Piper voices.
pub const LOCAL_VOICES: &[&str] = &[model::Tts::DEFAULT_LOCAL_VOICE];

pub type Checked<T> = Result<T, ApiError>;

pub fn in_range<T: PartialOrd + Display + Copy>(field: &str, value: T, range: RangeInclusive<T>) -> Checked<T> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} is {value}; it must be between {} and {}", range.start(), range.end()),
        ))
    }
}

/// An integer as JSON carries it (any `i64`), checked into a `u32` range.
pub fn u32_in_range(field: &str, value: i64, range: RangeInclusive<u32>) -> Checked<u32> {
    match u32::try_from(value) {
        Ok(value) => in_range(field, value, range),
        Err(_) => Err(ApiError::invalid(
            field,
            format!("{field} is {value}; it must be between {} and {}", range.start(), range.end()),
        )),
    }
}

pub fn finite(field: &str, value: f32, range: RangeInclusive<f32>) -> Checked<f32> {
    if !value.is_finite() {
        return Err(ApiError::invalid(field, format!("{field} must be a finite number")));
    }
    in_range(field, value, range)
}

pub fn text(field: &str, value: String) -> Checked<String> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, format!("{field} must not be empty")));
    }
    let chars = value.chars().count();
    if chars > AgentSpec::MAX_TEXT_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("{field} is {chars} characters long; the maximum is {}", AgentSpec::MAX_TEXT_CHARS),
        ));
    }
    Ok(value)
}

pub fn short_text(field: &str, value: String, max: usize) -> Checked<String> {
    let value = text(field, value)?;
    if value.chars().count() > max {
        return Err(ApiError::invalid(field, format!("{field} is longer than {max} characters")));
    }
    Ok(value)
}

pub fn http_url(field: &str, value: String) -> Checked<String> {
    let uri: Uri = value.parse().map_err(|_| ApiError::invalid(field, format!("{field} is not a URL")))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Err(ApiError::invalid(field, format!("{field} must be an http:// or https:// URL with a host")));
    }
    Ok(value)
}

pub fn name<T>(field: &str, value: String, make: impl FnOnce(String) -> Result<T, model::InvalidName>) -> Checked<T> {
    make(value).map_err(|e| ApiError::invalid(field, e.0))
}

/// The fields every OpenAI-compatible provider takes.
pub struct EndpointFields {
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub timeout_ms: Option<u32>,
    pub max_retries: Option<u32>,
}

impl std::fmt::Debug for EndpointFields {
    /// Never shows the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointFields")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("headers", &self.headers.as_ref().map(BTreeMap::len))
            .field("timeout_ms", &self.timeout_ms)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl EndpointFields {
    /// With vendor `local`, an endpoint field would be silently ignored: refuse it instead.
    pub fn refuse_for_local(&self, group: &str) -> Checked<()> {
        self.refuse_for(group, "local")
    }

    /// With any vendor but `openai`, an endpoint field would be silently ignored: refuse it.
    pub fn refuse_for(&self, group: &str, vendor: &str) -> Checked<()> {
        let set = [
            ("url", self.url.is_some()),
            ("api_key", self.api_key.is_some()),
            ("headers", self.headers.is_some()),
            ("timeout_ms", self.timeout_ms.is_some()),
            ("max_retries", self.max_retries.is_some()),
        ];
        match set.iter().find(|(_, is_set)| *is_set) {
            Some((field, _)) => Err(ApiError::invalid(
                format!("{group}.{field}"),
                format!("{group}.{field} applies only to vendor \"openai\"; {group}.vendor is {vendor:?}"),
            )),
            None => Ok(()),
        }
    }

    pub fn into_endpoint(self, group: &str, model: String) -> Checked<RemoteEndpoint> {
        let url = http_url(&format!("{group}.url"), self.url.unwrap_or_else(|| OPENAI_URL.to_owned()))?;
        let mut headers = Vec::new();
        for (key, value) in self.headers.unwrap_or_default() {
            let field = format!("{group}.headers.{key}");
            HeaderName::try_from(key.as_str())
                .map_err(|_| ApiError::invalid(&field, format!("{key:?} is not a valid header name")))?;
            HeaderValue::try_from(value.as_str())
                .map_err(|_| ApiError::invalid(&field, "the header value has characters a header cannot carry"))?;
            headers.push((key, value));
        }
        Ok(RemoteEndpoint {
            url,
            api_key: self.api_key.map(Secret::new),
            model: short_text(&format!("{group}.model"), model, 256)?,
            headers,
            timeout_ms: in_range(
                &format!("{group}.timeout_ms"),
                self.timeout_ms.unwrap_or(RemoteEndpoint::DEFAULT_TIMEOUT_MS),
                RemoteEndpoint::TIMEOUT_RANGE_MS,
            )?,
            max_retries: in_range(
                &format!("{group}.max_retries"),
                self.max_retries.unwrap_or(RemoteEndpoint::DEFAULT_MAX_RETRIES),
                0..=RemoteEndpoint::MAX_RETRIES,
            )?,
            key_header: KeyHeader::Bearer,
        })
    }
}

pub fn local_voice(field: &str, voice: String) -> Checked<String> {
    if LOCAL_VOICES.contains(&voice.as_str()) {
        Ok(voice)
    } else {
        Err(ApiError::invalid(
            field,
            format!("unknown local voice {voice:?}; the embedded voices are {LOCAL_VOICES:?}"),
        ))
    }
}

/// A prompt message's role as the vendors spell it: `system` (or OpenAI's `developer`), `user`,
/// `assistant`.
pub fn prompt_role(field: &str, role: &str) -> Checked<model::PromptRole> {
    match role {
        "system" | "developer" => Ok(model::PromptRole::System),
        "user" => Ok(model::PromptRole::User),
        "assistant" => Ok(model::PromptRole::Assistant),
        other => Err(ApiError::invalid(field, format!("{field} is {other:?}; expected system, user or assistant"))),
    }
}

/// Refuses a prompt of more than [`model::Llm::MAX_SYSTEM_MESSAGES`] messages.
pub fn prompt_length(field: &str, messages: usize) -> Checked<()> {
    if messages > model::Llm::MAX_SYSTEM_MESSAGES {
        return Err(ApiError::invalid(
            field,
            format!("{field} has {messages} messages; the maximum is {}", model::Llm::MAX_SYSTEM_MESSAGES),
        ));
    }
    Ok(())
}

/// What a request set that this server accepts but does not honour, collected while it is read:
/// the agent keeps them ([`AgentSpec::warnings`]), so the caller sees them, not only the log.
#[derive(Debug, Default)]
pub struct Warnings(Vec<model::SpecWarning>);

impl Warnings {
    /// `field` is accepted, and `why` says what happens instead.
    pub fn ignored(&mut self, field: impl Into<String>, why: impl Into<String>) {
        let (field, message) = (field.into(), why.into());
        tracing::info!(%field, %message, "a setting is accepted but not honoured");
        if !self.0.iter().any(|w| w.field == field) {
            self.0.push(model::SpecWarning { field, message });
        }
    }

    /// Takes `other`'s warnings, their fields put under `prefix` (`"properties."`).
    pub fn absorb(&mut self, prefix: &str, other: Warnings) {
        for warning in other.0 {
            self.0.push(model::SpecWarning { field: format!("{prefix}{}", warning.field), ..warning });
        }
    }

    pub fn into_vec(self) -> Vec<model::SpecWarning> {
        self.0
    }
}

/// The embedded LLMs this node can load, for checking a request's `local` model names at the edge:
/// a name it does not have is a 400 naming those it has, not a start that fails (a 503 that
/// clients retry, each retry leaving a FAILED agent behind).
pub trait LocalModels: Send + Sync + std::fmt::Debug {
    /// Whether `name` (a model name or a file path) loads here.
    fn has_llm(&self, name: &str) -> bool;
    /// The names of the LLMs there are.
    fn llm_names(&self) -> Vec<String>;
}

/// A fixed list of model names (tests, and nodes that run no agents).
#[derive(Clone, Debug)]
pub struct ListedModels(pub Vec<String>);

impl ListedModels {
    /// Only the default embedded LLM.
    pub fn default_llm() -> ListedModels {
        ListedModels(vec![model::LlmProvider::DEFAULT_LOCAL_MODEL.to_owned()])
    }
}

impl LocalModels for ListedModels {
    fn has_llm(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }

    fn llm_names(&self) -> Vec<String> {
        self.0.clone()
    }
}

/// Refuses a local LLM `name` this node does not have, naming the ones it has.
pub fn local_llm(field: &str, name: &str, models: &dyn LocalModels) -> Checked<()> {
    if models.has_llm(name) {
        return Ok(());
    }
    Err(ApiError::invalid(
        field,
        format!("{field}: there is no local model {name:?} here; the local models are {:?}", models.llm_names()),
    ))
}

/// Refuses a spec whose LLM is a local model this node does not have.
pub fn local_llm_of(field: &str, spec: &AgentSpec, models: &dyn LocalModels) -> Checked<()> {
    match &spec.llm.provider {
        model::LlmProvider::Local { model } => local_llm(field, model, models),
        model::LlmProvider::OpenAiCompatible(_) => Ok(()),
    }
}

/// Checks the text of `speak` and `think`.
pub fn command_text(value: String) -> Checked<String> {
    text("text", value)
}

const CURSOR_PREFIX: &str = "c1.";

/// A list position as an opaque cursor; the dialects' lists use the same.
pub fn encode_cursor(cursor: ListCursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{}", cursor.0))
}

pub fn decode_cursor(cursor: &str) -> Result<ListCursor, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(CURSOR_PREFIX)?.parse().ok())
        .map(ListCursor)
        .ok_or_else(|| {
            ApiError::invalid("cursor", "cursor is not one this server gave out; pass next_cursor as it came")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let cursor = encode_cursor(ListCursor(42));
        assert_eq!(decode_cursor(&cursor).unwrap(), ListCursor(42));
        for forged in ["", "42", "!!", &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("c2.1")] {
            assert_eq!(decode_cursor(forged).unwrap_err().field.as_deref(), Some("cursor"));
        }
    }
}
