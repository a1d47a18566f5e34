//! The channel server over real loopback UDP, driven by `colloquy call` processes: audio crosses it,
//! tokens guard it, WHIP resources renew and leave, vanished peers are cleaned up, garbage and a
//! lossy link do not disturb it.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use colloquy_rtc::audio;
use common::{KEY, SECRET, Server, start_with};
use serde_json::{Value, json};

/// Short timeouts, so the clean-up tests take seconds.
const FAST_CONFIG: &str = "[rtc]\nconnect_timeout_ms = 1500\ninactivity_timeout_ms = 1500\n";

fn tone_wav(dir: &Path, name: &str, freq: f32, rate: u32, silence_s: f32, tone_s: f32) -> PathBuf {
    let total = ((silence_s + tone_s) * rate as f32) as usize;
    let start = (silence_s * rate as f32) as usize;
    let samples: Vec<i16> = (0..total)
        .map(|i| {
            if i < start {
                0
            } else {
                (12_000.0 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin()) as i16
            }
        })
        .collect();
    let path = dir.join(name);
    audio::write_wav(&path, &samples, rate).unwrap();
    path
}

fn call(server: &Server, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .arg("call")
        .args(["--server", &server.base])
        .args(args)
        .env("COLLOQUY_API_KEY", KEY)
        .env("COLLOQUY_API_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The summary line a finished call printed on stderr.
fn summary(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("call summary: "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    serde_json::from_str(line).unwrap()
}

/// The frequency of the loud part of a recording, by counting zero crossings in 10 ms chunks that
/// are wholly sound (a lost packet leaves a gap of zeros, which is skipped): independent of the
/// Goertzel helper the server crate uses.
fn loud_frequency(samples: &[i16], rate: u32) -> Option<f64> {
    // The loud 10 ms chunks without a gap in them, then the strongest frequency across them
    // (Goertzel): a lost packet's concealment or a glitch moves a zero-crossing count by a few
    // percent on a busy machine, but not the spectrum's peak.
    let loud: Vec<i16> = samples
        .chunks_exact(480)
        .filter(|chunk| !chunk.windows(8).any(|w| w.iter().all(|s| s.abs() < 200)))
        .filter(|chunk| chunk.iter().any(|s| s.abs() > 3000))
        .flatten()
        .copied()
        .collect();
    (loud.len() >= 4_800).then(|| f64::from(audio::dominant_frequency(&loud, rate, 300, 600).0))
}

fn read_recording(path: &Path) -> Vec<i16> {
    let (samples, rate) = audio::read_wav(path).unwrap();
    assert_eq!(rate, 48_000);
    audio::to_i16(&samples)
}

#[test]
fn a_tone_crosses_the_server_between_two_call_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(&dir.path().join("data"), true, None);
    let tone = tone_wav(dir.path(), "tone.wav", 440.0, 16_000, 0.5, 2.0);
    let recording = dir.path().join("heard.wav");

    let listener = call(
        &server,
        &["--channel", "room", "--uid", "bob", "--seconds", "5", "--record", recording.to_str().unwrap()],
    );
    std::thread::sleep(Duration::from_millis(500));

    // Garbage at the server's UDP port all through the call must not disturb it.
    let stop = Arc::new(AtomicBool::new(false));
    let garbage = {
        let (stop, target) = (Arc::clone(&stop), server.rtc_udp.expect("the server logs its UDP address"));
        std::thread::spawn(move || {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut seed = 7u32;
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                let packet: Vec<u8> = (0..(seed % 300) as usize)
                    .map(|i| {
                        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        (seed >> 24) as u8 ^ i as u8
                    })
                    .collect();
                let _ = socket.send_to(&packet, target);
                sent += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            sent
        })
    };

    let speaker = call(&server, &["--channel", "room", "--uid", "alice", "--play", tone.to_str().unwrap()])
        .wait_with_output()
        .unwrap();
    let listener = listener.wait_with_output().unwrap();
    stop.store(true, Ordering::Relaxed);
    let garbage_sent = garbage.join().unwrap();
    assert!(speaker.status.success(), "{}", String::from_utf8_lossy(&speaker.stderr));
    assert!(listener.status.success(), "{}", String::from_utf8_lossy(&listener.stderr));

    let (sent, heard) = (summary(&speaker), summary(&listener));
    let frequency = loud_frequency(&read_recording(&recording), 48_000).expect("the recording holds a tone");
    assert!((frequency - 440.0).abs() < 5.0, "heard {frequency:.1} Hz, not 440 Hz");
    let delay_us =
        heard["first_audio_heard_unix_us"].as_i64().unwrap() - sent["first_audio_sent_unix_us"].as_i64().unwrap();
    let delay = delay_us as f64 / 1000.0;
    eprintln!(
        "one-way delay through the server: {delay:.2} ms (first tone frame sent → first tone frame heard); heard {frequency:.1} Hz; \
         {} packets sent, {} received; {garbage_sent} garbage datagrams ignored",
        sent["packets_sent"], heard["packets_received"]
    );
    assert!((0..1_000_000).contains(&delay_us), "delay {delay} ms");
    // Nearly every packet of the speaker reached the listener.
    assert!(heard["packets_received"].as_u64().unwrap() * 100 >= sent["packets_sent"].as_u64().unwrap() * 95);
}

/// A real SDP offer, as a str0m client makes it: audio send-receive and a data channel.
fn offer() -> String {
    let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host("127.0.0.1:40000".parse().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(str0m::media::MediaKind::Audio, str0m::media::Direction::SendRecv, None, None, None);
    change.add_channel("colloquy".into());
    change.apply().unwrap().0.to_sdp_string()
}

async fn token(server: &Server, channel: &str, uid: &str, expire_s: u64) -> String {
    let (status, body) = server.post("/v1/tokens", json!({"channel": channel, "uid": uid, "expire_s": expire_s})).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn whip(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", server.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/sdp").body(body);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

async fn participants(server: &Server, channel: &str) -> Vec<Value> {
    let (status, body) = server.get(&format!("/v1/channels/{channel}")).await;
    assert_eq!(status, 200, "{body}");
    body["participants"].as_array().unwrap().clone()
}

#[tokio::test]
async fn tokens_are_refused_when_missing_expired_tampered_or_for_another_channel() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), true, None);
    let reason =
        |body: &str| serde_json::from_str::<Value>(body).unwrap()["error"]["message"].as_str().unwrap().to_owned();

    let (status, _, body) = whip(&server, reqwest::Method::POST, "/rtc/whip", None, Some(offer())).await;
    assert_eq!(status, 401);
    assert!(reason(&body).contains("Bearer"), "{body}");

    let short = token(&server, "room", "alice", 1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, body) = whip(&server, reqwest::Method::POST, "/rtc/whip", Some(&short), Some(offer())).await;
    assert_eq!(status, 401);
    assert!(reason(&body).contains("expired"), "{body}");

    let good = token(&server, "room", "alice", 60).await;
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[3] = "bWFsbG9yeQ".to_owned(); // uid "mallory"
    let (status, _, body) =
        whip(&server, reqwest::Method::POST, "/rtc/whip", Some(&parts.join(".")), Some(offer())).await;
    assert_eq!(status, 401);
    assert!(reason(&body).contains("signature"), "{body}");

    let (status, _, body) =
        whip(&server, reqwest::Method::POST, "/rtc/whip?channel=other", Some(&good), Some(offer())).await;
    assert_eq!(status, 401);
    assert!(reason(&body).contains("not \"other\""), "{body}");

    let (status, _, body) = whip(&server, reqwest::Method::POST, "/rtc/whip", Some("v1.garbage"), Some(offer())).await;
    assert_eq!(status, 401);
    assert!(reason(&body).contains("malformed"), "{body}");

    // Token requests are checked too.
    let (status, body) = server.post("/v1/tokens", json!({"channel": "room", "uid": "a b"})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("uid")));
    let (status, body) = server.post("/v1/tokens", json!({"channel": "room", "uid": "a", "expire_s": 0})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("expire_s")));
}

