//! `colloquy bench …`: benchmarks that print numbers and assert nothing.
//!
//! `colloquy bench rtc` starts `colloquy serve` as a child process and drives it from this process
//! with many str0m peers, two per channel, each sending one Opus packet every 20 ms over loopback
//! UDP. For each channel count it reports the server's CPU per forwarded stream (from
//! `/proc/<pid>/stat`), its resident memory per participant (`/proc/<pid>/status`), and how many
//! packets arrived late (more than 60 ms behind their RTP schedule) or not at all. The load client
//! runs on the same cores as the server, so the figures are a lower bound of what the server alone
//! carries.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use colloquy_rtc::audio::{FRAME_SAMPLES, OpusEncoder, SAMPLE_RATE};
use colloquy_rtc::token::TokenSigner;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::watch;

mod agents;
mod flood;
mod joins;
mod models;
mod tools;
mod vendors;
mod webhooks;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// The channel server: CPU per forwarded stream, memory per participant, late packets.
    Rtc(RtcBenchArgs),
    /// The embedded models: load time, resident memory and speed.
    Models,
    /// Live agents: CPU and memory per agent, late frames, engine overhead and start time, with a
    /// load client feeding each agent speech over UDP and a local OpenAI-compatible fake behind them.
    Agents(agents::AgentBenchArgs),
    /// Joins: how many people the channel server admits and connects per second when they all
    /// come at once, and how fast it refuses (503 + Retry-After) those it cannot take now.
    Joins(joins::JoinBenchArgs),
    /// Webhook deliveries per second with 1% of the receivers hanging, against none.
    Webhooks(webhooks::WebhookBenchArgs),
    /// The speech vendors' clients against local fakes: added latency, CPU per streamed minute,
    /// memory per open stream.
    Vendors(vendors::VendorBenchArgs),
    /// Hostile UDP floods into a server with live calls and agents: its memory before, during and
    /// after each, what it dropped, and whether the calls kept working.
    Flood(flood::FloodBenchArgs),
    /// One agent's tool rounds: the engine's own time from the LLM's last tool-call delta to the
    /// tool's request, and in the whole round (everything but the LLM's and the tool's time).
    Tools(tools::ToolBenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct RtcBenchArgs {
    /// Two-person channels per step, comma-separated; the ramp stops at the first step with more
    /// than 1% of packets late or lost.
    #[arg(long, value_delimiter = ',', default_value = "25,50,100,200,300,400")]
    pub channels: Vec<usize>,
    /// Seconds measured per step (after everyone connected and a 2 s warm-up).
    #[arg(long, default_value_t = 6.0)]
    pub seconds: f64,
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    // The load client runs on two worker threads, beside the server it measures.
    let runtime = || tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    match command {
        BenchCommand::Rtc(args) => runtime()?.block_on(rtc(args)),
        BenchCommand::Models => models::run(),
        BenchCommand::Agents(args) => runtime()?.block_on(agents::run(args)),
        BenchCommand::Joins(args) => runtime()?.block_on(joins::run(args)),
        BenchCommand::Webhooks(args) => runtime()?.block_on(webhooks::run(args)),
        BenchCommand::Vendors(args) => vendors::run(args),
        BenchCommand::Flood(args) => runtime()?.block_on(flood::run(args)),
        BenchCommand::Tools(args) => runtime()?.block_on(tools::run(args)),
    }
}

const KEY: &str = "bench-key";
const SECRET: &str = "bench-secret";
/// The app of the server's own credentials, whose channels the bench's peers join.
const APP: &str = "native";
/// A packet later than this behind its RTP schedule counts as late.
const LATE: Duration = Duration::from_millis(60);

struct ServerProcess {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(extra_args: &[&str]) -> anyhow::Result<ServerProcess> {
    start_server_with(extra_args, "")
}

/// Like [`start_server`], with `rtc_settings` (TOML lines) added to the `[rtc]` section.
fn start_server_with(extra_args: &[&str], rtc_settings: &str) -> anyhow::Result<ServerProcess> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!("[limits]\nrequests_per_second = 0\nmax_agents = 100000\n[rtc]\nmax_channels = 100000\n{rtc_settings}"),
    )?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", "--http", "127.0.0.1:0", "--rtc-udp", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .args(extra_args)
        .env("COLLOQUY_API_KEY", KEY)
        .env("COLLOQUY_API_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("server stdout")?;
    for line in BufReader::new(stdout).lines() {
        if let Some(base) = line?.strip_prefix("colloquy listening on ") {
            return Ok(ServerProcess { child, base: base.to_owned(), _dir: dir });
        }
    }
    bail!("the server exited before listening")
}

/// User plus system CPU time of a process.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').context("stat format")?.1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / 100.0))
}

/// Resident memory of a process, in bytes.
pub(crate) fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).context("VmRSS")?.trim().trim_end_matches(" kB").trim();
    Ok(kb.parse::<u64>()? * 1024)
}

