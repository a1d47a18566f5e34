//! Webhook delivery. Agent events are formatted and signed by their dialect and written to the
//! outbox in the records: lifecycle events (started, stopped, failed) by the agent's session, in the
//! transaction that records the state change, so an event is in the outbox before any answer says
//! it happened; conversation events by this task, as they come. Rows survive restarts.
//!
//! Delivery is isolated per URL and per app: each URL has at most one delivery in flight (its rows
//! go in order), each app at most `max_in_flight_per_app`, the node at most `max_in_flight`, every
//! attempt is bounded by `connect_timeout` and `request_timeout`, and a failure is retried with
//! exponential backoff, kept as dead after `max_attempts`. A receiver that never answers holds one
//! slot of its app for one timeout per attempt, and nothing else. Nothing here is awaited by the
//! API; at shutdown, delivery goes on for `shutdown_grace` at most, and the rest waits in the outbox.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use colloquy_model::{AgentEvent, AgentEventKind, Dialect, UnixMillis};
use colloquy_store::{OutgoingWebhook, PendingWebhook, Store};
use colloquy_supervisor::{EventStream, Supervisor, WebhookFormatter};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::dialects::Dialects;

/// How deliveries are made and retried.
#[derive(Clone, Copy, Debug)]
pub struct WebhookConfig {
    /// The most conversation-event deliveries that may wait at once; an event beyond it is dropped
    /// with an error log. (Lifecycle events are always written with their state change.)
    pub max_pending: u32,
    /// Attempts before a delivery is given up.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles with each attempt, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long connecting to a receiver may take.
    pub connect_timeout: Duration,
    /// How long one attempt may take, from connecting to the answer's status.
    pub request_timeout: Duration,
    /// The most deliveries in flight at once on this node.
    pub max_in_flight: u32,
    /// The most deliveries in flight at once for one app, so that one app's slow receivers leave
    /// the other apps' deliveries alone.
    pub max_in_flight_per_app: u32,
    /// At shutdown, how long to keep delivering what is due before leaving the rest for the next start.
    pub shutdown_grace: Duration,
}

