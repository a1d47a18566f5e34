//! The cluster state on a real Redis server that each test starts for itself.

#[path = "common/redis.rs"]
mod redis_server;

use std::time::Duration;

use colloquy_cluster::{Claim, Cluster, NodeId, NodeInfo, NodeState, Placement};
use colloquy_model::{AgentId, AppId, ChannelName};
use redis_server::RedisServer;

async fn node(server: &RedisServer, id: &str, ttl: Duration) -> Cluster {
    Cluster::connect(&server.url(), NodeId::new(id).unwrap(), ttl).await.unwrap()
}

fn info(cluster: &Cluster, agents: u32, max_agents: u32) -> NodeInfo {
    NodeInfo {
        id: cluster.me().clone(),
        http: format!("http://127.0.0.1/{}", cluster.me()),
        rtc: "127.0.0.1:3478".into(),
        state: NodeState::Serving,
        agents,
        max_agents,
        channels: 0,
        started_at: 1,
        heartbeat_at: 0,
    }
}

fn channel(name: &str) -> (AppId, ChannelName) {
    (AppId::new("app-1").unwrap(), ChannelName::new(name).unwrap())
}

#[tokio::test]
async fn nodes_live_while_they_beat_and_one_node_reaps_a_dead_one() {
    let server = RedisServer::start();
    let ttl = Duration::from_millis(600);
    let (a, b, c) = (node(&server, "a", ttl).await, node(&server, "b", ttl).await, node(&server, "c", ttl).await);
    for n in [&a, &b, &c] {
        n.heartbeat(&info(n, 0, 10)).await.unwrap();
    }
    let ids = |nodes: Vec<NodeInfo>| nodes.into_iter().map(|n| n.id.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(a.nodes().await.unwrap()), ["a", "b", "c"]);
    assert!(a.nodes().await.unwrap().iter().all(|n| n.heartbeat_at > 0), "stamped with Redis's clock");
    // b owns a channel, then stops beating; a and c keep beating.
    let (app, room) = channel("room-1");
    assert_eq!(b.claim_channel(&app, &room, Placement::Here).await.unwrap(), Claim::Mine);
    for _ in 0..4 {
        tokio::time::sleep(ttl / 3).await;
        a.heartbeat(&info(&a, 0, 10)).await.unwrap();
        c.heartbeat(&info(&c, 0, 10)).await.unwrap();
    }
    assert_eq!(ids(a.nodes().await.unwrap()), ["a", "c"]);
    assert_eq!(a.lost_nodes().await.unwrap(), [NodeId::new("b").unwrap()]);
    assert_eq!(c.lost_nodes().await.unwrap(), [NodeId::new("b").unwrap()]);
    // One of the two takes the reaping; the other does not.
    let b_id = NodeId::new("b").unwrap();
    assert!(a.take_reaping(&b_id).await.unwrap());
    assert!(!c.take_reaping(&b_id).await.unwrap());
    assert_eq!(a.forget(&b_id).await.unwrap(), 1, "b's channel is freed");
    assert!(a.lost_nodes().await.unwrap().is_empty());
    assert_eq!(c.channel_owner(&app, &room).await.unwrap(), None);
    assert_eq!(c.claim_channel(&app, &room, Placement::Here).await.unwrap(), Claim::Mine);
    // A clean leave frees at once.
    c.leave().await.unwrap();
    assert_eq!(ids(a.nodes().await.unwrap()), ["a"]);
    assert_eq!(a.channel_owner(&app, &room).await.unwrap(), None);
}

