//! An in-process agent in a channel with a `colloquy call` client over real loopback UDP: the agent
//! hears the caller as decoded PCM, its own PCM reaches the caller as Opus, data messages go both
//! ways, and channel events tell it who joined and left. Channels belong to apps: another app's
//! caller in a channel of the same name hears nothing of the agent.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use colloquy_http::HttpConfig;
use colloquy_http::auth::{Credential, RateLimit};
use colloquy_http::rtc::RtcEdge;
use colloquy_model::{AppId, Secret};
use colloquy_rtc::audio::{self, FRAME_SAMPLES, SAMPLE_RATE};
use colloquy_rtc::server::{ChannelEvent, ChannelServer, LeaveReason, Listen, RtcConfig};
use colloquy_rtc::token::TokenSigner;
use colloquy_store::Store;
use colloquy_supervisor::{Supervisor, SupervisorConfig};

/// Zero crossings per second over the samples that are sound.
fn frequency(samples: &[i16]) -> f64 {
    let loud: Vec<i16> = samples
        .chunks_exact(480)
        .filter(|c| c.iter().all(|s| s.abs() < 20_000) && c.iter().any(|s| s.abs() > 3000))
        .flatten()
        .copied()
        .collect();
    let crossings = loud.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / 2.0 / (loud.len().max(1) as f64 / f64::from(SAMPLE_RATE))
}

fn tone(freq: f32, frames: usize) -> Vec<i16> {
    (0..frames * FRAME_SAMPLES)
        .map(|i| (10_000.0 * (2.0 * std::f32::consts::PI * freq * i as f32 / SAMPLE_RATE as f32).sin()) as i16)
        .collect()
}

