//! The victims of a crash get their ending webhook: a real `colloquy serve` is killed with SIGKILL
//! while agents run, restarted on the same data dir, and a receiver counts what each agent got.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

const APP_ID: &str = "0123456789abcdef0123456789abcdef";
const CUSTOMER_ID: &str = "customer-id";
const CUSTOMER_SECRET: &str = "customer-secret";

/// What arrived: (path, event name, agent id, body).
type Deliveries = Arc<Mutex<Vec<(String, String, String, Value)>>>;

async fn receiver(deliveries: Deliveries) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let record = move |path: &'static str| {
        let deliveries = deliveries.clone();
        axum::routing::post(move |body: String| {
            let deliveries = deliveries.clone();
            async move {
                let body: Value = serde_json::from_str(&body).unwrap();
                let (event, agent) = match path {
                    "native" => (body["event"].to_string(), body["agent"]["agent_id"].as_str().unwrap().to_owned()),
                    _ => (body["eventType"].to_string(), body["payload"]["agent_id"].as_str().unwrap().to_owned()),
                };
                deliveries.lock().unwrap().push((path.to_owned(), event.trim_matches('"').to_owned(), agent, body));
                "ok"
            }
        })
    };
    let app = axum::Router::new().route("/native", record("native")).route("/agora", record("agora"));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// How many deliveries of `event` agent `id` got.
fn count(deliveries: &Deliveries, id: &str, event: &str) -> usize {
    deliveries.lock().unwrap().iter().filter(|(_, e, a, _)| a == id && e == event).count()
}

async fn wait_for(deliveries: &Deliveries, what: &str, done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen: Vec<_> = deliveries.lock().unwrap().iter().map(|(p, e, a, _)| format!("{p} {e} {a}")).collect();
    panic!("{what} did not arrive; got {seen:#?}");
}

async fn start_native(server: &common::Server, name: &str, hooks: &str) -> String {
    let body =
        json!({"name": name, "channel": "room", "idle_timeout": 0, "callbacks": {"url": format!("{hooks}/native")}});
    let (status, agent) = server.post("/v1/agents", body).await;
    assert_eq!(status, 200, "{agent}");
    agent["agent_id"].as_str().unwrap().to_owned()
}

async fn join_agora(server: &common::Server, name: &str) -> String {
    let path = format!("/api/conversational-ai-agent/v2/projects/{APP_ID}/join");
    let body = json!({"name": name, "properties": {"channel": "room-1", "remote_rtc_uids": ["*"], "idle_timeout": 0}});
    let (status, joined) = server.call(reqwest::Method::POST, &path, Some(body), (CUSTOMER_ID, CUSTOMER_SECRET)).await;
    assert_eq!(status, 200, "{joined}");
    joined["agent_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_agent_a_crash_ended_gets_its_ending_webhook_exactly_once_after_the_restart() {
    let deliveries = Deliveries::default();
    let hooks = receiver(deliveries.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = format!(
        "[[apps]]\nid = \"{APP_ID}\"\nkey = \"{CUSTOMER_ID}\"\nsecret = \"{CUSTOMER_SECRET}\"\n\
         webhook_url = \"{hooks}/agora\"\nwebhook_secret = \"ncs-secret\"\n"
    );

    let (left, native, agora) = {
        let server = common::start_with_args(&data, &config, &[]);
        let left = start_native(&server, "left", &hooks).await;
        let (status, _) = server.post(&format!("/v1/agents/{left}/leave"), json!({})).await;
        assert_eq!(status, 200);
        let mut native = Vec::new();
        for i in 0..3 {
            native.push(start_native(&server, &format!("n{i}"), &hooks).await);
        }
        let agora = vec![join_agora(&server, "a0").await, join_agora(&server, "a1").await];
        wait_for(&deliveries, "the starts", || {
            native.iter().all(|id| count(&deliveries, id, "agent.started") == 1)
                && agora.iter().all(|id| count(&deliveries, id, "101") == 1)
        })
        .await;
        server.signal("KILL");
        (left, native, agora)
    };

    // The restart marks them FAILED (node restarted) and sends each its ending.
    {
        let mut server = common::start_with_args(&data, &config, &[]);
        wait_for(&deliveries, "the crash victims' endings", || {
            native.iter().all(|id| count(&deliveries, id, "agent.failed") == 1)
                && agora.iter().all(|id| count(&deliveries, id, "102") == 1 && count(&deliveries, id, "103") == 1)
        })
        .await;
        for id in &native {
            let (_, agent) = server.get(&format!("/v1/agents/{id}")).await;
            assert_eq!(
                (agent["status"].as_str(), agent["reason"]["code"].as_str()),
                (Some("FAILED"), Some("node_restarted"))
            );
        }
        server.signal("TERM");
        assert!(server.wait_exit());
    }
    // A third start sends nothing again. Deliveries to one URL go in order, so once a new agent's
    // `started` arrived at each URL, anything left over would have arrived before it.
    let server = common::start_with_args(&data, &config, &[]);
    let native_sentinel = start_native(&server, "sentinel", &hooks).await;
    let agora_sentinel = join_agora(&server, "sentinel").await;
    wait_for(&deliveries, "the sentinels", || {
        count(&deliveries, &native_sentinel, "agent.started") == 1 && count(&deliveries, &agora_sentinel, "101") == 1
    })
    .await;

    for id in &native {
        assert_eq!(count(&deliveries, id, "agent.failed"), 1, "{id}");
        assert_eq!(count(&deliveries, id, "agent.stopped"), 0, "{id}");
        let (_, _, _, body) =
            deliveries.lock().unwrap().iter().find(|(_, e, a, _)| a == id && e == "agent.failed").unwrap().clone();
        assert_eq!(body["agent"]["status"], "FAILED");
        assert_eq!(body["agent"]["reason"]["code"], "node_restarted");
    }
    for id in &agora {
        for event in ["102", "103"] {
            assert_eq!(count(&deliveries, id, event), 1, "{id} {event}");
        }
        let (_, _, _, body) =
            deliveries.lock().unwrap().iter().find(|(_, e, a, _)| a == id && e == "102").unwrap().clone();
        assert_eq!(body["payload"]["status"], "FAILED", "{body}");
    }
    // The agent that left before the crash got its `stopped` once, and no crash ending.
    assert_eq!(count(&deliveries, &left, "agent.stopped"), 1);
    assert_eq!(count(&deliveries, &left, "agent.failed"), 0);
}
