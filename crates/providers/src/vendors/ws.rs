//! The WebSocket side the streaming vendors share: the handshake with the vendor's auth headers,
//! bounded by a timeout and retried before the first byte as the HTTP providers are, refusals
//! turned into [`ProviderError`]s by their status, and close frames into errors by their code.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream, tungstenite};

use crate::ProviderError;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The whole URL, query included. Never printed: some vendors take keys in the query.
    pub url: String,
    /// Auth and other headers for the handshake.
    pub headers: Vec<(&'static str, String)>,
    /// How long the handshake may take, and how long the vendor may stay silent afterwards.
    pub timeout: Duration,
    /// Retries of a handshake that failed in a way worth retrying (unreachable, 5xx, 429, timeout).
    pub max_retries: u32,
}

/// Connects, retrying what may be retried; nothing has been sent when this fails.
pub(crate) async fn connect(target: &Target) -> Result<Socket, ProviderError> {
    crate::retry::before_first_byte(target.max_retries, || async {
        match tokio::time::timeout(target.timeout, handshake(target)).await {
            Err(_) => Err((ProviderError::Timeout(target.timeout), None)),
            Ok(result) => result,
        }
    })
    .await
}

async fn handshake(target: &Target) -> Result<Socket, (ProviderError, Option<Duration>)> {
    let mut request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| (ProviderError::BadResponse(format!("not a WebSocket URL: {}", without_url(&e))), None))?;
    for (name, value) in &target.headers {
        let value = HeaderValue::from_str(value)
            .map_err(|_| (ProviderError::BadResponse(format!("header {name} is not a valid value")), None))?;
        request.headers_mut().insert(*name, value);
    }
    let connector = target.url.starts_with("wss://").then(|| Connector::Rustls(tls_config()));
    // Vendor messages are small (JSON, audio chunks of a few kilobytes) and every message is
    // flushed as it is sent: tungstenite's default 128 KiB read and write buffers per connection
    // are memory an agent does not need.
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024).write_buffer_size(0);
    match tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector).await {
        Ok((socket, _response)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(refusal(&response)),
        Err(e) => Err((ProviderError::Unavailable(without_url(&e)), None)),
    }
}

/// A handshake the vendor answered with an HTTP status instead of 101.
fn refusal(response: &tungstenite::http::Response<Option<Vec<u8>>>) -> (ProviderError, Option<Duration>) {
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(Duration::from_secs_f64);
    let body = response.body().as_deref().unwrap_or_default();
    let message =
        vendor_message(body).unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_owned());
    let message = if message.is_empty() { status.to_string() } else { format!("{status}: {message}") };
    let error = match status.as_u16() {
        401 | 403 => ProviderError::Auth(message),
        429 => ProviderError::RateLimited { message, retry_after },
        408 | 500..=599 => ProviderError::Unavailable(message),
        _ => ProviderError::BadResponse(message),
    };
    (error, retry_after)
}

/// The human part of a vendor's JSON error body: Deepgram's `err_msg`, ElevenLabs' `detail.message`,
/// or a `message` / `error` string.
fn vendor_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    [&value["err_msg"], &value["detail"]["message"], &value["detail"], &value["message"], &value["error"]]
        .into_iter()
        .find_map(|v| v.as_str())
        .map(str::to_owned)
}

/// Sends `message`; when that fails, the vendor may have closed the connection with a reason
/// just before, and that reason is the error.
pub(crate) async fn send(
    socket: &mut Socket,
    vendor: &str,
    message: tungstenite::Message,
) -> Result<(), ProviderError> {
    use futures_util::{SinkExt, StreamExt};
    let Err(error) = socket.send(message).await else { return Ok(()) };
    let closed = tokio::time::timeout(Duration::from_millis(200), async {
        while let Some(Ok(message)) = socket.next().await {
            if let tungstenite::Message::Close(frame) = message {
                return Some(frame);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    Err(match closed {
        Some(frame) => closed_early(frame.as_ref()),
        None => ProviderError::CutStream(format!("sending to {vendor}: {error}")),
    })
}

/// A close frame the vendor sent before the stream's end, as an error.
pub(crate) fn closed_early(frame: Option<&CloseFrame>) -> ProviderError {
    let Some(frame) = frame else {
        return ProviderError::CutStream("the vendor closed the connection".into());
    };
    let reason = frame.reason.as_str();
    let text = format!("closed with {} {reason}", u16::from(frame.code));
    match frame.code {
        // Policy: the vendors use it for bad keys and quota (ElevenLabs), bad audio (Deepgram).
        CloseCode::Policy if mentions_auth(reason) => ProviderError::Auth(text),
        CloseCode::Policy | CloseCode::Invalid | CloseCode::Unsupported | CloseCode::Size => {
            ProviderError::BadResponse(text)
        }
        CloseCode::Again => ProviderError::RateLimited { message: text, retry_after: None },
        _ => ProviderError::CutStream(text),
    }
}

fn mentions_auth(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    ["auth", "api key", "api_key", "credential", "unauthorized"].iter().any(|w| reason.contains(w))
}

/// A tungstenite error without the URL, which may carry a key in its query.
fn without_url(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    match text.find("://") {
        Some(_) => "the URL was refused".to_owned(),
        None => text,
    }
}

/// rustls on aws-lc-rs with the system's roots, as reqwest; built once.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!("no system root certificates: wss:// vendors will fail their TLS handshake");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }))
}