/// Counters of one peer, read by the ramp.
#[derive(Default)]
struct PeerStats {
    connected: AtomicBool,
    /// Milliseconds from the peer's start to its connection; 0 until then.
    connected_after_ms: AtomicU64,
    /// Joins answered 503 with `Retry-After` (each retried as told).
    refused: AtomicU64,
    /// How long the first refusal took to come, in microseconds; 0 without one.
    first_refusal_us: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    late: AtomicU64,
    /// The peer's connection, once its join was answered.
    wire: OnceLock<PeerWire>,
}

/// What someone holding a peer's connection can send with: its socket (its 5-tuple) and its
/// session's ICE credentials, read from the SDP offer and answer.
pub(crate) struct PeerWire {
    socket: Arc<UdpSocket>,
    /// The server's UDP address (the answer's host candidate).
    server: SocketAddr,
    /// `server_ufrag:client_ufrag`: the USERNAME of the peer's STUN requests.
    username: String,
    /// The server's ICE password for this peer, which signs its STUN requests.
    password: String,
}

impl PeerWire {
    fn read(socket: Arc<UdpSocket>, offer: &str, answer: &str) -> Option<PeerWire> {
        let attribute = |sdp: &str, name: &str| {
            sdp.lines().find_map(|l| l.trim_end().strip_prefix(&format!("a={name}:")).map(str::to_owned))
        };
        // a=candidate:<foundation> <component> udp <priority> <ip> <port> typ host
        let candidate = attribute(answer, "candidate")?;
        let fields: Vec<&str> = candidate.split_whitespace().collect();
        let server = format!("{}:{}", fields.get(4)?, fields.get(5)?).parse().ok()?;
        let username = format!("{}:{}", attribute(answer, "ice-ufrag")?, attribute(offer, "ice-ufrag")?);
        Some(PeerWire { socket, server, username, password: attribute(answer, "ice-pwd")? })
    }
}

impl PeerStats {
    fn connected_ms(&self) -> u64 {
        self.connected_after_ms.load(Ordering::Relaxed)
    }
}

