//! The API over PostgreSQL, on a server of the test's own: when the server cannot be reached,
//! requests that need the records are answered 503 `records_unavailable` and nothing is done; when
//! it is back, they work again without a restart. And two nodes' webhook deliveries on one
//! database: every webhook reaches its receiver once, in order per URL.

mod common;
#[path = "../../store/tests/common/postgres.rs"]
mod postgres;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use colloquy_http::webhooks::{self, Formats};
use colloquy_model::{AgentId, UnixMillis};
use colloquy_store::{OutgoingWebhook, Store};
use colloquy_supervisor::EventStream;
use common::{Options, Receiver};
use postgres::PostgresServer;

#[tokio::test]
async fn postgres_unreachable_answers_503_and_requests_resume_when_it_returns() {
    let mut server = PostgresServer::start();
    let store = Store::open_postgres(&server.create_database()).await.unwrap();
    let api = common::api_on(store, Options::default(), None).await;
    let before = api.start("before", "room").await;

    server.stop();
    let refused = api.post("/v1/agents", r#"{"name":"during","channel":"room","idle_timeout":0}"#).await;
    common::assert_error(&refused, StatusCode::SERVICE_UNAVAILABLE, "records_unavailable", None);
    assert!(refused.headers.contains_key("retry-after"), "{:?}", refused.headers);
    let list = api.get("/v1/agents").await;
    common::assert_error(&list, StatusCode::SERVICE_UNAVAILABLE, "records_unavailable", None);
    assert!(api.store.unrecorded().get("agent").is_some_and(|&n| n >= 1), "{:?}", api.store.unrecorded());

    server.restart();
    let after = api.start("after", "room").await;
    let list = api.get("/v1/agents").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let names: Vec<&str> =
        list.json["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["after", "before"], "the refused start left nothing behind");
    for id in [&before, &after] {
        assert_eq!(api.get(&format!("/v1/agents/{id}")).await.status, StatusCode::OK);
    }
    // The same name is free: the refused start was not recorded.
    api.start("during", "room").await;
    api.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_deliver_every_webhook_once_in_order_per_url() {
    let server = PostgresServer::start();
    let url = server.create_database();
    let receivers: Vec<Receiver> = (0..4).map(|_| Receiver::default()).collect();
    let mut urls = Vec::new();
    for receiver in &receivers {
        urls.push(receiver.start().await);
    }
    const PER_URL: usize = 50;
    let writer = Store::open_postgres(&url).await.unwrap();
    for i in 0..PER_URL {
        for (u, to) in urls.iter().enumerate() {
            let hook = OutgoingWebhook {
                agent_id: AgentId::from_string(format!("agent{u}")),
                url: to.clone(),
                headers: vec![("content-type".into(), "text/plain".into())],
                body: format!("{u}:{i:03}"),
                created_at: UnixMillis(i as i64),
            };
            assert!(writer.enqueue_webhook(&hook, 10_000).await.unwrap());
        }
    }
    // Two nodes: a store each on the one database, each with its delivery task.
    let mut nodes = Vec::new();
    let mut event_senders = Vec::new();
    for _ in 0..2 {
        let store = Store::open_postgres(&url).await.unwrap();
        let formats = Formats::new(store.clone(), std::sync::Arc::new(colloquy_http::dialects::NoDialects));
        let (events_tx, events) = tokio::sync::mpsc::channel(8);
        event_senders.push(events_tx);
        nodes.push((store, webhooks::deliver(formats, EventStream::from_receiver(events), common::FAST_WEBHOOKS)));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while receivers.iter().any(|r| r.accepted.lock().unwrap().len() < PER_URL) {
        assert!(std::time::Instant::now() < deadline, "the deliveries did not all arrive");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Both nodes stop (their event streams end); nothing more may arrive.
    drop(event_senders);
    for (_, delivery) in nodes {
        delivery.await.unwrap();
    }
    for (u, receiver) in receivers.iter().enumerate() {
        let bodies: Vec<String> = receiver.requests.lock().unwrap().iter().map(|(_, body)| body.clone()).collect();
        let expected: Vec<String> = (0..PER_URL).map(|i| format!("{u}:{i:03}")).collect();
        let mut times: BTreeMap<&str, usize> = BTreeMap::new();
        for body in &bodies {
            *times.entry(body).or_default() += 1;
        }
        assert!(times.values().all(|&n| n == 1), "a webhook delivered twice: {times:?}");
        assert_eq!(bodies, expected, "receiver {u}: every webhook once, in order");
    }
    assert_eq!(writer.webhook_counts().await.unwrap(), (0, 0));
}
