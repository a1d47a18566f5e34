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

/// A tmpfs of 2 MiB mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this process may not mount (it is not root); root that cannot mount fails.
    fn mount() -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n");
            assert!(!root, "root could not mount a tmpfs");
            return None;
        }
        Some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes `path` until the file system is full.
fn fill_file_system(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
}

/// SIGTERM on a full disk: the last line says which agents' final states could not be written,
/// never that everything is recorded, and the next start marks them FAILED (node restarted)
/// rather than showing them stopped or running.
#[tokio::test]
async fn sigterm_on_a_full_disk_names_the_agents_it_could_not_record() {
    let Some(tmpfs) = Tmpfs::mount() else {
        eprintln!("skipped: mounting a tmpfs needs root (crates/store/tests/full_disk.rs covers the store's side)");
        return;
    };
    let data = tmpfs.dir.path().join("data");
    let ballast = tmpfs.dir.path().join("ballast");
    let ids = {
        let mut server = start(&data, true);
        let ids = [server.start_agent("a").await, server.start_agent("b").await];
        fill_file_system(&ballast);
        // SQLite may still reuse room inside its files for a while: starts go on until one is
        // refused, which proves the records cannot grow any more.
        let mut refused = false;
        for i in 0..300 {
            let (status, body) = server
                .post("/v1/agents", json!({"name": format!("filler-{i}"), "channel": "room", "idle_timeout": 0}))
                .await;
            if status == 503 {
                assert_eq!(body["error"]["code"], "records_unavailable", "{body}");
                refused = true;
                break;
            }
            assert_eq!(status, 200, "{body}");
        }
        assert!(refused, "a start was still recorded with the file system full");
        server.signal("TERM");
        assert!(server.wait_exit(), "colloquy exited with an error after SIGTERM");
        let log = server.log.lock().unwrap().clone();
        assert!(
            !log.iter().any(|l| l.contains("every agent's final state is recorded")),
            "the shutdown line claimed everything was recorded: {log:?}"
        );
        let line = log
            .iter()
            .find(|l| l.contains("could not record everything"))
            .unwrap_or_else(|| panic!("no shutdown line naming what was not recorded: {log:?}"));
        for id in &ids {
            assert!(line.contains(id.as_str()), "the shutdown line does not name {id}: {line}");
        }
        ids
    };
    std::fs::remove_file(&ballast).unwrap();
    let server = start(&data, true);
    for id in ids {
        let (_, agent) = server.get(&format!("/v1/agents/{id}")).await;
        assert_eq!(
            (agent["status"].as_str(), agent["reason"]["code"].as_str()),
            (Some("FAILED"), Some("node_restarted")),
            "{agent}"
        );
    }
}
