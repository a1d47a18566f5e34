//! Webhooks to a local receiver: signed, retried with backoff on 5xx, and kept in the records while
//! the receiver is down, across a restart too.

mod common;

use common::Receiver;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use colloquy_http::webhooks::{self, WebhookConfig};
use colloquy_store::Store;
use colloquy_supervisor::{Supervisor, SupervisorConfig};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const FAST: WebhookConfig = WebhookConfig {
    max_pending: 1000,
    max_attempts: 50,
    first_backoff: Duration::from_millis(20),
    max_backoff: Duration::from_millis(100),
    connect_timeout: Duration::from_secs(1),
    request_timeout: Duration::from_secs(2),
    max_in_flight: 64,
    max_in_flight_per_app: 16,
    shutdown_grace: Duration::from_millis(500),
};

/// The accepted deliveries with their bodies parsed, once `count` of them arrived.
async fn accepted_json(receiver: &Receiver, count: usize) -> Vec<(HeaderMap, Value)> {
    receiver.accepted(count).await.into_iter().map(|(h, b)| (h, serde_json::from_str(&b).unwrap())).collect()
}

fn independent_hmac(secret: &str, message: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn supervisor(dir: &tempfile::TempDir) -> (Supervisor, Store) {
    let store = Store::open(&dir.path().join("colloquy.db")).await.unwrap();
    let supervisor = Supervisor::new(store.clone(), SupervisorConfig { max_agents: 10 });
    supervisor.recover().await.unwrap();
    (supervisor, store)
}

fn router(supervisor: &Supervisor) -> axum::Router {
    colloquy_http::router(
        supervisor.clone(),
        colloquy_http::HttpConfig {
            credentials: vec![colloquy_http::auth::Credential {
                key: common::KEY.into(),
                secret: colloquy_model::Secret::new(common::SECRET),
                app: colloquy_model::AppId::native(),
            }],
            apps: colloquy_http::apps::Apps::default(),
            rate_limit: colloquy_http::auth::RateLimit { per_second: 0, burst: 0 },
            brake: colloquy_http::brake::BrakeConfig::DEFAULT,
            rtc: colloquy_http::rtc::RtcEdge::new(colloquy_rtc::token::TokenSigner::new(b"secret"), None),
            playground: false,
            dialects: std::sync::Arc::new(colloquy_http::dialects::NoDialects),
            local_models: std::sync::Arc::new(colloquy_http::fields::ListedModels::default_llm()),
            speech_vendors: std::sync::Arc::new(colloquy_http::vendors::NoVendors),
            cluster: None,
        },
    )
}

async fn call(router: &axum::Router, path: &str, body: Value) -> Value {
    use tower::ServiceExt;
    let request = axum::http::Request::post(path)
        .header("authorization", common::basic(common::KEY, common::SECRET))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn lifecycle_events_arrive_signed_and_in_order_after_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (supervisor, store) = supervisor(&dir).await;
    let delivery = webhooks::spawn(&supervisor, FAST, std::sync::Arc::new(colloquy_http::dialects::NoDialects));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let receiver = Receiver { refuse_first: Arc::new(Mutex::new(3)), ..Receiver::default() };
    receiver.listen(listener).await;

    let api = router(&supervisor);
    let agent = call(
        &api,
        "/v1/agents",
        json!({"name": "hooked", "channel": "room", "idle_timeout": 0,
        "callbacks": {"url": url, "secret": "whsec-test"}}),
    )
    .await;
    assert_eq!(agent["config"]["callbacks"]["secret"], "<redacted>");
    let id = agent["agent_id"].as_str().unwrap();
    call(&api, &format!("/v1/agents/{id}/leave"), json!({})).await;

    let accepted = accepted_json(&receiver, 2).await;
    let events: Vec<_> = accepted.iter().map(|(_, body)| body["event"].as_str().unwrap().to_owned()).collect();
    assert_eq!(events, ["agent.started", "agent.stopped"]);
    let (_, stopped) = &accepted[1];
    assert_eq!(
        (stopped["agent"]["status"].as_str(), stopped["agent"]["reason"]["code"].as_str()),
        (Some("STOPPED"), Some("left"))
    );
    // The 503s were retried: three refusals before the first acceptance.
    assert_eq!(receiver.requests.lock().unwrap().len(), 5);
    for (headers, body) in receiver.requests.lock().unwrap().iter() {
        let timestamp = headers["x-colloquy-timestamp"].to_str().unwrap();
        let expected = format!("sha256={}", independent_hmac("whsec-test", &format!("{timestamp}.{body}")));
        assert_eq!(headers["x-colloquy-signature"], expected.as_str());
        assert_eq!(headers["content-type"], "application/json");
    }
    supervisor.shutdown().await;
    delivery.await.unwrap();
    assert_eq!(store.webhook_counts().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn nothing_is_lost_while_the_receiver_is_down_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // A port with nobody listening: bind, note it, let go.
    let address = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let url = format!("http://{address}/hook");
    {
        let (supervisor, store) = supervisor(&dir).await;
        let delivery = webhooks::spawn(&supervisor, FAST, std::sync::Arc::new(colloquy_http::dialects::NoDialects));
        let api = router(&supervisor);
        for name in ["a", "b"] {
            call(
                &api,
                "/v1/agents",
                json!({"name": name, "channel": "room", "idle_timeout": 0, "callbacks": {"url": url}}),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        supervisor.shutdown().await;
        delivery.await.unwrap();
        // Two starts and two shutdown stops wait in the records, after several failed attempts.
        assert_eq!(store.webhook_counts().await.unwrap(), (4, 0));
        store.close().await;
    }
    // The next start finds them and delivers once the receiver is back.
    let (supervisor, store) = supervisor(&dir).await;
    let delivery = webhooks::spawn(&supervisor, FAST, std::sync::Arc::new(colloquy_http::dialects::NoDialects));
    let receiver = Receiver::default();
    receiver.listen(TcpListener::bind(address).await.unwrap()).await;
    let accepted = accepted_json(&receiver, 4).await;
    let seen: Vec<_> = accepted
        .iter()
        .map(|(_, b)| format!("{} {}", b["agent"]["name"].as_str().unwrap(), b["event"].as_str().unwrap()))
        .collect();
    // In the order the events happened: one URL's deliveries never overtake each other.
    assert_eq!(seen[..2], ["a agent.started", "b agent.started"]);
    let mut stops = seen[2..].to_vec();
    stops.sort();
    assert_eq!(stops, ["a agent.stopped", "b agent.stopped"]);
    // Delivery ids are unique, so a receiver can deduplicate.
    let mut ids: Vec<_> = accepted.iter().map(|(h, _)| h["x-colloquy-delivery"].to_str().unwrap().to_owned()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    supervisor.shutdown().await;
    delivery.await.unwrap();
    assert_eq!(store.webhook_counts().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_is_given_up_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (supervisor, store) = supervisor(&dir).await;
    let config = WebhookConfig { max_attempts: 3, ..FAST };
    let delivery = webhooks::spawn(&supervisor, config, std::sync::Arc::new(colloquy_http::dialects::NoDialects));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let receiver = Receiver { refuse_first: Arc::new(Mutex::new(usize::MAX)), ..Receiver::default() };
    receiver.listen(listener).await;
    call(
        &router(&supervisor),
        "/v1/agents",
        json!({"name": "x", "channel": "room", "idle_timeout": 0, "callbacks": {"url": url}}),
    )
    .await;
    for _ in 0..300 {
        if store.webhook_counts().await.unwrap() == (0, 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.webhook_counts().await.unwrap(), (0, 1));
    assert_eq!(receiver.requests.lock().unwrap().len(), 3);
    drop(delivery);
}

/// A receiver that accepts connections and never answers; answers its address and a count of the
/// connections it holds.
async fn hanging_receiver() -> (std::net::SocketAddr, Arc<Mutex<Vec<tokio::net::TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            keep.lock().unwrap().push(stream);
        }
    });
    (address, held)
}

/// The API with two apps: the native one (B here) and "other" (A).
fn two_app_router(supervisor: &Supervisor) -> axum::Router {
    colloquy_http::router(
        supervisor.clone(),
        colloquy_http::HttpConfig {
            credentials: vec![
                colloquy_http::auth::Credential {
                    key: common::KEY.into(),
                    secret: colloquy_model::Secret::new(common::SECRET),
                    app: colloquy_model::AppId::native(),
                },
                colloquy_http::auth::Credential {
                    key: "app-a".into(),
                    secret: colloquy_model::Secret::new("app-a-secret"),
                    app: colloquy_model::AppId::new("app-a").unwrap(),
                },
            ],
            apps: colloquy_http::apps::Apps::default(),
            rate_limit: colloquy_http::auth::RateLimit { per_second: 0, burst: 0 },
            brake: colloquy_http::brake::BrakeConfig::DEFAULT,
            rtc: colloquy_http::rtc::RtcEdge::new(colloquy_rtc::token::TokenSigner::new(b"secret"), None),
            playground: false,
            dialects: std::sync::Arc::new(colloquy_http::dialects::NoDialects),
            local_models: std::sync::Arc::new(colloquy_http::fields::ListedModels::default_llm()),
            speech_vendors: std::sync::Arc::new(colloquy_http::vendors::NoVendors),
            cluster: None,
        },
    )
}

async fn start_as(router: &axum::Router, auth: (&str, &str), body: Value) -> (u16, Value) {
    use tower::ServiceExt;
    let request = axum::http::Request::post("/v1/agents")
        .header("authorization", common::basic(auth.0, auth.1))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// B's start-to-`agent.started` delivery times and its plain starts' answer times, `n` of each.
async fn measure_b(
    api: &axum::Router,
    receiver: &Receiver,
    url: &str,
    round: &str,
    n: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let b = (common::KEY, common::SECRET);
    let (mut deliveries, mut starts) = (Vec::new(), Vec::new());
    for i in 0..n {
        let before = receiver.accepted.lock().unwrap().len();
        let began = std::time::Instant::now();
        let body = json!({"name": format!("{round}-hooked-{i}"), "channel": "room", "idle_timeout": 0, "callbacks": {"url": url}});
        let (status, agent) = start_as(api, b, body).await;
        assert_eq!(status, 200, "{agent}");
        receiver.accepted(before + 1).await;
        deliveries.push(began.elapsed());

        let began = std::time::Instant::now();
        let (status, agent) =
            start_as(api, b, json!({"name": format!("{round}-plain-{i}"), "channel": "room", "idle_timeout": 0})).await;
        assert_eq!(status, 200, "{agent}");
        starts.push(began.elapsed());
    }
    (deliveries, starts)
}

/// App A's receivers accept and never answer. App B's webhooks and starts go on as before: their
/// times under A's load are compared with a baseline measured first, in this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apps_hanging_receivers_do_not_hold_up_another_apps_webhooks_or_starts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("colloquy.db")).await.unwrap();
    let supervisor = Supervisor::new(store.clone(), SupervisorConfig { max_agents: 1000 });
    supervisor.recover().await.unwrap();
    let config =
        WebhookConfig { request_timeout: Duration::from_secs(5), shutdown_grace: Duration::from_secs(1), ..FAST };
    let delivery = webhooks::spawn(&supervisor, config, std::sync::Arc::new(colloquy_http::dialects::NoDialects));
    let api = two_app_router(&supervisor);
    let receiver = Receiver::default();
    let b_url = receiver.start().await;

    let (baseline_deliveries, baseline_starts) = measure_b(&api, &receiver, &b_url, "before", 9).await;

    // A: 200 agents, each with its own URL on receivers that never answer.
    let (hanging, held) = hanging_receiver().await;
    let a = ("app-a", "app-a-secret");
    for i in 0..200 {
        let body = json!({"name": format!("a{i}"), "channel": "room", "idle_timeout": 0,
            "callbacks": {"url": format!("http://{hanging}/hook/{i}")}});
        let (status, agent) = start_as(&api, a, body).await;
        assert_eq!(status, 200, "{agent}");
    }
    // Every one of A's `agent.started` is in the outbox already: none can have been delivered.
    assert_eq!(store.webhook_counts().await.unwrap().0, 200);
    // A's deliveries are under way and holding connections.
    for _ in 0..500 {
        if held.lock().unwrap().len() >= config.max_in_flight_per_app as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(held.lock().unwrap().len() >= config.max_in_flight_per_app as usize, "A's deliveries never started");

    let (loaded_deliveries, loaded_starts) = measure_b(&api, &receiver, &b_url, "during", 9).await;
    let (base_d, load_d) = (median(baseline_deliveries), median(loaded_deliveries.clone()));
    let (base_s, load_s) = (median(baseline_starts), median(loaded_starts.clone()));
    eprintln!("B's webhook: {base_d:?} → {load_d:?}; B's start: {base_s:?} → {load_s:?}");
    // Generous ratios against the baseline: before the fix B waited whole timeouts behind A.
    assert!(load_d < base_d * 10 + base_s, "B's webhooks slowed from {base_d:?} to {load_d:?}");
    assert!(load_s < base_s * 10, "B's starts slowed from {base_s:?} to {load_s:?}");
    let slowest = *loaded_deliveries.iter().max().unwrap();
    assert!(slowest < config.request_timeout, "a B webhook waited {slowest:?}, as long as one of A's timeouts");

    // Shutdown is bounded though A's deliveries still hang: the drain gives up after its grace.
    let began = std::time::Instant::now();
    supervisor.shutdown().await;
    delivery.await.unwrap();
    let drain = began.elapsed();
    assert!(drain < config.shutdown_grace + config.request_timeout, "the drain took {drain:?}");
    // A's webhooks wait in the outbox for the next start: none were lost.
    let (pending, dead) = store.webhook_counts().await.unwrap();
    assert!(pending >= 400 && dead == 0, "pending {pending}, dead {dead}");
}