#[tokio::test]
async fn whip_resources_renew_and_leave_and_half_open_joins_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), true, Some(FAST_CONFIG));
    let alice = token(&server, "room", "alice", 60).await;
    let (status, headers, answer) =
        whip(&server, reqwest::Method::POST, "/rtc/whip?channel=room", Some(&alice), Some(offer())).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(headers["content-type"], "application/sdp");
    assert!(answer.starts_with("v=0") && answer.contains("a=ice-lite") && answer.contains("opus/48000/2"), "{answer}");
    let resource = headers["location"].to_str().unwrap().to_owned();
    assert!(resource.starts_with("/rtc/whip/") && resource.len() > 30);
    let list = participants(&server, "room").await;
    assert_eq!((list.len(), list[0]["uid"].as_str(), list[0]["connected"].as_bool()), (1, Some("alice"), Some(false)));

    // The same uid cannot join twice.
    let (status, _, body) = whip(&server, reqwest::Method::POST, "/rtc/whip", Some(&alice), Some(offer())).await;
    assert_eq!(status, 409, "{body}");
    // Not SDP, and a broken offer.
    let bob = token(&server, "room", "bob", 60).await;
    let (status, _, _) = whip(&server, reqwest::Method::POST, "/rtc/whip", Some(&bob), None).await;
    assert_eq!(status, 415);
    let (status, _, body) =
        whip(&server, reqwest::Method::POST, "/rtc/whip", Some(&bob), Some("v=0\r\nnonsense".into())).await;
    assert_eq!(status, 400, "{body}");

    // Renewal needs a token for the same channel and uid.
    let renewed = token(&server, "room", "alice", 120).await;
    assert_eq!(whip(&server, reqwest::Method::PATCH, &resource, Some(&renewed), None).await.0, 204);
    assert_eq!(whip(&server, reqwest::Method::PATCH, &resource, Some(&bob), None).await.0, 401);
    assert_eq!(whip(&server, reqwest::Method::DELETE, &resource, None, None).await.0, 200);
    assert_eq!(whip(&server, reqwest::Method::DELETE, &resource, None, None).await.0, 404);
    assert!(participants(&server, "room").await.is_empty());

    // An offer that never connects is dropped after the connect timeout.
    let (status, _, _) = whip(&server, reqwest::Method::POST, "/rtc/whip", Some(&bob), Some(offer())).await;
    assert_eq!(status, 201);
    assert_eq!(participants(&server, "room").await.len(), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(participants(&server, "room").await.is_empty(), "the half-open join is still there");
}

