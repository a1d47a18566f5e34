//! OpenAI-compatible remote providers: chat completions with SSE streaming, audio transcriptions,
//! and audio speech as streamed PCM.
//!
//! Timeouts and retries follow the endpoint's configuration: `timeout_ms` bounds the wait for the
//! answer's first byte (and any later pause in a stream), and `max_retries` retries connection
//! failures, timeouts, 429s and 5xx *before* the first byte only: once an answer has started, it is
//! never asked again, so nothing is said twice.

mod asr;
mod llm;
mod sse;
mod tool_calls;
mod tts;

use std::time::Duration;

use colloquy_model::{KeyHeader, RemoteEndpoint};

pub use asr::RemoteAsr;
pub(crate) use asr::wav_bytes;
pub use llm::RemoteLlm;
pub use tts::RemoteTts;

use crate::ProviderError;

/// The HTTP side shared by the remote providers.
#[derive(Clone, Debug)]
pub struct OpenAiClient {
    http: reqwest::Client,
    endpoint: RemoteEndpoint,
}

impl OpenAiClient {
    pub fn new(endpoint: RemoteEndpoint) -> Result<OpenAiClient, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(u64::from(endpoint.timeout_ms)))
            .build()
            .map_err(|e| ProviderError::Unavailable(format!("no HTTP client: {e}")))?;
        Ok(OpenAiClient { http, endpoint })
    }

    pub fn endpoint(&self) -> &RemoteEndpoint {
        &self.endpoint
    }

    /// How long to wait for a first byte, or for the next one in a stream.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.endpoint.timeout_ms))
    }

    /// `path` after the base URL's path, before its query.
    fn url(&self, path: &str) -> String {
        let (base, query) = match self.endpoint.url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (self.endpoint.url.as_str(), None),
        };
        let mut url = format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'));
        if let Some(query) = query.filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// A POST to `path` with the endpoint's auth and headers; `body` adds the body, fresh for each
    /// attempt.
    fn post(
        &self,
        path: &str,
        body: &dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> reqwest::RequestBuilder {
        let mut request = self.http.post(self.url(path));
        if let Some(key) = &self.endpoint.api_key {
            request = match self.endpoint.key_header {
                KeyHeader::Bearer => request.bearer_auth(key.expose()),
                KeyHeader::ApiKey => request.header("api-key", key.expose()),
            };
        }
        for (name, value) in &self.endpoint.headers {
            request = request.header(name, value);
        }
        body(request)
    }

    /// Sends until a 2xx answer's headers arrive, retrying what may be retried before the first byte.
    async fn send(
        &self,
        path: &str,
        body: &(dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync),
    ) -> Result<reqwest::Response, ProviderError> {
        crate::retry::before_first_byte(self.endpoint.max_retries, || async {
            match tokio::time::timeout(self.timeout(), self.post(path, body).send()).await {
                Err(_) => Err((ProviderError::Timeout(self.timeout()), None)),
                Ok(Err(e)) => Err((ProviderError::Unavailable(describe(e)), None)),
                Ok(Ok(response)) if response.status().is_success() => Ok(response),
                Ok(Ok(response)) => Err(refusal(response).await),
            }
        })
        .await
    }
}

/// A reqwest error, without the URL (which may carry a key in its query).
pub(crate) fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Turns a non-2xx answer into an error, with the provider's own message when it sent one.
pub(crate) async fn refusal(response: reqwest::Response) -> (ProviderError, Option<Duration>) {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(Duration::from_secs_f64);
    let body = tokio::time::timeout(Duration::from_secs(2), response.bytes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().or_else(|| v["error"].as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_owned());
    let message = if message.is_empty() { status.to_string() } else { format!("{status}: {message}") };
    let error = match status.as_u16() {
        401 | 403 => ProviderError::Auth(message),
        429 => ProviderError::RateLimited { message, retry_after },
        408 | 504 => ProviderError::Unavailable(message),
        500..=599 => ProviderError::Unavailable(message),
        _ => ProviderError::BadResponse(message),
    };
    (error, retry_after)
}
