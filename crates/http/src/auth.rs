//! HTTP Basic auth for the native API, and the per-credential rate limit that follows it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use colloquy_model::{AppId, Secret};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};

/// A key and secret that may call the API, and the app whose agents they see.
#[derive(Clone, Debug)]
pub struct Credential {
    pub key: String,
    pub secret: Secret,
    pub app: AppId,
}

/// The authenticated caller of a request, put in the request's extensions by [`require_basic_auth`].
#[derive(Clone, Debug)]
pub struct Caller {
    /// The credential's key: what rate limits count by.
    pub key: String,
    pub app: AppId,
}

/// Checks `Authorization: Basic …` against the credentials, comparing in constant time, and then
/// the caller's rate limit.
pub async fn require_basic_auth(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let peer = crate::brake::Peer::of(&parts);
    let header = parts.headers.get(header::AUTHORIZATION);
    let caller = state.braked(peer, &presented_key(header), || authenticate(&state.inner.credentials, header))?;
    let mut request = Request::from_parts(parts, body);
    state.rate_limit(&caller.key).await?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// The key a Basic header names, whatever its secret; empty when it names none.
pub fn presented_key(header: Option<&header::HeaderValue>) -> String {
    header
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")))
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|decoded| decoded.split_once(':').map(|(key, _)| key.to_owned()))
        .unwrap_or_default()
}

fn authenticate(credentials: &[Credential], header: Option<&header::HeaderValue>) -> Result<Caller, ApiError> {
    let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message);
    let header = header
        .ok_or_else(|| unauthorized("missing Authorization header; use HTTP Basic with your API key and secret"))?;
    let encoded = header
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")))
        .ok_or_else(|| unauthorized("the Authorization header must be HTTP Basic: \"Basic base64(key:secret)\""))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| unauthorized("the Basic credentials are not valid base64 of \"key:secret\""))?;
    let (key, secret) =
        decoded.split_once(':').ok_or_else(|| unauthorized("the Basic credentials must be \"key:secret\""))?;
    // Compare against every credential, without stopping at the first match, so the time taken
    // says nothing about which keys exist.
    let mut found = None;
    for credential in credentials {
        let key_matches = credential.key.as_bytes().ct_eq(key.as_bytes());
        let secret_matches = credential.secret.expose().as_bytes().ct_eq(secret.as_bytes());
        if bool::from(key_matches & secret_matches) {
            found = Some(credential);
        }
    }
    found
        .map(|credential| Caller { key: credential.key.clone(), app: credential.app.clone() })
        .ok_or_else(|| unauthorized("wrong API key or secret"))
}

/// How many requests per second each credential may make.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    /// The sustained rate. 0 turns the limit off.
    pub per_second: u32,
    /// How many requests may come at once above the sustained rate.
    pub burst: u32,
}

/// A token bucket per credential key.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter { limit, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one request from `key`'s bucket, or answers 429 with when to retry.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        let RateLimit { per_second, burst } = self.limit;
        if per_second == 0 {
            return Ok(());
        }
        let capacity = f64::from(burst.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("the rate limiter lock is never held across a panic");
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: capacity, refilled_at: now });
        let elapsed = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * f64::from(per_second)).min(capacity);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - bucket.tokens) / f64::from(per_second));
        Err(rate_limited(self.limit, wait))
    }
}

/// The 429 of a request over `limit`, with when to retry.
pub(crate) fn rate_limited(limit: RateLimit, wait: Duration) -> ApiError {
    let RateLimit { per_second, burst } = limit;
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        format!(
            "more than {per_second} requests per second (burst {burst}) with this credential; retry in {} ms",
            wait.as_millis().max(1)
        ),
    );
    error.retry_after_secs = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> header::HeaderValue {
        header::HeaderValue::from_str(value).unwrap()
    }

    fn basic(user_pass: &str) -> header::HeaderValue {
        header(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass)))
    }

    #[test]
    fn basic_auth_accepts_only_the_right_pair() {
        let credentials = [
            Credential { key: "k1".into(), secret: Secret::new("s1"), app: AppId::native() },
            Credential { key: "k2".into(), secret: Secret::new("s2"), app: AppId::new("other").unwrap() },
        ];
        let caller = authenticate(&credentials, Some(&basic("k2:s2"))).unwrap();
        assert_eq!((caller.key.as_str(), caller.app.as_str()), ("k2", "other"));
        for bad in [basic("k1:s2"), basic("k1:"), basic("k1"), header("Bearer abc"), header("Basic !!!")] {
            let err = authenticate(&credentials, Some(&bad)).unwrap_err();
            assert_eq!((err.status, err.code), (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized));
        }
        assert!(authenticate(&credentials, None).unwrap_err().message.contains("missing Authorization"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_a_burst_then_the_sustained_rate() {
        let limiter = RateLimiter::new(RateLimit { per_second: 10, burst: 3 });
        for _ in 0..3 {
            limiter.check("k").unwrap();
        }
        let err = limiter.check("k").unwrap_err();
        assert_eq!((err.status, err.retry_after_secs), (StatusCode::TOO_MANY_REQUESTS, Some(1)));
        // Another credential has its own bucket.
        limiter.check("other").unwrap();
        tokio::time::advance(Duration::from_millis(100)).await;
        limiter.check("k").unwrap();
        assert!(limiter.check("k").is_err());
    }
}