#[tokio::test]
async fn a_peer_that_vanishes_is_cleaned_up_and_the_channel_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), true, Some(FAST_CONFIG));
    let mut doomed = call(&server, &["--channel", "room", "--uid", "doomed", "--seconds", "30"]);
    let steady = call(&server, &["--channel", "room", "--uid", "steady", "--seconds", "6"]);
    let mut connected = false;
    for _ in 0..50 {
        let list = participants(&server, "room").await;
        if list.len() == 2 && list.iter().all(|p| p["connected"] == true) {
            connected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(connected, "both clients connect");
    doomed.kill().unwrap(); // SIGKILL: no DELETE, no goodbye.
    doomed.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let list = participants(&server, "room").await;
    let uids: Vec<_> = list.iter().map(|p| p["uid"].as_str().unwrap()).collect();
    assert_eq!(uids, ["steady"]);
    assert_eq!(list[0]["connected"], true, "the other peer is undisturbed");
    // Someone new can take the vanished uid's place, and steady hears them.
    let newcomer = call(&server, &["--channel", "room", "--uid", "doomed", "--seconds", "2"]);
    let (newcomer, steady) =
        tokio::task::spawn_blocking(move || (newcomer.wait_with_output().unwrap(), steady.wait_with_output().unwrap()))
            .await
            .unwrap();
    assert!(newcomer.status.success() && steady.status.success());
    assert!(summary(&newcomer)["packets_received"].as_u64().unwrap() > 20, "the newcomer hears steady");
}

/// A UDP relay between the clients and the server that drops 10% of the datagrams and delays each
/// by 0–50 ms, both ways, once a client's connection had 1.5 s to come up: the test is about media
/// on a bad link (a DTLS handshake that loses a flight waits seconds for its retransmission, which
/// would make the test slow and flaky, not more telling). The server advertises the relay's address
/// (127.0.0.2) as its candidate; each client gets its own upstream socket on 127.0.0.3, so the server
/// sees one source per client.
async fn lossy_relay(listen: SocketAddr, server: SocketAddr) {
    use std::collections::HashMap;
    use tokio::net::UdpSocket;
    let front = Arc::new(UdpSocket::bind(listen).await.unwrap());
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(1));
    // Deterministic fate per datagram: (dropped, delay).
    let fate = move || {
        let mut x = counter.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E3779B97F4A7C15);
        x ^= x >> 31;
        x = x.wrapping_mul(0xff51afd7ed558ccd);
        x ^= x >> 29;
        (x % 100 < 10, Duration::from_millis((x >> 8) % 51))
    };
    let fate = Arc::new(fate);
    const SETTLE: Duration = Duration::from_millis(1500);
    let send_later = |socket: Arc<UdpSocket>, packet: Vec<u8>, target: SocketAddr, delay: Duration| {
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = socket.send_to(&packet, target).await;
        });
    };
    tokio::spawn(async move {
        let mut backs: HashMap<SocketAddr, (Arc<UdpSocket>, std::time::Instant)> = HashMap::new();
        let mut buf = vec![0u8; 2048];
        loop {
            let Ok((len, client)) = front.recv_from(&mut buf).await else { return };
            let (back, since) = match backs.get(&client) {
                Some(back) => back.clone(),
                None => {
                    let back = Arc::new(UdpSocket::bind("127.0.0.3:0").await.unwrap());
                    let since = std::time::Instant::now();
                    backs.insert(client, (Arc::clone(&back), since));
                    // Server → this client.
                    let (back_rx, front_tx, fate) = (Arc::clone(&back), Arc::clone(&front), Arc::clone(&fate));
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 2048];
                        loop {
                            let Ok((len, _)) = back_rx.recv_from(&mut buf).await else { return };
                            let (dropped, delay) =
                                if since.elapsed() < SETTLE { (false, Duration::ZERO) } else { fate() };
                            if !dropped {
                                send_later(Arc::clone(&front_tx), buf[..len].to_vec(), client, delay);
                            }
                        }
                    });
                    (back, since)
                }
            };
            let (dropped, delay) = if since.elapsed() < SETTLE { (false, Duration::ZERO) } else { fate() };
            if !dropped {
                send_later(back, buf[..len].to_vec(), server, delay);
            }
        }
    });
}