/// A channel server and the HTTP API in process, on loopback ports: (channels, signer, base URL).
async fn stack(dir: &std::path::Path) -> (ChannelServer, TokenSigner, String) {
    let channels = ChannelServer::start(RtcConfig::with_defaults("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let signer = TokenSigner::new(b"secret");
    let store = Store::open(&dir.join("colloquy.db")).await.unwrap();
    let router = colloquy_http::router(
        Supervisor::new(store, SupervisorConfig { max_agents: 10 }),
        HttpConfig {
            credentials: vec![
                Credential { key: "k".into(), secret: Secret::new("s"), app: AppId::native() },
                Credential { key: "key-a".into(), secret: Secret::new("secret-a"), app: AppId::new("app-a").unwrap() },
                Credential { key: "key-b".into(), secret: Secret::new("secret-b"), app: AppId::new("app-b").unwrap() },
            ],
            apps: colloquy_http::apps::Apps::default(),
            rate_limit: RateLimit { per_second: 0, burst: 0 },
            brake: colloquy_http::brake::BrakeConfig::DEFAULT,
            rtc: RtcEdge::new(signer.clone(), Some(channels.clone())),
            playground: false,
            dialects: std::sync::Arc::new(colloquy_http::dialects::NoDialects),
            local_models: std::sync::Arc::new(colloquy_http::fields::ListedModels::default_llm()),
            speech_vendors: std::sync::Arc::new(colloquy_http::vendors::NoVendors),
            cluster: None,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (channels, signer, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_hears_speaks_and_exchanges_messages_with_a_caller() {
    let dir = tempfile::tempdir().unwrap();
    let (channels, signer, base) = stack(dir.path()).await;
    let mut seat = channels.join_agent("native", "room", "agent", Listen::Everyone).await.unwrap();
    let wav = dir.path().join("caller.wav");
    audio::write_wav(&wav, &tone(440.0, 150), SAMPLE_RATE).unwrap();
    let recording = dir.path().join("heard.wav");
    let expires = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 60;
    let token = signer.issue("native", "room", "caller", expires);
    let caller = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args([
            "call",
            "--server",
            &base,
            "--token",
            &token,
            "--seconds",
            "4.5",
            "--send",
            r#"{"type":"caller.hello","n":1}"#,
        ])
        .arg("--play")
        .arg(&wav)
        .arg("--record")
        .arg(&recording)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The agent: listens, and once the caller is there, says hello and speaks a 660 Hz tone.
    let mut heard = Vec::new();
    let mut events = Vec::new();
    let handle = seat.handle.clone();
    let mut speaking: Option<tokio::task::JoinHandle<()>> = None;
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(200), seat.events.recv()).await else {
            continue;
        };
        match event {
            ChannelEvent::Audio { from, pcm } => {
                assert_eq!((from.as_str(), pcm.len()), ("caller", FRAME_SAMPLES));
                heard.extend(pcm);
            }
            ChannelEvent::Joined { ref uid, .. } if uid == "caller" && speaking.is_none() => {
                events.push(event.clone());
                let handle = handle.clone();
                speaking = Some(tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    handle.send_data(None, r#"{"type":"agent.hello"}"#.into()).await;
                    let mut next = tokio::time::Instant::now();
                    for frame in tone(660.0, 125).chunks(FRAME_SAMPLES) {
                        handle.publish(frame.to_vec()).await;
                        next += Duration::from_millis(20);
                        tokio::time::sleep_until(next).await;
                    }
                }));
            }
            ChannelEvent::Left { .. } => {
                events.push(event);
                break;
            }
            other => events.push(other),
        }
    }
    let caller = caller.wait_with_output().unwrap();
    assert!(caller.status.success(), "{}", String::from_utf8_lossy(&caller.stderr));

    // Channel events and the caller's message reached the agent.
    assert_eq!(events.first(), Some(&ChannelEvent::Joined { uid: "caller".into(), agent: false }));
    assert!(
        events.contains(&ChannelEvent::Data { from: "caller".into(), text: r#"{"type":"caller.hello","n":1}"#.into() }),
        "{events:?}"
    );
    assert_eq!(
        events.last(),
        Some(&ChannelEvent::Left { uid: "caller".into(), agent: false, reason: LeaveReason::Left })
    );
    // The agent heard the caller's tone as PCM.
    let heard_hz = frequency(&heard);
    assert!((heard_hz - 440.0).abs() < 5.0, "the agent heard {heard_hz:.1} Hz");
    // The caller heard the agent's tone and got its message, as one JSON object per line.
    let (samples, _) = audio::read_wav(&recording).unwrap();
    let caller_hz = frequency(&audio::to_i16(&samples));
    assert!((caller_hz - 660.0).abs() < 5.0, "the caller heard {caller_hz:.1} Hz");
    let stdout = String::from_utf8_lossy(&caller.stdout);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), [r#"{"type":"agent.hello"}"#]);
    seat.handle.leave().await;
    channels.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_token_expires_is_removed_with_that_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (channels, signer, base) = stack(dir.path()).await;
    let mut seat = channels.join_agent("native", "room", "agent", Listen::Everyone).await.unwrap();
    let expires = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 2;
    let token = signer.issue("native", "room", "short-lived", expires);
    let caller = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["call", "--server", &base, "--token", &token, "--seconds", "6"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let left = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match seat.events.recv().await {
                Some(ChannelEvent::Left { uid, reason, .. }) => break (uid, reason),
                Some(_) => continue,
                None => panic!("the seat closed"),
            }
        }
    })
    .await
    .expect("the expired participant is removed");
    assert_eq!(left, ("short-lived".to_owned(), LeaveReason::TokenExpired));
    let _ = tokio::task::spawn_blocking(move || caller.wait_with_output()).await;
    channels.shutdown().await;
}

/// Spawns `colloquy call` with `token`, recording what it hears to `recording`.
fn caller(base: &str, token: &str, seconds: &str, recording: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["call", "--server", base, "--token", token, "--seconds", seconds])
        .arg("--record")
        .arg(recording)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `POST /v1/tokens` as `key:secret`.
async fn mint(base: &str, key: &str, secret: &str, channel: &str, uid: &str) -> String {
    let reply = reqwest::Client::new()
        .post(format!("{base}/v1/tokens"))
        .basic_auth(key, Some(secret))
        .json(&serde_json::json!({"channel": channel, "uid": uid}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    reply.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

async fn channel_uids(base: &str, key: &str, secret: &str, channel: &str) -> Vec<String> {
    let reply = reqwest::Client::new()
        .get(format!("{base}/v1/channels/{channel}"))
        .basic_auth(key, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: serde_json::Value = reply.json().await.unwrap();
    body["participants"].as_array().unwrap().iter().map(|p| p["uid"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_apps_caller_in_a_channel_of_the_same_name_hears_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (channels, _signer, base) = stack(dir.path()).await;
    // App A's agent in A's "room-1" speaks a 660 Hz tone to whoever is there.
    let mut seat = channels.join_agent("app-a", "room-1", "agent", Listen::Everyone).await.unwrap();
    let token_a = mint(&base, "key-a", "secret-a", "room-1", "alice").await;
    // App B asks for the same channel name, and even for A's caller's uid.
    let token_b = mint(&base, "key-b", "secret-b", "room-1", "alice").await;
    let (heard_a, heard_b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let caller_a = caller(&base, &token_a, "4", &heard_a);
    let caller_b = caller(&base, &token_b, "4", &heard_b);

    let handle = seat.handle.clone();
    let mut joined = Vec::new();
    let mut speaking = None;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(200), seat.events.recv()).await else {
            continue;
        };
        if let ChannelEvent::Joined { uid, .. } = event {
            joined.push(uid);
            if speaking.is_none() {
                let handle = handle.clone();
                speaking = Some(tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let mut next = tokio::time::Instant::now();
                    for frame in tone(660.0, 125).chunks(FRAME_SAMPLES) {
                        handle.publish(frame.to_vec()).await;
                        next += Duration::from_millis(20);
                        tokio::time::sleep_until(next).await;
                    }
                }));
                // While both calls are up: each app sees only its own channel.
                tokio::time::sleep(Duration::from_millis(800)).await;
                assert_eq!(channel_uids(&base, "key-a", "secret-a", "room-1").await, ["agent", "alice"]);
                assert!(channel_uids(&base, "key-b", "secret-b", "room-1").await.iter().all(|uid| uid == "alice"));
                assert!(channel_uids(&base, "k", "s", "room-1").await.is_empty(), "the native app's room-1 is empty");
            }
        }
    }
    let (a, b) = (caller_a.wait_with_output().unwrap(), caller_b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));

    // The agent saw only A's caller arrive; A's caller heard the tone; B's caller, who joined a
    // channel of the same name as the same uid, heard nothing at all.
    assert_eq!(joined, ["alice"]);
    let (samples, _) = audio::read_wav(&heard_a).unwrap();
    let hz = frequency(&audio::to_i16(&samples));
    assert!((hz - 660.0).abs() < 5.0, "A's caller heard {hz:.1} Hz");
    let (samples, _) = audio::read_wav(&heard_b).unwrap();
    let loudest = audio::to_i16(&samples).iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(loudest < 100, "B's caller heard sound (peak {loudest})");
    seat.handle.leave().await;
    channels.shutdown().await;
}