impl WebhookConfig {
    pub const DEFAULT: WebhookConfig = WebhookConfig {
        max_pending: 100_000,
        max_attempts: 20,
        first_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(300),
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(10),
        max_in_flight: 64,
        max_in_flight_per_app: 16,
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

pub use colloquy_model::signature::hmac_sha256_hex;

/// Every agent's webhook format: the native one for agents of the native API, the vendor
/// dialects' for theirs. The supervisor's sessions format lifecycle webhooks with it, and the
/// delivery task conversation events.
#[derive(Clone, Debug)]
pub struct Formats {
    store: Store,
    dialects: Arc<dyn Dialects>,
}

impl Formats {
    pub fn new(store: Store, dialects: Arc<dyn Dialects>) -> Formats {
        Formats { store, dialects }
    }

    /// The deliveries for `event`, in the form of the API that started the agent.
    pub async fn format(&self, event: &AgentEvent) -> Vec<OutgoingWebhook> {
        match event.agent.spec.origin.dialect {
            Dialect::Native => crate::native::webhooks::format(event).into_iter().collect(),
            _ => self.dialects.format_webhooks(event, &self.store).await,
        }
    }
}

impl WebhookFormatter for Formats {
    fn format<'a>(&'a self, event: &'a AgentEvent) -> Pin<Box<dyn Future<Output = Vec<OutgoingWebhook>> + Send + 'a>> {
        Box::pin(Formats::format(self, event))
    }
}

/// Gives `supervisor` the webhook formats of the native API and `dialects` (its sessions write
/// lifecycle webhooks with their state changes), takes its event stream, and starts delivering.
/// The task ends after shutdown, once the stream has ended and a last round of deliveries within
/// `shutdown_grace`. Call it once, before the first agent starts.
pub fn spawn(supervisor: &Supervisor, config: WebhookConfig, dialects: Arc<dyn Dialects>) -> JoinHandle<()> {
    let formats = Formats::new(supervisor.store().clone(), dialects);
    supervisor.set_webhooks(Arc::new(formats.clone()));
    let events = supervisor.take_events().unwrap_or_else(|| {
        tracing::error!("the event stream was taken already; conversation events have no webhooks");
        EventStream::from_receiver(mpsc::channel(1).1)
    });
    deliver(formats, events, config)
}

/// Delivers what is in the outbox, and queues the webhooks of the conversation events that come on
/// `events` (formatted by `formats`), until `events` closes; then delivers for `shutdown_grace` at
/// most.
pub fn deliver(formats: Formats, events: EventStream, config: WebhookConfig) -> JoinHandle<()> {
    tokio::spawn(run(formats, events, config))
}

/// The deliveries in flight.
struct InFlight {
    tasks: JoinSet<(String, String)>,
    urls: HashSet<String>,
    per_app: HashMap<String, u32>,
}

impl InFlight {
    fn done(&mut self, url: String, app: String) {
        self.urls.remove(&url);
        if let Some(n) = self.per_app.get_mut(&app) {
            *n = n.saturating_sub(1);
        }
    }
}

async fn run(formats: Formats, mut events: EventStream, config: WebhookConfig) {
    let store = formats.store.clone();
    let client = match reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for webhooks; deliveries wait in the outbox");
            return;
        }
    };
    let written = store.outbox_written();
    let mut in_flight = InFlight { tasks: JoinSet::new(), urls: HashSet::new(), per_app: HashMap::new() };
    loop {
        start_due(&store, &client, &config, &mut in_flight).await;
        let wait = match store.next_webhook_due().await {
            // Rows due now that could not start (their URL or app is busy) wait for a slot, which
            // a finished delivery frees; a short floor keeps this from spinning.
            Ok(Some(due)) => Duration::from_millis(due.0.saturating_sub(now().0).clamp(250, 3_600_000) as u64),
            Ok(None) => Duration::from_secs(3600),
            Err(e) => {
                tracing::error!(error = %e, "reading the webhook outbox");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            Some(done) = in_flight.tasks.join_next(), if !in_flight.tasks.is_empty() => {
                if let Ok((url, app)) = done {
                    in_flight.done(url, app);
                }
            }
            event = events.recv() => match event {
                Some(event) => enqueue(&formats, &config, &event).await,
                None => break,
            },
            () = written.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    // Shutdown: deliver what is due for a little while; the rest waits in the outbox.
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    loop {
        start_due(&store, &client, &config, &mut in_flight).await;
        if in_flight.tasks.is_empty() {
            break;
        }
        tokio::select! {
            Some(done) = in_flight.tasks.join_next() => {
                if let Ok((url, app)) = done {
                    in_flight.done(url, app);
                }
            }
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    in_flight.tasks.abort_all();
}

/// Conversation events only: the sessions write lifecycle events' webhooks with their states.
async fn enqueue(formats: &Formats, config: &WebhookConfig, event: &AgentEvent) {
    if !matches!(event.kind, AgentEventKind::Conversation(_)) {
        return;
    }
    for webhook in formats.format(event).await {
        match formats.store.enqueue_webhook(&webhook, config.max_pending).await {
            Ok(true) => {}
            Ok(false) => tracing::error!(
                agent_id = %webhook.agent_id,
                max_pending = config.max_pending,
                "webhook outbox full; event dropped"
            ),
            Err(e) => tracing::error!(agent_id = %webhook.agent_id, error = %e, "could not queue a webhook"),
        }
    }
}

/// Starts the due deliveries that have a free slot: their URL idle, their app and the node under
/// their limits. Each app is asked for its own due rows, so one app's backlog cannot hide another's.
async fn start_due(store: &Store, client: &reqwest::Client, config: &WebhookConfig, in_flight: &mut InFlight) {
    if in_flight.tasks.len() >= config.max_in_flight as usize {
        return;
    }
    let at = now();
    let apps = match store.apps_with_due_webhooks(at).await {
        Ok(apps) => apps,
        Err(e) => {
            tracing::error!(error = %e, "reading the webhook outbox");
            return;
        }
    };
    for app in apps {
        let used = in_flight.per_app.get(&app).copied().unwrap_or(0);
        let room = (config.max_in_flight as usize).saturating_sub(in_flight.tasks.len());
        let free = (config.max_in_flight_per_app.saturating_sub(used) as usize).min(room);
        if free == 0 {
            continue;
        }
        // This app's in-flight rows are due too (each is first for its URL): ask for that many more.
        let due = match store.due_webhooks_of_app(&app, at, (free as u32).saturating_add(used)).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "reading the webhook outbox");
                return;
            }
        };
        let mut started = 0;
        for pending in due {
            if started == free {
                break;
            }
            if !in_flight.urls.insert(pending.webhook.url.clone()) {
                continue;
            }
            *in_flight.per_app.entry(app.clone()).or_default() += 1;
            started += 1;
            in_flight.tasks.spawn(attempt(store.clone(), client.clone(), *config, pending));
        }
    }
}

/// One attempt, and its outcome written down. Answers the URL and app it held.
async fn attempt(
    store: Store,
    client: reqwest::Client,
    config: WebhookConfig,
    pending: PendingWebhook,
) -> (String, String) {
    let written = match post(&client, &pending.webhook).await {
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
        // The row stays pending as it was: it is tried again (not at once: the records are
        // failing), and its receiver may see it twice.
        tracing::error!(error = %e, "recording a webhook attempt");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    (pending.webhook.url, pending.app)
}

async fn post(client: &reqwest::Client, webhook: &OutgoingWebhook) -> Result<(), String> {
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
