//! A real Redis server for a test: Debian's `redis-server` on a free loopback port, its data in a
//! temporary directory and never saved, stopped when dropped (and, should the test process die
//! first, when its end of a pipe closes). There is no skipping: a test that asks for a server and
//! cannot have one fails, saying why (`scripts/setup --tests` installs `redis-server`). Included by
//! path from other crates' tests (`#[path = "../../cluster/tests/common/redis.rs"]`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RedisServer {
    dir: tempfile::TempDir,
    port: u16,
    /// The `sh` that runs `redis-server` and stops it when its stdin closes.
    running: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl RedisServer {
    /// Starts a server; panics, saying why, when it cannot.
    pub fn start() -> RedisServer {
        let dir = tempfile::Builder::new().prefix("colloquy-redis-").tempdir().unwrap();
        let mut server = RedisServer { dir, port: free_port(), running: None };
        server.restart();
        server
    }

    /// Starts the server again (after [`stop`](Self::stop)) on the same port, empty: nothing is
    /// saved, as when a Redis without persistence restarts.
    pub fn restart(&mut self) {
        assert!(self.running.is_none(), "the server is running already");
        let log = self.dir.path().join("server.log");
        // `read` returns when our end of the pipe closes (on `stop`, or when this process dies).
        let script = "redis-server --port \"$0\" --bind 127.0.0.1 --dir \"$1\" --save '' --appendonly no \
                      >>\"$2\" 2>&1 & pid=$!; read _; kill -TERM $pid; wait $pid";
        let child = Command::new("/bin/sh")
            .args(["-c", script])
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .arg(&log)
            .stdin(Stdio::piped())
            .spawn()
            .expect("starting redis-server");
        self.running = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {} (install Debian's redis-server: scripts/setup --tests): {}",
                self.port,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = [0u8; 7];
        tcp.write_all(b"PING\r\n").is_ok() && tcp.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.running.take() {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"\n");
            }
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
