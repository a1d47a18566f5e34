//! A real PostgreSQL server for a test: `initdb` into a temporary directory, `postgres` on a free
//! loopback port, stopped when dropped (and, should the test process die first, when its end of
//! a pipe closes). PostgreSQL refuses to run as root, so under root both run as the `postgres`
//! user (which Debian's `postgresql` package creates) through `runuser`.
//!
//! There is no skipping: a test that asks for a server and cannot have one fails, saying why
//! (`scripts/setup --tests` installs Debian's `postgresql`). Included by path from other crates'
//! tests (`#[path = "../../store/tests/common/postgres.rs"]`).

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running PostgreSQL server with a superuser `colloquy` that needs no password on loopback.
#[derive(Debug)]
pub struct PostgresServer {
    /// Holds the data directory (and the socket).
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    /// The `sh` that runs `postgres` and stops it when its stdin closes.
    running: Option<Child>,
}

/// Where Debian keeps the server's programs: `/usr/lib/postgresql/<major>/bin`, the newest.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server in /usr/lib/postgresql/*/bin: install Debian's `postgresql` package \
             (scripts/setup --tests does)"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false)
}

/// `program args…`, as the `postgres` user when this process is root.
fn command(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PostgresServer {
    /// `initdb` and start a server; panics, saying why, when it cannot.
    pub fn start() -> PostgresServer {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("colloquy-pg-").tempdir().unwrap();
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown of the PostgreSQL data dir to the postgres user");
        }
        let output = command(&bin.join("initdb"))
            .args(["-U", "colloquy", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C", "-D"])
            .arg(dir.path().join("data"))
            .output()
            .expect("running initdb");
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        let mut server = PostgresServer { dir, port: free_port(), bin, running: None };
        server.restart();
        server
    }

    /// Starts the server again (after [`stop`](Self::stop)) on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.running.is_none(), "the server is running already");
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        // `read` returns when our end of the pipe closes (on `stop`, or when this process dies);
        // then the server gets a fast shutdown.
        let script = "\"$0\" -D \"$1\" -p \"$2\" -k \"$3\" -c listen_addresses=127.0.0.1 -c fsync=off \
                      >>\"$4\" 2>&1 & pid=$!; read _; kill -INT $pid; wait $pid";
        let child = command(Path::new("/bin/sh"))
            .args(["-c", script])
            .arg(self.bin.join("postgres"))
            .arg(&data)
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .arg(&log)
            .stdin(Stdio::piped())
            .spawn()
            .expect("starting postgres");
        self.running = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = command(&self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "colloquy", "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start on port {}: {}",
                self.port,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (a fast shutdown: connections are cut) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.running.take() {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"\n");
            }
            let _ = child.wait();
        }
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://colloquy@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database of its own for one test; answers its URL.
    pub fn create_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let output = command(&self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "colloquy", &name])
            .output()
            .expect("running createdb");
        assert!(output.status.success(), "createdb failed: {}", String::from_utf8_lossy(&output.stderr));
        self.url(&name)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One server for every test of this test binary (each test takes a database of its own); it
/// stops when the process ends, as the pipe that keeps it running closes.
pub fn shared() -> &'static PostgresServer {
    static SERVER: std::sync::OnceLock<PostgresServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(PostgresServer::start)
}
