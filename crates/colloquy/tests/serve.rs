//! `colloquy serve` as a real process on a loopback port: the API over TCP, records that survive a
//! crash, graceful shutdown, and credentials generated on first start.

mod common;

use std::process::Command;

use common::{KEY, start};
use serde_json::json;

#[tokio::test]
async fn the_api_works_over_loopback_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), true);
    let (status, health) = server.call(reqwest::Method::GET, "/healthz", None, ("", "")).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    let id = server.start_agent("bot").await;
    let (status, agent) = server.get(&format!("/v1/agents/{id}")).await;
    assert_eq!((status, agent["status"].as_str()), (200, Some("RUNNING")));
    let (status, body) = server.call(reqwest::Method::GET, "/v1/agents", None, (KEY, "wrong")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, body) = server.post("/v1/agents", json!({"name": "x", "channel": "room", "max_history": -3})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("max_history")));
    let (status, agent) = server.post(&format!("/v1/agents/{id}/leave"), json!({})).await;
    assert_eq!((status, agent["status"].as_str()), (200, Some("STOPPED")));
}

#[tokio::test]
async fn records_survive_a_crash_and_running_agents_are_marked_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (left, crashed) = {
        let server = start(dir.path(), true);
        let left = server.start_agent("left").await;
        server.post(&format!("/v1/agents/{left}/leave"), json!({})).await;
        let crashed = server.start_agent("crashed").await;
        server.signal("KILL");
        (left, crashed)
    };
    let server = start(dir.path(), true);
    let (_, agent) = server.get(&format!("/v1/agents/{left}")).await;
    assert_eq!((agent["status"].as_str(), agent["reason"]["code"].as_str()), (Some("STOPPED"), Some("left")));
    let (_, agent) = server.get(&format!("/v1/agents/{crashed}")).await;
    assert_eq!((agent["status"].as_str(), agent["reason"]["code"].as_str()), (Some("FAILED"), Some("node_restarted")));
    assert_eq!(agent["config"]["name"], "crashed");
    let (_, list) = server.get("/v1/agents").await;
    assert_eq!(list["agents"].as_array().unwrap().len(), 2);
    // The name of the crashed agent is free again.
    server.start_agent("crashed").await;
}

#[tokio::test]
async fn sigterm_stops_running_agents_cleanly_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let ids = {
        let mut server = start(dir.path(), true);
        let ids = [server.start_agent("a").await, server.start_agent("b").await];
        server.signal("TERM");
        assert!(server.wait_exit(), "colloquy exited with an error after SIGTERM");
        ids
    };
    let server = start(dir.path(), true);
    for id in ids {
        let (_, agent) = server.get(&format!("/v1/agents/{id}")).await;
        assert_eq!(
            (agent["status"].as_str(), agent["reason"]["code"].as_str()),
            (Some("STOPPED"), Some("node_shutdown"))
        );
        assert!(agent["stopped_at"].is_i64());
    }
}

#[tokio::test]
async fn credentials_are_generated_once_kept_and_printed_only_the_first_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), false);
    let printed = first.banner.join("\n");
    let value = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{name} not printed in {printed:?}"))
    };
    let (key, secret) = (value("COLLOQUY_API_KEY"), value("COLLOQUY_API_SECRET"));
    assert!(secret.len() >= 32);
    let (status, _) = first.call(reqwest::Method::GET, "/v1/agents", None, (&key, &secret)).await;
    assert_eq!(status, 200);
    drop(first);

    let second = start(dir.path(), false);
    assert!(second.banner.iter().all(|l| !l.contains(&secret)), "the secret was printed again: {:?}", second.banner);
    let (status, _) = second.call(reqwest::Method::GET, "/v1/agents", None, (&key, &secret)).await;
    assert_eq!(status, 200);
    let mode = std::fs::metadata(dir.path().join("credentials.toml")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);
}

#[test]
fn a_bad_config_file_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("colloquy.toml");
    std::fs::write(&config, "[limits]\nmax_agent = 3\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["serve", "--http", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_agent") && stderr.contains("colloquy.toml"), "{stderr}");
}

#[tokio::test]
async fn a_second_server_on_a_live_data_dir_refuses_to_start_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), true);
    let id = server.start_agent("s0").await;
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["serve", "--no-media", "--http", "127.0.0.1:0", "--rtc-udp", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("COLLOQUY_API_KEY", KEY)
        .env("COLLOQUY_API_SECRET", common::SECRET)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let pid = server.child.id().to_string();
    assert!(stderr.contains("another colloquy server") && stderr.contains(&pid), "{stderr}");
    // The first server's agent still runs, and its name is still taken.
    let (_, agent) = server.get(&format!("/v1/agents/{id}")).await;
    assert_eq!(agent["status"].as_str(), Some("RUNNING"));
    let (status, _) = server.post("/v1/agents", json!({"name": "s0", "channel": "room"})).await;
    assert_eq!(status, 409);
}
