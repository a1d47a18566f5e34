//! Webhook delivery. Agent events are formatted and signed by their dialect, written to the outbox
//! in the records, and delivered in order with exponential backoff while the receiver fails. Rows
//! survive restarts, so nothing is lost while a receiver is down; a delivery that keeps failing is
//! kept as dead after `max_attempts`.

use std::time::Duration;

use colloquy_model::{AgentEvent, UnixMillis};
use colloquy_store::{OutgoingWebhook, Store};
use hmac::{KeyInit, Mac};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::dialects;

/// How deliveries are made and retried.
#[derive(Clone, Copy, Debug)]
pub struct WebhookConfig {
    /// The most deliveries that may wait at once; an event beyond it is dropped with an error log.
    pub max_pending: u32,
    /// Attempts before a delivery is given up.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles with each attempt, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long one attempt may take.
    pub request_timeout: Duration,
    /// At shutdown, how long to keep delivering what is due before leaving the rest for the next start.
    pub shutdown_grace: Duration,
}

impl WebhookConfig {
    pub const DEFAULT: WebhookConfig = WebhookConfig {
        max_pending: 100_000,
        max_attempts: 20,
        first_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(300),
        request_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(3),
    };

    /// The delay after the `attempts`-th failed attempt, or `None` when it is time to give up.
    pub fn backoff(&self, attempts: u32) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        Some(self.first_backoff.saturating_mul(factor).min(self.max_backoff))
    }
}

/// `hex(HMAC-SHA256(secret, message))`.
pub fn hmac_sha256_hex(secret: &[u8], message: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Starts the delivery task. It ends after `events` closes (at shutdown) and a last round of
/// deliveries within `shutdown_grace`.
pub fn spawn(store: Store, events: mpsc::Receiver<AgentEvent>, config: WebhookConfig) -> JoinHandle<()> {
    tokio::spawn(run(store, events, config))
}

async fn run(store: Store, mut events: mpsc::Receiver<AgentEvent>, config: WebhookConfig) {
    let client = match reqwest::Client::builder().timeout(config.request_timeout).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for webhooks; deliveries wait in the outbox");
            return;
        }
    };
    loop {
        deliver_due(&store, &client, &config).await;
        let wait = match store.next_webhook_due().await {
            Ok(Some(due)) => Duration::from_millis(due.0.saturating_sub(now().0).max(0) as u64),
            Ok(None) => Duration::from_secs(3600),
            Err(e) => {
                tracing::error!(error = %e, "reading the webhook outbox");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => enqueue(&store, &config, &event).await,
                None => break,
            },
            () = tokio::time::sleep(wait) => {}
        }
    }
    // Shutdown: deliver what is due for a little while; the rest waits in the outbox.
    let _ = tokio::time::timeout(config.shutdown_grace, deliver_due(&store, &client, &config)).await;
}

async fn enqueue(store: &Store, config: &WebhookConfig, event: &AgentEvent) {
    for webhook in dialects::format_webhooks(event, store).await {
        enqueue_one(store, config, &webhook).await;
    }
}

async fn enqueue_one(store: &Store, config: &WebhookConfig, webhook: &OutgoingWebhook) {
    match store.enqueue_webhook(webhook, config.max_pending).await {
        Ok(true) => {}
        Ok(false) => tracing::error!(
            agent_id = %webhook.agent_id,
            max_pending = config.max_pending,
            "webhook outbox full; event dropped"
        ),
        Err(e) => tracing::error!(agent_id = %webhook.agent_id, error = %e, "could not queue a webhook"),
    }
}

/// Delivers every due row, oldest first. A failure reschedules that row and moves on.
async fn deliver_due(store: &Store, client: &reqwest::Client, config: &WebhookConfig) {
    loop {
        let due = match store.due_webhooks(now(), 32).await {
            Ok(due) if !due.is_empty() => due,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, "reading the webhook outbox");
                return;
            }
        };
        for pending in due {
            let result = deliver(client, &pending.webhook).await;
            let written = match result {
                Ok(()) => store.webhook_delivered(pending.seq).await,
                Err(error) => {
                    let attempts = pending.attempts + 1;
                    let retry_at = config.backoff(attempts).map(|d| UnixMillis(now().0 + d.as_millis() as i64));
                    if retry_at.is_none() {
                        tracing::error!(url = %pending.webhook.url, attempts, error, "webhook given up");
                    } else {
                        tracing::warn!(url = %pending.webhook.url, attempts, error, "webhook failed; will retry");
                    }
                    store.webhook_failed(pending.seq, &error, retry_at).await
                }
            };
            if let Err(e) = written {
                tracing::error!(error = %e, "recording a webhook attempt");
                return;
            }
        }
    }
}

async fn deliver(client: &reqwest::Client, webhook: &OutgoingWebhook) -> Result<(), String> {
    let mut request = client.post(&webhook.url).body(webhook.body.clone());
    for (name, value) in &webhook.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|e| format!("{e}"))?;
    if response.status().is_success() { Ok(()) } else { Err(format!("receiver answered {}", response.status())) }
}

fn now() -> UnixMillis {
    colloquy_supervisor::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_then_gives_up() {
        let config = WebhookConfig {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_attempts: 6,
            ..WebhookConfig::DEFAULT
        };
        let delays: Vec<_> = (1..=6).map(|n| config.backoff(n).map(|d| d.as_secs())).collect();
        assert_eq!(delays, [Some(1), Some(2), Some(4), Some(8), Some(10), None]);
    }
}