#[tokio::test]
async fn audio_survives_a_lossy_jittery_link() {
    let dir = tempfile::tempdir().unwrap();
    // The server binds 127.0.0.1 and advertises 127.0.0.2, where the relay listens.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let config = format!("{FAST_CONFIG}public_ip = \"127.0.0.2\"\n");
    let mut server = common::start_with_args(dir.path(), &config, &["--rtc-udp", &format!("127.0.0.1:{port}")]);
    lossy_relay(format!("127.0.0.2:{port}").parse().unwrap(), format!("127.0.0.1:{port}").parse().unwrap()).await;

    let tone = tone_wav(dir.path(), "tone.wav", 440.0, 48_000, 0.3, 3.0);
    let recording = dir.path().join("heard.wav");
    // The listener goes through the relay (it connects to the advertised 127.0.0.2); so does the speaker.
    let listener = call(
        &server,
        &["--channel", "room", "--uid", "bob", "--seconds", "6", "--record", recording.to_str().unwrap()],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let speaker = call(&server, &["--channel", "room", "--uid", "alice", "--play", tone.to_str().unwrap()]);
    let (speaker, listener) = tokio::task::spawn_blocking(move || {
        (speaker.wait_with_output().unwrap(), listener.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    assert!(speaker.status.success(), "{}", String::from_utf8_lossy(&speaker.stderr));
    assert!(listener.status.success(), "{}", String::from_utf8_lossy(&listener.stderr));
    let (sent, heard) = (summary(&speaker), summary(&listener));
    let (sent_packets, heard_packets) =
        (sent["packets_sent"].as_u64().unwrap(), heard["packets_received"].as_u64().unwrap());
    // Two lossy hops (speaker → server → listener): about 81% get through.
    assert!(heard_packets * 100 >= sent_packets * 60, "{heard_packets} of {sent_packets} arrived");
    let frequency = loud_frequency(&read_recording(&recording), 48_000).expect("the recording holds the tone");
    assert!((frequency - 440.0).abs() < 15.0, "heard {frequency:.1} Hz");
    eprintln!("lossy link: {heard_packets} of {sent_packets} packets arrived; heard {frequency:.1} Hz");
    // The session survived: the server still answers and the channel emptied cleanly.
    assert!(participants(&server, "room").await.is_empty());
    server.signal("TERM");
    assert!(server.wait_exit());
}

/// A join the node cannot take now is refused at once with 503 and `Retry-After`, not accepted
/// and left to time out; once the person before it has left, the next join is taken.
#[tokio::test]
async fn a_join_beyond_what_the_node_can_connect_now_is_refused_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), true, Some("[rtc]\nmax_connecting = 1\n"));
    // The first person's offer is accepted; it never completes ICE (nobody answers the checks).
    let first = token(&server, "room", "first", 60).await;
    let (status, headers, body) = whip(&server, reqwest::Method::POST, "/rtc/whip", Some(&first), Some(offer())).await;
    assert_eq!(status, 201, "{body}");
    let second = token(&server, "room", "second", 60).await;
    let (status, refused, body) = whip(&server, reqwest::Method::POST, "/rtc/whip", Some(&second), Some(offer())).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(refused["retry-after"], "1");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "node_busy", "{body}");
    // The first leaves; the second is taken.
    let location = headers["location"].to_str().unwrap().to_owned();
    let (status, _, _) = whip(&server, reqwest::Method::DELETE, &location, None, None).await;
    assert_eq!(status, 200);
    let (status, _, body) = whip(&server, reqwest::Method::POST, "/rtc/whip", Some(&second), Some(offer())).await;
    assert_eq!(status, 201, "{body}");
}
