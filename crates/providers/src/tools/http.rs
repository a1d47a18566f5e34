//! HTTP tools: a call is a POST of its arguments (a JSON object) to the tool's URL, signed like
//! native webhooks, and the answer's JSON is the result.
//!
//! ```text
//! POST <url>
//! Content-Type: application/json
//! X-Colloquy-Tool: <tool name>
//! X-Colloquy-Tool-Call: <the LLM's call id>
//! X-Colloquy-Agent: <agent id>
//! X-Colloquy-Timestamp: <ms since the epoch>
//! X-Colloquy-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>  (when the agent's callbacks have a secret)
//!
//! {"city": "Paris"}
//! ```
//!
//! A 2xx answer with a JSON body of at most [`MAX_RESULT_BYTES`](super::MAX_RESULT_BYTES) is the
//! result; anything else (another status, a body that is not JSON or too large, no answer within
//! the tool's timeout, arguments that are not a JSON object) is a failed call, with a message that
//! says which.

use std::time::Duration;

use colloquy_model::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};
use colloquy_model::{Secret, ToolCall, ToolOutcome};
use futures_util::StreamExt;

use super::{MAX_RESULT_BYTES, oversized};

pub const TOOL_HEADER: &str = "X-Colloquy-Tool";
pub const CALL_HEADER: &str = "X-Colloquy-Tool-Call";
pub const AGENT_HEADER: &str = "X-Colloquy-Agent";

/// The HTTP client of an agent's HTTP tools.
#[derive(Clone, Debug)]
pub struct HttpTools {
    http: reqwest::Client,
}

/// One call of an HTTP tool.
#[derive(Debug)]
pub struct HttpToolCall<'a> {
    pub url: &'a str,
    pub call: &'a ToolCall,
    pub agent_id: &'a str,
    /// The agent's callback secret, which signs the call.
    pub secret: Option<&'a Secret>,
    pub timeout: Duration,
    /// When the call is sent, ms since the epoch (the caller reads the clock).
    pub timestamp_ms: i64,
}

impl HttpTools {
    pub fn new() -> Result<HttpTools, crate::ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| crate::ProviderError::Unavailable(format!("no HTTP client: {e}")))?;
        Ok(HttpTools { http })
    }

    pub async fn call(&self, call: HttpToolCall<'_>) -> ToolOutcome {
        match tokio::time::timeout(call.timeout, self.exchange(&call)).await {
            Ok(Ok(result)) => ToolOutcome::Ok(result),
            Ok(Err(error)) => ToolOutcome::Failed(error),
            Err(_) => ToolOutcome::Failed(format!("no answer within {} ms", call.timeout.as_millis())),
        }
    }

    async fn exchange(&self, call: &HttpToolCall<'_>) -> Result<String, String> {
        let arguments = match serde_json::from_str::<serde_json::Value>(&call.call.arguments) {
            Ok(arguments @ serde_json::Value::Object(_)) => arguments,
            Ok(_) => return Err("the arguments must be a JSON object".into()),
            Err(e) => return Err(format!("the arguments are not JSON: {e}")),
        };
        let body = arguments.to_string();
        let timestamp = call.timestamp_ms.to_string();
        let mut request = self
            .http
            .post(call.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TOOL_HEADER, &call.call.name)
            .header(CALL_HEADER, &call.call.id)
            .header(AGENT_HEADER, call.agent_id)
            .header(TIMESTAMP_HEADER, &timestamp);
        if let Some(secret) = call.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &timestamp, &body));
        }
        let response = request.body(body).send().await.map_err(crate::remote::describe)?;
        let status = response.status();
        let body = read_limited(response).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_owned();
            return Err(format!("the tool answered {status}: {text}"));
        }
        let result: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("the tool's answer is not JSON: {e}"))?;
        Ok(result.to_string())
    }
}

/// The answer's body, refused as soon as it is larger than the limit.
async fn read_limited(response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(crate::remote::describe)?;
        body.extend_from_slice(&chunk);
        if body.len() > MAX_RESULT_BYTES {
            let declared = body.len();
            return Err(oversized(declared));
        }
    }
    Ok(body)
}
