//! A real `colloquy serve` process on loopback ports, for the integration tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const KEY: &str = "serve-test-key";
pub const SECRET: &str = "serve-test-secret";

/// A running server, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// Everything it printed on stdout before the "listening" line.
    pub banner: Vec<String>,
    /// The channel server's UDP address, from the ready log line.
    pub rtc_udp: Option<std::net::SocketAddr>,
    /// Every line it has printed on stderr so far (the reader thread appends to it).
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(data_dir: &Path, with_env_credentials: bool) -> Server {
    start_with(data_dir, with_env_credentials, None)
}

/// Starts a server with a config file holding `config` (TOML), when given.
pub fn start_with(data_dir: &Path, with_env_credentials: bool, config: Option<&str>) -> Server {
    start_full(data_dir, with_env_credentials, config, &["--no-media"])
}

/// Starts a server with the test credentials, `config` and extra flags (which may set --rtc-udp).
pub fn start_with_args(data_dir: &Path, config: &str, extra: &[&str]) -> Server {
    start_full(data_dir, true, Some(config), &[extra, &["--no-media"]].concat())
}

/// Starts a server whose agents talk: the embedded models are loaded (they must be fetched).
pub fn start_with_media(data_dir: &Path, config: &str, extra: &[&str]) -> Server {
    start_full(data_dir, true, Some(config), extra)
}

fn start_full(data_dir: &Path, with_env_credentials: bool, config: Option<&str>, extra: &[&str]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_colloquy"));
    command
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env_remove("COLLOQUY_API_KEY")
        .env_remove("COLLOQUY_API_SECRET")
        .env("RUST_LOG", "warn,colloquy::serve=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !extra.contains(&"--rtc-udp") {
        command.args(["--rtc-udp", "127.0.0.1:0"]);
    }
    if let Some(config) = config {
        let path = data_dir.join("test-config.toml");
        std::fs::create_dir_all(data_dir).unwrap();
        std::fs::write(&path, config).unwrap();
        command.arg("--config").arg(path);
    }
    if with_env_credentials {
        command.env("COLLOQUY_API_KEY", KEY).env("COLLOQUY_API_SECRET", SECRET);
    }
    let mut child = command.spawn().expect("the colloquy binary runs");
    let stdout = child.stdout.take().unwrap();
    // The ready line on stderr names the channel server's UDP address; the rest is passed through.
    let stderr = child.stderr.take().unwrap();
    let (udp_tx, udp_rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("rtc_udp=") {
                let addr = line[at + 8..].split_whitespace().next().unwrap_or_default().to_owned();
                let _ = udp_tx.send(addr);
            }
            eprintln!("[server] {line}");
            lines.lock().unwrap().push(line);
        }
    });
    let mut banner = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(base) = line.strip_prefix("colloquy listening on ") {
            let rtc_udp = udp_rx.recv_timeout(Duration::from_secs(5)).ok().and_then(|a| a.parse().ok());
            return Server { child, base: base.to_owned(), banner, rtc_udp, log };
        }
        banner.push(line);
    }
    let status = child.wait();
    panic!("colloquy serve exited ({status:?}) before listening; it printed {banner:?}");
}

impl Server {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        auth: (&str, &str),
    ) -> (u16, Value) {
        let client = reqwest::Client::new();
        let mut request = client.request(method, format!("{}{path}", self.base)).basic_auth(auth.0, Some(auth.1));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None, (KEY, SECRET)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body), (KEY, SECRET)).await
    }

    pub async fn start_agent(&self, name: &str) -> String {
        let (status, agent) =
            self.post("/v1/agents", json!({"name": name, "channel": "room", "idle_timeout": 0})).await;
        assert_eq!(status, 200, "{agent}");
        agent["agent_id"].as_str().unwrap().to_owned()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args(["-s", name, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit by itself and answers whether it exited cleanly.
    pub fn wait_exit(&mut self) -> bool {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("colloquy did not exit within 10 s");
    }
}

/// Runs the `colloquy` binary with `args`; panics with its stderr when it fails.
pub fn colloquy(args: &[&str]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy")).args(args).output().expect("colloquy runs");
    if !output.status.success() {
        panic!("colloquy {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    output
}

/// Piper says `text` into `path`.
pub fn say(text: &str, path: &Path) {
    colloquy(&["tts", text, "-o", path.to_str().unwrap()]);
}

/// Our ASR's transcript of a WAV file.
pub fn hear(path: &Path) -> String {
    String::from_utf8(colloquy(&["asr", path.to_str().unwrap()]).stdout).unwrap().trim().to_owned()
}

/// Concatenates WAV files and silences (seconds) into one 22,050 Hz file.
pub fn compose(parts: &[Result<&Path, f64>], out: &Path) {
    let mut samples: Vec<i16> = Vec::new();
    for part in parts {
        match part {
            Ok(path) => {
                let (audio, rate) = colloquy_rtc::audio::read_wav(path).unwrap();
                samples.extend(colloquy_rtc::audio::to_i16(&colloquy_rtc::audio::resample(&audio, rate, 22_050)));
            }
            Err(seconds) => samples.extend(std::iter::repeat_n(0, (seconds * 22_050.0) as usize)),
        }
    }
    colloquy_rtc::audio::write_wav(out, &samples, 22_050).unwrap();
}
