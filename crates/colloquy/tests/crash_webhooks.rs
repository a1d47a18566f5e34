//! The victims of a crash get their ending webhook: a real `colloquy serve` is killed with SIGKILL
//! while agents of every dialect run (native, Agora, ZEGO, Alibaba), restarted on the same data
//! dir, and a receiver counts what each agent got.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

const APP_ID: &str = "0123456789abcdef0123456789abcdef";
const CUSTOMER_ID: &str = "customer-id";
const CUSTOMER_SECRET: &str = "customer-secret";
const ZEGO_APP_ID: &str = "1234567890";
const ZEGO_SECRET: &str = "zego-server-secret";
const ALIBABA_APP_ID: &str = "alibaba-app";
const ALIBABA_KEY: &str = "alibaba-access-key";
const ALIBABA_SECRET: &str = "alibaba-access-secret";

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
                    "zego" => (body["Event"].to_string(), body["AgentInstanceId"].as_str().unwrap().to_owned()),
                    "alibaba" => (body["event"].to_string(), body["instanceId"].as_str().unwrap().to_owned()),
                    _ => (body["eventType"].to_string(), body["payload"]["agent_id"].as_str().unwrap().to_owned()),
                };
                deliveries.lock().unwrap().push((path.to_owned(), event.trim_matches('"').to_owned(), agent, body));
                "ok"
            }
        })
    };
    let app = axum::Router::new()
        .route("/native", record("native"))
        .route("/agora", record("agora"))
        .route("/zego", record("zego"))
        .route("/alibaba", record("alibaba"));
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

/// A ZEGO instance of an agent registered first; the request signed as ZEGO signs (MD5 over
/// AppId, SignatureNonce, ServerSecret and Timestamp), computed here with the md-5 crate.
async fn create_zego(server: &common::Server, name: &str) -> String {
    use md5::{Digest, Md5};
    let call = |action: &'static str, body: Value| {
        let nonce = hex::encode(rand_bytes());
        let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let signature = hex::encode(Md5::digest(format!("{ZEGO_APP_ID}{nonce}{ZEGO_SECRET}{timestamp}").as_bytes()));
        let url = format!(
            "{}/?Action={action}&AppId={ZEGO_APP_ID}&SignatureNonce={nonce}&Timestamp={timestamp}\
             &SignatureVersion=2.0&Signature={signature}",
            server.base
        );
        async move {
            let reply: Value = reqwest::Client::new().post(url).json(&body).send().await.unwrap().json().await.unwrap();
            assert_eq!(reply["Code"], 0, "{action}: {reply}");
            reply
        }
    };
    call("RegisterAgent", json!({"AgentId": name, "Name": name})).await;
    let body = json!({
        "AgentId": name, "UserId": "user_1",
        "RTC": {"RoomId": "room-z", "AgentStreamId": format!("{name}_stream"), "AgentUserId": name, "UserStreamId": "user_1_stream"},
    });
    let reply = call("CreateAgentInstance", body).await;
    reply["Data"]["AgentInstanceId"].as_str().unwrap().to_owned()
}

/// Bytes that differ from call to call: ZEGO takes each `SignatureNonce` once.
fn rand_bytes() -> [u8; 8] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    (at ^ NEXT.fetch_add(1, Ordering::Relaxed).rotate_left(40)).to_be_bytes()
}