async fn rtc(args: RtcBenchArgs) -> anyhow::Result<()> {
    let server = start_server(&["--no-media"])?;
    let pid = server.child.id();
    let http = reqwest::Client::new();
    let signer = TokenSigner::new(SECRET.as_bytes());
    let frames: Arc<[Arc<[u8]>]> = {
        let mut encoder = OpusEncoder::new()?;
        let tone: Vec<i16> = (0..FRAME_SAMPLES).map(|i| (8000.0 * (i as f32 * 0.0576).sin()) as i16).collect();
        Arc::new([encoder.encode(&tone)?.into()])
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss(pid)?;
    println!(
        "colloquy bench rtc: server pid {pid}, {} cores, idle RSS {:.1} MB",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        idle_rss as f64 / 1e6
    );
    println!("channels  streams  server CPU   CPU/stream   streams/core  late     lost     RSS/participant");
    for &channels in &args.channels {
        let (stop_tx, stop_rx) = watch::channel(false);
        let epoch = Arc::new(AtomicU64::new(0));
        let mut peers = Vec::new();
        let expires = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
        for c in 0..channels {
            for side in ["a", "b"] {
                let token = signer.issue(APP, &format!("bench-{channels}-{c}"), side, expires);
                peers.push(spawn_peer(&http, &server.base, token, &frames, &epoch, &stop_rx));
            }
            // Stagger the joins a little: DTLS handshakes are the expensive part of joining.
            if c % 10 == 9 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let joined_by = Instant::now() + Duration::from_secs(30);
        while peers.iter().any(|(s, _)| !s.connected.load(Ordering::Relaxed)) {
            if Instant::now() > joined_by {
                let connected = peers.iter().filter(|(s, _)| s.connected.load(Ordering::Relaxed)).count();
                println!("{channels:>8}  only {connected} of {} peers connected within 30 s; stopping", peers.len());
                let _ = stop_tx.send(true);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Measure: reset the counters, start a new lateness epoch.
        for (stats, _) in &peers {
            stats.sent.store(0, Ordering::Relaxed);
            stats.received.store(0, Ordering::Relaxed);
            stats.late.store(0, Ordering::Relaxed);
        }
        epoch.fetch_add(1, Ordering::Relaxed);
        let (cpu0, t0) = (cpu_time(pid)?, Instant::now());
        tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
        let (cpu1, t1) = (cpu_time(pid)?, Instant::now());
        let memory = rss(pid)?;
        let sum = |f: fn(&PeerStats) -> u64| peers.iter().map(|(s, _)| f(s)).sum::<u64>();
        let (sent, received, late) = (
            sum(|s| s.sent.load(Ordering::Relaxed)),
            sum(|s| s.received.load(Ordering::Relaxed)),
            sum(|s| s.late.load(Ordering::Relaxed)),
        );
        let streams = 2 * channels;
        let wall = (t1 - t0).as_secs_f64();
        let cpu = (cpu1 - cpu0).as_secs_f64() / wall;
        let per_stream = cpu / streams as f64;
        let lost = sent.saturating_sub(received) as f64 / sent.max(1) as f64;
        let late_share = late as f64 / received.max(1) as f64;
        println!(
            "{channels:>8}  {streams:>7}  {:>8.1}%   {:>8.3}%   {:>12.0}  {:>6.2}%  {:>6.2}%  {:>8.1} kB",
            cpu * 100.0,
            per_stream * 100.0,
            1.0 / per_stream.max(1e-9),
            late_share * 100.0,
            lost * 100.0,
            memory.saturating_sub(idle_rss) as f64 / 1024.0 / streams as f64,
        );
        let _ = stop_tx.send(true);
        for (_, task) in peers {
            let _ = task.await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if late_share > 0.01 || lost > 0.01 {
            println!("stopping the ramp: more than 1% of packets late or lost at {channels} channels");
            break;
        }
    }
    Ok(())
}

/// Starts a benchmark peer in a task of its own; returns its counters and the task.
fn spawn_peer(
    http: &reqwest::Client,
    base: &str,
    token: String,
    frames: &Arc<[Arc<[u8]>]>,
    epoch: &Arc<AtomicU64>,
    stop: &watch::Receiver<bool>,
) -> (Arc<PeerStats>, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let stats = Arc::new(PeerStats::default());
    let task = tokio::spawn(peer(
        http.clone(),
        base.to_owned(),
        token,
        Arc::clone(frames),
        Arc::clone(&stats),
        Arc::clone(epoch),
        stop.clone(),
    ));
    (stats, task)
}

/// One benchmark peer: joins through WHIP, sends `frame` every 20 ms, counts what it receives.
async fn peer(
    http: reqwest::Client,
    base: String,
    token: String,
    frames: Arc<[Arc<[u8]>]>,
    stats: Arc<PeerStats>,
    epoch: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let local: SocketAddr = socket.local_addr()?;
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().context("offer")?;
    let started = Instant::now();
    let response = loop {
        let asked = Instant::now();
        let response = http
            .post(format!("{base}/rtc/whip"))
            .bearer_auth(&token)
            .header("content-type", "application/sdp")
            .body(offer.to_sdp_string())
            .send()
            .await?;
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<f64>().ok());
        match retry_after {
            Some(secs) if response.status().as_u16() == 503 => {
                if stats.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                    stats.first_refusal_us.store(asked.elapsed().as_micros().max(1) as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            _ => break response,
        }
    };
    if response.status().as_u16() != 201 {
        bail!("join refused: {}", response.status());
    }
    let location = response.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
    let answer = response.text().await?;
    if let Some(wire) = PeerWire::read(Arc::clone(&socket), &offer.to_sdp_string(), &answer) {
        let _ = stats.wire.set(wire);
    }
    rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;

    let mut buf = vec![0u8; 2048];
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut index: u64 = 0;
    // Lateness anchor: (epoch, arrival, RTP samples) of the first packet of the epoch.
    let mut anchor: Option<(u64, Instant, u64)> = None;
    loop {
        let timeout = loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => {
                    stats.connected.store(true, Ordering::Relaxed);
                    stats.connected_after_ms.store(started.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
                }
                Output::Event(Event::MediaData(data)) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    let samples = data.time.numer() * u64::from(SAMPLE_RATE) / u64::from(data.time.denom().max(1));
                    let current = epoch.load(Ordering::Relaxed);
                    match anchor {
                        Some((e, at, first)) if e == current && samples >= first => {
                            let scheduled =
                                at + Duration::from_secs_f64((samples - first) as f64 / f64::from(SAMPLE_RATE));
                            if now.saturating_duration_since(scheduled) > LATE {
                                stats.late.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => anchor = Some((current, now, samples)),
                    }
                }
                Output::Event(_) => {}
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (len, source) = received?;
                if let Ok(contents) = buf[..len].try_into() {
                    rtc.handle_input(Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents }))?;
                }
            }
            _ = ticker.tick() => {
                if stats.connected.load(Ordering::Relaxed) {
                    let pt = rtc.writer(mid).and_then(|w| w.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt()));
                    if let (Some(pt), Some(writer)) = (pt, rtc.writer(mid)) {
                        let time = MediaTime::new(index * FRAME_SAMPLES as u64, Frequency::FORTY_EIGHT_KHZ);
                        let frame = Arc::clone(&frames[index as usize % frames.len()]);
                        writer.write(pt, Instant::now(), time, frame)?;
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                        index += 1;
                    }
                }
            }
            () = tokio::time::sleep_until(timeout.into()) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
            _ = stop.changed() => {
                let _ = http.delete(format!("{base}{location}")).send().await;
                return Ok(());
            }
        }
    }
}
