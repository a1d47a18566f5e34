//! `colloquy serve` as a real process on a loopback port: the API over TCP, records that survive a
//! crash, graceful shutdown, and credentials generated on first start.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const KEY: &str = "serve-test-key";
const SECRET: &str = "serve-test-secret";

/// A running server, killed when dropped.
struct Server {
    child: Child,
    base: String,
    /// Everything it printed on stdout before the "listening" line.
    banner: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data_dir: &Path, with_env_credentials: bool) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_colloquy"));
    command
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("COLLOQUY_API_KEY")
        .env_remove("COLLOQUY_API_SECRET")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if with_env_credentials {
        command.env("COLLOQUY_API_KEY", KEY).env("COLLOQUY_API_SECRET", SECRET);
    }
    let mut child = command.spawn().expect("the colloquy binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut banner = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(base) = line.strip_prefix("colloquy listening on ") {
            return Server { child, base: base.to_owned(), banner };
        }
        banner.push(line);
    }
    let status = child.wait();
    panic!("colloquy serve exited ({status:?}) before listening; it printed {banner:?}");
}

impl Server {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>, auth: (&str, &str)) -> (u16, Value) {
        let client = reqwest::Client::new();
        let mut request = client.request(method, format!("{}{path}", self.base)).basic_auth(auth.0, Some(auth.1));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None, (KEY, SECRET)).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body), (KEY, SECRET)).await
    }

    async fn start_agent(&self, name: &str) -> String {
        let (status, agent) =
            self.post("/v1/agents", json!({"name": name, "channel": "room", "idle_timeout": 0})).await;
        assert_eq!(status, 200, "{agent}");
        agent["agent_id"].as_str().unwrap().to_owned()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args(["-s", name, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit by itself and answers whether it exited cleanly.
    fn wait_exit(&mut self) -> bool {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("colloquy did not exit within 10 s");
    }
}

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