/// An Alibaba instance started through the AICallKit app server.
async fn start_alibaba(server: &common::Server, name: &str) -> String {
    let body = json!({"ai_agent_id": name, "channel_id": "room-a", "user_id": "user_7"});
    let path = "/api/v2/aiagent/startAIAgentInstance";
    let (status, reply) = server.call(reqwest::Method::POST, path, Some(body), (ALIBABA_KEY, ALIBABA_SECRET)).await;
    assert_eq!(status, 200, "{reply}");
    reply["ai_agent_instance_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_agent_a_crash_ended_gets_its_ending_webhook_exactly_once_after_the_restart() {
    let deliveries = Deliveries::default();
    let hooks = receiver(deliveries.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = format!(
        "[[apps]]\nid = \"{APP_ID}\"\nkey = \"{CUSTOMER_ID}\"\nsecret = \"{CUSTOMER_SECRET}\"\n\
         webhook_url = \"{hooks}/agora\"\nwebhook_secret = \"ncs-secret\"\n\
         [[apps]]\nid = \"{ZEGO_APP_ID}\"\nsecret = \"{ZEGO_SECRET}\"\nwebhook_url = \"{hooks}/zego\"\n\
         webhook_secret = \"zego-callback-secret\"\n\
         [[apps]]\nid = \"{ALIBABA_APP_ID}\"\nkey = \"{ALIBABA_KEY}\"\nsecret = \"{ALIBABA_SECRET}\"\n\
         webhook_url = \"{hooks}/alibaba\"\nwebhook_secret = \"alibaba-token\"\n"
    );

    let (left, native, agora, zego, alibaba) = {
        let server = common::start_with_args(&data, &config, &[]);
        let left = start_native(&server, "left", &hooks).await;
        let (status, _) = server.post(&format!("/v1/agents/{left}/leave"), json!({})).await;
        assert_eq!(status, 200);
        let mut native = Vec::new();
        for i in 0..3 {
            native.push(start_native(&server, &format!("n{i}"), &hooks).await);
        }
        let agora = vec![join_agora(&server, "a0").await, join_agora(&server, "a1").await];
        let zego = vec![create_zego(&server, "z0").await, create_zego(&server, "z1").await];
        let alibaba = vec![start_alibaba(&server, "b0").await, start_alibaba(&server, "b1").await];
        wait_for(&deliveries, "the starts", || {
            native.iter().all(|id| count(&deliveries, id, "agent.started") == 1)
                && agora.iter().all(|id| count(&deliveries, id, "101") == 1)
                && zego.iter().all(|id| count(&deliveries, id, "AgentInstanceCreated") == 1)
                && alibaba.iter().all(|id| count(&deliveries, id, "agent_start") == 1)
        })
        .await;
        server.signal("KILL");
        (left, native, agora, zego, alibaba)
    };

    // The restart marks them FAILED (node restarted) and sends each its ending.
    {
        let mut server = common::start_with_args(&data, &config, &[]);
        wait_for(&deliveries, "the crash victims' endings", || {
            native.iter().all(|id| count(&deliveries, id, "agent.failed") == 1)
                && agora.iter().all(|id| count(&deliveries, id, "102") == 1 && count(&deliveries, id, "103") == 1)
                && zego.iter().all(|id| count(&deliveries, id, "AgentInstanceDeleted") == 1)
                && alibaba.iter().all(|id| count(&deliveries, id, "agent_stop") == 1)
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
    let zego_sentinel = create_zego(&server, "zs").await;
    let alibaba_sentinel = start_alibaba(&server, "sentinel").await;
    wait_for(&deliveries, "the sentinels", || {
        count(&deliveries, &native_sentinel, "agent.started") == 1
            && count(&deliveries, &agora_sentinel, "101") == 1
            && count(&deliveries, &zego_sentinel, "AgentInstanceCreated") == 1
            && count(&deliveries, &alibaba_sentinel, "agent_start") == 1
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
    let ending = |id: &str, event: &str| {
        deliveries.lock().unwrap().iter().find(|(_, e, a, _)| a == id && e == event).unwrap().3.clone()
    };
    for id in &zego {
        assert_eq!(count(&deliveries, id, "AgentInstanceDeleted"), 1, "{id}");
        // 1205: ZEGO's code for an instance the node's shutdown or restart ended.
        let body = ending(id, "AgentInstanceDeleted");
        assert_eq!(body["Data"]["Code"], 1205, "{body}");
    }
    for id in &alibaba {
        assert_eq!(count(&deliveries, id, "agent_stop"), 1, "{id}");
        let body = ending(id, "agent_stop");
        assert_eq!(
            (body["data"]["status"].as_str(), body["data"]["reason"].as_str()),
            (Some("FAILED"), Some("node_restarted")),
            "{body}"
        );
    }
    // The agent that left before the crash got its `stopped` once, and no crash ending.
    assert_eq!(count(&deliveries, &left, "agent.stopped"), 1);
    assert_eq!(count(&deliveries, &left, "agent.failed"), 0);
}
