//! Retries before the first byte of an answer: a connection that failed, a timeout, a 429 or a
//! 5xx is tried again (after the `Retry-After` the provider gave, else an exponential backoff);
//! once an answer has started it is never asked for again, so nothing is said twice.

use std::future::Future;
use std::time::Duration;

use crate::ProviderError;

/// A failed attempt: the error, and how long the provider asked to wait, if it did.
pub(crate) type Refusal = (ProviderError, Option<Duration>);

/// Runs `attempt` until it succeeds, fails in a way not worth retrying, or has been retried
/// `max_retries` times.
pub(crate) async fn before_first_byte<T, F, Fut>(max_retries: u32, mut attempt: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Refusal>>,
{
    let mut retries = 0;
    loop {
        let (error, retry_after) = match attempt().await {
            Ok(answer) => return Ok(answer),
            Err(refusal) => refusal,
        };
        let retryable = matches!(
            error,
            ProviderError::Timeout(_) | ProviderError::Unavailable(_) | ProviderError::RateLimited { .. }
        );
        if !retryable || retries >= max_retries {
            return Err(error);
        }
        retries += 1;
        let backoff = Duration::from_millis(200 * (1 << retries.min(6)));
        let wait = retry_after.map_or(backoff, |r| r.min(Duration::from_secs(10)));
        tracing::debug!(%error, retries, ?wait, "retrying the provider");
        tokio::time::sleep(wait).await;
    }
}
