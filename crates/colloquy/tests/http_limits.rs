//! Slow and idle HTTP clients against a real `colloquy serve`, over raw loopback sockets: slow
//! headers, silent and idle keep-alive connections are closed after the header timeout, a slow
//! body gets 408, connections beyond the limit wait, and a shutdown does not wait for a client
//! that never finishes its request.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::start_with_args;

fn addr(server: &common::Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; answers what it sent. Gives up (panics) after
/// `within`, which is many times the server's timeout: this checks that it closes, not how fast.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return String::from_utf8_lossy(&received).into_owned();
            }
            Err(e) => {
                panic!("the server kept the connection open ({e}); it sent {:?}", String::from_utf8_lossy(&received))
            }
        }
    }
}

const QUICK: &str = "[server]\nheader_timeout_ms = 400\nbody_timeout_ms = 400\n";

#[test]
fn silent_slow_header_and_idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_args(dir.path(), QUICK, &[]);
    let within = Duration::from_secs(10);

    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(addr(&server)).unwrap();
    assert_eq!(read_until_closed(&mut silent, within), "");

    // A header that trickles in, a byte at a time, and never ends.
    let mut slow = TcpStream::connect(addr(&server)).unwrap();
    let started = Instant::now();
    let mut closed = false;
    for byte in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ".iter().cycle() {
        if slow.write_all(&[*byte]).is_err() || started.elapsed() > within {
            closed = slow.write_all(b"y").is_err() || read_until_closed(&mut slow, within).is_empty();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(closed, "a header trickling in for {within:?} kept its connection");

    // A keep-alive connection that asked once and then went quiet.
    let mut idle = TcpStream::connect(addr(&server)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let answer = read_until_closed(&mut idle, within);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_body_that_does_not_arrive_in_time_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_args(dir.path(), QUICK, &[]);
    let mut stream = TcpStream::connect(addr(&server)).unwrap();
    stream
        .write_all(b"POST /v1/tokens HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"cha")
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[test]
fn connections_beyond_the_limit_wait_for_a_free_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_args(dir.path(), "[server]\nmax_connections = 3\nheader_timeout_ms = 60000\n", &[]);
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr(&server)).unwrap()).collect();
    // The fourth connects (the kernel's backlog) but is not served while three are open.
    let mut fourth = TcpStream::connect(addr(&server)).unwrap();
    fourth.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    fourth.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let mut buffer = [0u8; 64];
    assert!(fourth.read(&mut buffer).is_err(), "served beyond the connection limit");
    // One closes: the fourth is served.
    drop(held);
    let answer = read_until_closed(&mut fourth, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn shutdown_closes_connections_still_open_at_the_drain_deadline() {
    let dir = tempfile::tempdir().unwrap();
    // A body may take a minute, but a shutdown waits half a second for it.
    let config = "[server]\nbody_timeout_ms = 60000\ndrain_timeout_ms = 500\n";
    let mut server = start_with_args(dir.path(), config, &[]);
    let mut stream = TcpStream::connect(addr(&server)).unwrap();
    stream.write_all(b"POST /v1/tokens HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal("TERM");
    // wait_exit gives up after 10 s, far less than the body's minute.
    assert!(server.wait_exit(), "colloquy exited with an error after SIGTERM");
    assert_eq!(read_until_closed(&mut stream, Duration::from_secs(10)), "");
}