#[tokio::test]
async fn a_channel_has_one_owner_and_new_channels_go_where_there_is_room() {
    let server = RedisServer::start();
    let ttl = Duration::from_secs(30);
    let (a, b) = (node(&server, "a", ttl).await, node(&server, "b", ttl).await);
    a.heartbeat(&info(&a, 8, 10)).await.unwrap();
    b.heartbeat(&info(&b, 0, 10)).await.unwrap();
    let (app, room) = channel("room-1");
    // b has the most room: a new channel asked of a goes to b, and a does not take it.
    match a.claim_channel(&app, &room, Placement::Anywhere).await.unwrap() {
        Claim::Elsewhere(node) => assert_eq!(node.id.as_str(), "b"),
        other => panic!("expected b, got {other:?}"),
    }
    assert_eq!(a.channel_owner(&app, &room).await.unwrap(), None);
    assert_eq!(b.claim_channel(&app, &room, Placement::Here).await.unwrap(), Claim::Mine);
    // Once owned, it stays with its owner whoever asks, whatever the load.
    match a.claim_channel(&app, &room, Placement::Here).await.unwrap() {
        Claim::Elsewhere(node) => assert_eq!(node.id.as_str(), "b"),
        other => panic!("expected b, got {other:?}"),
    }
    // Racing claims of one new channel: exactly one node wins.
    let (_, race) = channel("race");
    let (x, y) =
        tokio::join!(a.claim_channel(&app, &race, Placement::Here), b.claim_channel(&app, &race, Placement::Here));
    let mine = [&x, &y].iter().filter(|c| matches!(c, Ok(Claim::Mine))).count();
    assert_eq!(mine, 1, "{x:?} {y:?}");
    // The same name in another app is another channel.
    let other = AppId::new("app-2").unwrap();
    assert_eq!(a.claim_channel(&other, &room, Placement::Here).await.unwrap(), Claim::Mine);
    assert_eq!(a.my_channels().await.unwrap().len(), 1 + usize::from(matches!(x, Ok(Claim::Mine))));
    // Only the owner frees a channel.
    a.release_channel(&app, &room).await.unwrap();
    assert!(b.channel_owner(&app, &room).await.unwrap().is_some());
    b.release_channel(&app, &room).await.unwrap();
    assert!(b.channel_owner(&app, &room).await.unwrap().is_none());
    // A draining node takes no new channel.
    let mut draining = info(&b, 0, 10);
    draining.state = NodeState::Draining;
    b.heartbeat(&draining).await.unwrap();
    assert_eq!(a.place().await.unwrap().map(|n| n.id.to_string()), Some("a".into()));
}

#[tokio::test]
async fn nonces_rate_limits_and_sequences_are_shared_by_every_node() {
    let server = RedisServer::start();
    let ttl = Duration::from_secs(30);
    let (a, b) = (node(&server, "a", ttl).await, node(&server, "b", ttl).await);
    let keep = Duration::from_secs(60);
    assert!(a.use_nonce("zego:app", "n-1", keep).await.unwrap());
    assert!(!b.use_nonce("zego:app", "n-1", keep).await.unwrap(), "a replay on another node");
    assert!(b.use_nonce("alibaba:app", "n-1", keep).await.unwrap(), "another scope");
    assert!(a.use_nonce("zego:app", "n-2", Duration::from_millis(50)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(a.use_nonce("zego:app", "n-2", keep).await.unwrap(), "forgotten past its time");

    // Burst 3 at 1 per second, taken from two nodes: the fourth is refused wherever it lands.
    for n in [&a, &b, &a] {
        n.take_request("key-1", 1, 3).await.unwrap().unwrap();
    }
    let wait = b.take_request("key-1", 1, 3).await.unwrap().unwrap_err();
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
    a.take_request("key-2", 1, 3).await.unwrap().unwrap();

    let agent = AgentId::from_string("agent-1".to_owned());
    let first = a.next_sequence(&agent, 1_765_000_000_123, false).await.unwrap();
    assert_eq!(first, 1_765_000_000_123_000);
    let second = b.next_sequence(&agent, 1_765_000_000_123, false).await.unwrap();
    assert_eq!(second, first + 1, "within one millisecond, on another node");
    let earlier = a.next_sequence(&agent, 1_765_000_000_000, true).await.unwrap();
    assert_eq!(earlier, second + 1, "never backwards");
    assert_eq!(b.next_sequence(&agent, 5, false).await.unwrap(), 5_000, "ended: forgotten");
}

#[tokio::test]
async fn the_nodes_reconnect_when_redis_comes_back() {
    let mut server = RedisServer::start();
    let a = node(&server, "a", Duration::from_secs(30)).await;
    a.heartbeat(&info(&a, 0, 10)).await.unwrap();
    server.stop();
    assert!(a.heartbeat(&info(&a, 0, 10)).await.is_err(), "Redis is down");
    server.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match a.heartbeat(&info(&a, 0, 10)).await {
            Ok(()) => break,
            Err(e) => assert!(std::time::Instant::now() < deadline, "no reconnection: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.nodes().await.unwrap().len(), 1);
}
