//! Several `colloquy serve` nodes on one PostgreSQL database and one Redis, each started by the test
//! on free loopback ports: a channel has one owner, a restarting node fails only its own agents,
//! and a node killed with SIGKILL has its agents marked FAILED `node_lost` by another node within
//! the cluster's TTL, with their ending webhooks delivered once, and its channels freed.

mod common;
#[path = "../../store/tests/common/postgres.rs"]
mod postgres;
#[path = "../../cluster/tests/common/redis.rs"]
mod redis_server;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The cluster's TTL in these tests: short, so a death is noticed quickly.
const TTL_MS: u64 = 1500;

fn node(dir: &Path, id: &str, database: &str, redis: &str) -> common::Server {
    let config = format!("[cluster]\nnode_id = \"{id}\"\nttl_ms = {TTL_MS}\n");
    common::start_with_args(dir, &config, &["--database", database, "--cluster", redis])
}

/// Native webhooks received: (event, agent id).
type Deliveries = Arc<Mutex<Vec<(String, String)>>>;

async fn receiver(deliveries: Deliveries) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/hooks", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: String| {
            let deliveries = deliveries.clone();
            async move {
                let body: Value = serde_json::from_str(&body).unwrap();
                let event = body["event"].as_str().unwrap().to_owned();
                deliveries.lock().unwrap().push((event, body["agent"]["agent_id"].as_str().unwrap().to_owned()));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn count(deliveries: &Deliveries, event: &str, agent: &str) -> usize {
    deliveries.lock().unwrap().iter().filter(|(e, a)| e == event && a == agent).count()
}

async fn start_agent(node: &common::Server, name: &str, channel: &str, hooks: &str) -> (u16, Value) {
    let body = json!({"name": name, "channel": channel, "idle_timeout": 0, "callbacks": {"url": hooks}});
    node.post("/v1/agents", body).await
}

/// Polls `node` until agent `id` is `status`; answers the agent.
async fn wait_status(node: &common::Server, id: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (code, agent) = node.get(&format!("/v1/agents/{id}")).await;
        assert_eq!(code, 200, "{agent}");
        if agent["status"] == status {
            return agent;
        }
        assert!(Instant::now() < deadline, "agent {id} is still {} after {within:?}", agent["status"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_count(deliveries: &Deliveries, event: &str, agent: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(deliveries, event, agent) < n {
        assert!(Instant::now() < deadline, "{event} of {agent} did not arrive: {:?}", deliveries.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_own_their_channels_and_a_dead_node_s_agents_are_marked_node_lost_once() {
    let pg = postgres::shared();
    let database = pg.create_database();
    let redis = redis_server::RedisServer::start();
    let deliveries = Deliveries::default();
    let hooks = receiver(deliveries.clone()).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = node(dir_a.path(), "node-a", &database, &redis.url());
    let mut b = node(dir_b.path(), "node-b", &database, &redis.url());

    // Both nodes list both; an app's credentials do not see the nodes.
    let (status, nodes) = a.get("/v1/nodes").await;
    assert_eq!(status, 200, "{nodes}");
    assert_eq!(nodes["cluster"], true);
    let ids: Vec<&str> = nodes["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["node-a", "node-b"]);
    assert_eq!(nodes["nodes"][0]["this_node"], true);
    assert_eq!(nodes["nodes"][1]["http"], b.base.as_str());

    // An agent on each node, each in its own channel.
    let (status, on_a) = start_agent(&a, "on-a", "room-a", &hooks).await;
    assert_eq!(status, 200, "{on_a}");
    let on_a = on_a["agent_id"].as_str().unwrap().to_owned();
    let (status, on_b) = start_agent(&b, "on-b", "room-b", &hooks).await;
    assert_eq!(status, 200, "{on_b}");
    let on_b = on_b["agent_id"].as_str().unwrap().to_owned();

    // A channel has one owner: room-a is node-a's, so node-b refuses an agent for it, naming node-a.
    let (status, refused) = start_agent(&b, "second-in-a", "room-a", &hooks).await;
    assert_eq!(status, 421, "{refused}");
    assert_eq!(refused["error"]["code"], "other_node");
    assert!(refused["error"]["message"].as_str().unwrap().contains("node-a"), "{refused}");
    // Commands for node-a's agent through node-b are refused the same way; reads come from the records.
    let (status, refused) = b.post(&format!("/v1/agents/{on_a}/leave"), json!({})).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (421, Some("other_node")), "{refused}");
    assert_eq!(b.get(&format!("/v1/agents/{on_a}")).await.1["status"], "RUNNING");

    // node-b dies and comes back at once on its data dir (its node id): it fails its own agent,
    // and only it.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    drop(b);
    let b = node(dir_b.path(), "node-b", &database, &redis.url());
    let failed = wait_status(&b, &on_b, "FAILED", Duration::from_secs(10)).await;
    assert_eq!(failed["reason"]["code"], "node_lost", "{failed}");
    assert_eq!(b.get(&format!("/v1/agents/{on_a}")).await.1["status"], "RUNNING", "node-a's agent is not node-b's");

    // node-a dies for good: node-b notices within the TTL (and a heartbeat), marks its agent FAILED
    // node_lost, and frees room-a.
    let killed = Instant::now();
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let failed = wait_status(&b, &on_a, "FAILED", Duration::from_millis(TTL_MS * 4)).await;
    eprintln!("node-a's agent marked FAILED {:?} after the kill", killed.elapsed());
    assert_eq!(failed["reason"]["code"], "node_lost", "{failed}");
    let (status, moved) = start_agent(&b, "moved", "room-a", &hooks).await;
    assert_eq!(status, 200, "room-a is free again: {moved}");
    let (_, nodes) = b.get("/v1/nodes").await;
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1, "{nodes}");

    // Each ending webhook once, whoever marked the agent, however many nodes looked.
    wait_count(&deliveries, "agent.failed", &on_a, 1).await;
    wait_count(&deliveries, "agent.failed", &on_b, 1).await;
    tokio::time::sleep(Duration::from_millis(TTL_MS * 2)).await;
    assert_eq!(count(&deliveries, "agent.failed", &on_a), 1);
    assert_eq!(count(&deliveries, "agent.failed", &on_b), 1);
    assert_eq!(count(&deliveries, "agent.started", &on_a), 1);
}

#[test]
fn a_node_alone_has_no_cluster_and_cluster_settings_need_redis() {
    let dir = tempfile::tempdir().unwrap();
    let output = common::colloquy(&["--help"]);
    assert!(output.status.success());
    // `[cluster]` settings without a Redis URL are a start-up error naming the fix.
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[cluster]\nnode_id = \"x\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["serve", "--no-media", "--http", "127.0.0.1:0", "--rtc-udp", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cluster.url"), "{output:?}");
}
