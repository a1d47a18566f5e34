//! Request bodies and query strings, parsed so that every refusal names the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest URI (path and query) accepted, in bytes. hyper itself refuses a request line of
/// 64 KiB or more, with an empty 414, before any of this code sees it.
pub const MAX_URI_BYTES: usize = 16 * 1024;

/// A JSON body parsed into `T`. Unknown fields, missing fields and wrong types become 400s that
/// name the field by its path.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

/// Like [`ValidJson`], but an empty body counts as `{}` (for commands without parameters).
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(request, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidJson,
                "the request body is empty; expected a JSON object",
            ));
        }
        parse_json(&bytes).map(ValidJson)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(request, state).await?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { Bytes::from_static(b"{}") } else { bytes };
        parse_json(&bytes).map(OptionalJson)
    }
}

async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    let has_body = request.headers().get(header::CONTENT_LENGTH).is_none_or(|len| len != "0");
    if has_body && let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
        let is_json = content_type
            .to_str()
            .ok()
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
    }
    RawBody::from_request(request, state).await.map(|RawBody(bytes)| bytes)
}

/// Answers 414 to a URI over [`MAX_URI_BYTES`], and 413 at once to a request whose
/// `Content-Length` is over the limit, before anything reads the body: so `Expect: 100-continue`
/// gets the 413 instead of `100 Continue`, and the client never sends the body.
pub async fn refuse_oversize(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri_bytes = request.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
            format!("the URI is {uri_bytes} bytes long; the limit is {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > MAX_BODY_BYTES as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body is {length} bytes long; the limit is {MAX_BODY_BYTES} bytes"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// A request body as bytes, whatever its type; over [`MAX_BODY_BYTES`] it is a 413 [`ApiError`]
/// (which a dialect turns into its own envelope).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<RawBody, ApiError> {
        Bytes::from_request(request, state).await.map(RawBody).map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidJson, rejection.body_text())
            }
        })
    }
}

/// Parses `bytes` as a `T`, turning serde's errors into 400s that name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would also read a struct from a JSON array, field by position; the API takes objects only.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidJson, "the body must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => data_error(&path, &inner.to_string()),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidJson,
                format!("the body is not valid JSON: {inner}"),
            ),
        }
    })?;
    deserializer.end().map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidJson, format!("the body is not valid JSON: {e}"))
    })?;
    Ok(value)
}

/// Classifies a data error by serde's message, which is stable across serde versions for these
/// three cases, and completes the path for missing and unknown fields.
fn data_error(path: &str, message: &str) -> ApiError {
    let message = strip_position(message);
    let backticked =
        |prefix: &str| message.strip_prefix(prefix).and_then(|rest| rest.split('`').next()).map(str::to_owned);
    let join = |parent: &str, child: &str| {
        if parent.is_empty() || parent == "." { child.to_owned() } else { format!("{parent}.{child}") }
    };
    if let Some(name) = backticked("missing field `") {
        let field = join(path, &name);
        return ApiError::field(ErrorCode::MissingField, field.clone(), format!("{field} is required"));
    }
    if let Some(name) = backticked("unknown field `") {
        // serde_path_to_error's path already ends with the unknown key.
        let field = if path.ends_with(&name) { path.to_owned() } else { join(path, &name) };
        return ApiError::field(ErrorCode::UnknownField, field.clone(), format!("{field}: {message}"));
    }
    if path.is_empty() || path == "." {
        let text = format!("the body does not have the expected shape: {message}");
        return ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidJson, text);
    }
    ApiError::invalid(path, format!("{path}: {message}"))
}

/// serde_json appends " at line 1 column 42"; the field path says more.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    }
}

/// A query string parsed into `T`; unknown and malformed parameters are 400s naming the parameter.
#[derive(Debug)]
pub struct ValidQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ValidQuery).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let mut error = data_error(&path, &message);
            if error.code == ErrorCode::InvalidJson {
                error.code = ErrorCode::InvalidField;
                error.message = format!("the query string is malformed: {message}");
            }
            error
        })
    }
}
