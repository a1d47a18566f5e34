//! `colloquy bench flood`: hostile UDP floods into a server with live sessions.
//!
//! Starts `colloquy serve` (with media) and puts live sessions on it: person-to-person calls (two
//! str0m peers per channel, a tone every 20 ms each way), agents behind a local OpenAI-compatible
//! fake, each with a person asking it a question every 6 s, and one more person alone in a
//! channel whose session the last flood abuses. Then it measures a quiet period and each flood in
//! turn, loopback only, at most `--rate` datagrams a second for `--seconds`:
//!
//! - `garbage`: random bytes and STUN, RTP and DTLS look-alikes from 256 addresses;
//! - `unsigned_stun`: binding requests naming live sessions' ICE ufrags (which anyone on the path
//!   reads), unsigned or signed with a wrong password, from 256 addresses;
//! - `session_junk`: RTP and DTLS look-alikes from the live sessions' own 5-tuples (what someone
//!   who spoofs a session's address can send);
//! - `signed_stun_new_ports`: binding requests signed with a session's own ICE password, each from
//!   a new address: what a person can do with the session its token opened.
//!
//! For each it prints the server's resident memory before, at its peak during, and 3 s after,
//! the datagrams the server dropped by reason (from `/metrics`), the share of the calls' packets
//! that arrived, and the agents' turns.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use colloquy_rtc::audio::{FRAME_SAMPLES, OpusEncoder};
use colloquy_rtc::stun;
use colloquy_rtc::token::TokenSigner;
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::agents::{fake_openai, leave, metric, question_frames, start_agent};
use super::{APP, PeerStats, SECRET, rss, spawn_peer, start_server};

#[derive(Debug, clap::Args)]
pub struct FloodBenchArgs {
    /// Person-to-person calls (two peers each) live through the floods.
    #[arg(long, default_value_t = 4)]
    pub calls: usize,
    /// Live agents, each with a person asking it a question every 6 s.
    #[arg(long, default_value_t = 2)]
    pub agents: usize,
    /// Seconds each flood (and the quiet period before them) lasts.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Datagrams a second each flood sends at most.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// The floods to run (comma-separated); default all of them.
    #[arg(long, value_delimiter = ',')]
    pub floods: Vec<Flood>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Flood {
    /// Random bytes and STUN, RTP and DTLS look-alikes from 256 addresses.
    Garbage,
    /// STUN requests naming live sessions, unsigned or wrongly signed, from 256 addresses.
    UnsignedStun,
    /// RTP and DTLS look-alikes from live sessions' own addresses.
    SessionJunk,
    /// STUN requests signed with a session's own password, each from a new address.
    SignedStunNewPorts,
}

impl Flood {
    const ALL: [Flood; 4] = [Flood::Garbage, Flood::UnsignedStun, Flood::SessionJunk, Flood::SignedStunNewPorts];

    fn name(self) -> &'static str {
        match self {
            Flood::Garbage => "garbage",
            Flood::UnsignedStun => "unsigned_stun",
            Flood::SessionJunk => "session_junk",
            Flood::SignedStunNewPorts => "signed_stun_new_ports",
        }
    }
}

/// The live sessions the floods aim at.
struct Sessions {
    /// Both peers of every person-to-person call.
    calls: Vec<Arc<PeerStats>>,
    /// The people talking to agents.
    callers: Vec<Arc<PeerStats>>,
    /// The person whose own session the signed flood abuses.
    hostile: Arc<PeerStats>,
}

impl Sessions {
    fn everyone(&self) -> impl Iterator<Item = &Arc<PeerStats>> {
        self.calls.iter().chain(&self.callers).chain(std::iter::once(&self.hostile))
    }
}

/// One measured period.
struct Period {
    flood: Option<Flood>,
    sent: u64,
    seconds: f64,
    rss_before: u64,
    rss_peak: u64,
    rss_after: u64,
    /// Of the calls' packets sent during the period, the share that arrived.
    delivered: f64,
    /// Packets the agents' callers received during the period (the agents' speech).
    agent_packets: u64,
    turns: f64,
    /// Datagrams the server counted in, and dropped by reason, during the period.
    datagrams: f64,
    dropped: Vec<(&'static str, f64)>,
}

const DROP_REASONS: [&str; 3] = ["unrouted", "unauthenticated", "too_many_addresses"];

pub async fn run(args: FloodBenchArgs) -> anyhow::Result<()> {
    let fake = fake_openai().await?;
    let question = question_frames().await?;
    let server = start_server(&[])?;
    let pid = server.child.id();
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let signer = TokenSigner::new(SECRET.as_bytes());
    let url = format!("http://{fake}/v1");
    let tone: Arc<[Arc<[u8]>]> = {
        let mut encoder = OpusEncoder::new()?;
        let tone: Vec<i16> = (0..FRAME_SAMPLES).map(|i| (8000.0 * (i as f32 * 0.0576).sin()) as i16).collect();
        Arc::new([encoder.encode(&tone)?.into()])
    };

    // The first agent waits for the embedded models to load.
    let warm = start_agent(&http, &base, "warm-up", "warm-up", &url).await?;
    leave(&http, &base, &warm).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let epoch = Arc::new(AtomicU64::new(0));
    let expires = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let mut agents = Vec::new();
    let mut tasks = Vec::new();
    let mut join = |channel: &str, uid: &str, frames: &Arc<[Arc<[u8]>]>| {
        let (stats, task) =
            spawn_peer(&http, &base, signer.issue(APP, channel, uid, expires), frames, &epoch, &stop_rx);
        tasks.push(task);
        stats
    };
    let calls: Vec<_> =
        (0..args.calls).flat_map(|c| ["a", "b"].map(|side| join(&format!("flood-call-{c}"), side, &tone))).collect();
    let mut callers = Vec::new();
    for i in 0..args.agents {
        agents.push(start_agent(&http, &base, &format!("flood-agent-{i}"), &format!("flood-agent-{i}"), &url).await?);
        callers.push(join(&format!("flood-agent-{i}"), "caller", &question));
    }
    let hostile = join("flood-hostile", "hostile", &tone);
    let sessions = Sessions { calls, callers, hostile };
    let joined_by = Instant::now() + Duration::from_secs(30);
    while sessions.everyone().any(|s| !s.connected.load(Ordering::Relaxed) || s.wire.get().is_none()) {
        anyhow::ensure!(Instant::now() < joined_by, "not every peer connected within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let floods = if args.floods.is_empty() { Flood::ALL.to_vec() } else { args.floods.clone() };
    if !args.json {
        println!(
            "colloquy bench flood: server pid {pid}, {} calls, {} agents; each flood at most {} datagrams/s for {} s",
            args.calls, args.agents, args.rate, args.seconds
        );
        println!(
            "flood                  sent/s    RSS before  peak      after     calls' packets  agent packets  turns  dropped (unrouted/unauthenticated/too_many_addresses)"
        );
    }
    let mut periods = Vec::new();
    for flood in std::iter::once(None).chain(floods.into_iter().map(Some)) {
        let period = measure(&http, &base, pid, &sessions, flood, &args).await?;
        if !args.json {
            print_period(&period);
        }
        periods.push(period);
    }
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    for id in &agents {
        leave(&http, &base, id).await;
    }
    if args.json {
        let periods: Vec<Value> = periods.iter().map(period_json).collect();
        println!(
            "{}",
            json!({
                "calls": args.calls, "agents": args.agents, "rate": args.rate, "seconds": args.seconds,
                "periods": periods,
            })
        );
    }
    Ok(())
}

async fn measure(
    http: &reqwest::Client,
    base: &str,
    pid: u32,
    sessions: &Sessions,
    flood: Option<Flood>,
    args: &FloodBenchArgs,
) -> anyhow::Result<Period> {
    let metrics = || async { http.get(format!("{base}/metrics")).send().await?.text().await };
    for peer in sessions.everyone() {
        peer.sent.store(0, Ordering::Relaxed);
        peer.received.store(0, Ordering::Relaxed);
    }
    let before = metrics().await?;
    let rss_before = rss(pid)?;
    let began = Instant::now();
    let until = began + Duration::from_secs_f64(args.seconds);
    let flooding = match flood {
        Some(flood) => tokio::spawn(send(flood, sessions.targets(flood), args.rate, until)),
        None => tokio::spawn(async move {
            tokio::time::sleep_until(until.into()).await;
            Ok(0)
        }),
    };
    let mut rss_peak = rss_before;
    while !flooding.is_finished() {
        rss_peak = rss_peak.max(rss(pid)?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = flooding.await??;
    let seconds = began.elapsed().as_secs_f64();
    let sum = |peers: &[Arc<PeerStats>], f: fn(&PeerStats) -> u64| peers.iter().map(|p| f(p)).sum::<u64>();
    let calls_sent = sum(&sessions.calls, |p| p.sent.load(Ordering::Relaxed));
    let calls_received = sum(&sessions.calls, |p| p.received.load(Ordering::Relaxed));
    let agent_packets = sum(&sessions.callers, |p| p.received.load(Ordering::Relaxed));
    let after = metrics().await?;
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    let dropped = DROP_REASONS
        .iter()
        .map(|why| {
            let series = format!("colloquy_rtc_datagrams_dropped_total{{why=\"{why}\"}}");
            (*why, exact_metric(&after, &series) - exact_metric(&before, &series))
        })
        .collect();
    let datagrams = delta("colloquy_rtc_datagrams_total");
    let turns = delta("colloquy_turns_total");
    tokio::time::sleep(Duration::from_secs(3)).await;
    rss_peak = rss_peak.max(rss(pid)?);
    Ok(Period {
        flood,
        sent,
        seconds,
        rss_before,
        rss_peak,
        rss_after: rss(pid)?,
        delivered: calls_received as f64 / calls_sent.max(1) as f64,
        agent_packets,
        turns,
        datagrams,
        dropped,
    })
}

/// The value of one series, labels included, from the metrics text.
fn exact_metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

fn print_period(p: &Period) {
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let dropped: Vec<String> = p.dropped.iter().map(|(_, n)| format!("{n:.0}")).collect();
    println!(
        "{:<22} {:>7.0}  {:>7.1} MB  {:>7.1}  {:>7.1}   {:>12.1}%  {:>13}  {:>5.0}  {}",
        p.flood.map_or("(none)", Flood::name),
        p.sent as f64 / p.seconds,
        mb(p.rss_before),
        mb(p.rss_peak),
        mb(p.rss_after),
        p.delivered * 100.0,
        p.agent_packets,
        p.turns,
        dropped.join("/"),
    );
}

fn period_json(p: &Period) -> Value {
    let dropped: serde_json::Map<String, Value> =
        p.dropped.iter().map(|(why, n)| ((*why).to_owned(), json!(n))).collect();
    json!({
        "flood": p.flood.map(Flood::name), "datagrams_sent": p.sent, "seconds": p.seconds,
        "rss_before_bytes": p.rss_before, "rss_peak_bytes": p.rss_peak, "rss_after_bytes": p.rss_after,
        "calls_packets_delivered": p.delivered, "agent_packets_received": p.agent_packets, "turns": p.turns,
        "server_datagrams_in": p.datagrams, "server_dropped": dropped,
    })
}

/// Where a flood's datagrams come from and what they carry.
struct Target {
    /// The server's UDP address.
    server: SocketAddr,
    /// Live sessions' sockets (their 5-tuples) and credentials.
    wires: Vec<Arc<PeerStats>>,
}

impl Sessions {
    fn targets(&self, flood: Flood) -> Target {
        let wires: Vec<Arc<PeerStats>> = match flood {
            Flood::SignedStunNewPorts => vec![Arc::clone(&self.hostile)],
            _ => self.calls.iter().chain(&self.callers).cloned().collect(),
        };
        let server = wires[0].wire.get().expect("every peer is connected").server;
        Target { server, wires }
    }
}

/// Sends `flood` at `rate` datagrams a second until `until`; answers how many went out.
async fn send(flood: Flood, target: Target, rate: u64, until: Instant) -> anyhow::Result<u64> {
    let mut pool = Vec::new();
    if matches!(flood, Flood::Garbage | Flood::UnsignedStun) {
        for i in 0..256u32 {
            pool.push(UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2 + (i % 250) as u8), 0)).await?);
        }
    }
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let per_tick = (rate / 100).max(1);
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0u64;
    let mut n = 0u64;
    while Instant::now() < until {
        ticker.tick().await;
        for _ in 0..per_tick {
            n += 1;
            let wire = target.wires[(n % target.wires.len() as u64) as usize].wire.get().expect("connected");
            let ok = match flood {
                Flood::Garbage => {
                    let socket = &pool[(n % pool.len() as u64) as usize];
                    let packet = match n % 4 {
                        0 => {
                            let len = 20 + random.below(180);
                            random.bytes(len)
                        }
                        1 => stun::binding_request(
                            &format!("{:x}:{:x}", random.next(), random.next()),
                            None,
                            random.transaction(),
                            false,
                        ),
                        2 => random.rtp(),
                        _ => random.dtls(),
                    };
                    socket.try_send_to(&packet, target.server).is_ok()
                }
                Flood::UnsignedStun => {
                    let socket = &pool[(n % pool.len() as u64) as usize];
                    let password: Option<&[u8]> = if n.is_multiple_of(2) { None } else { Some(b"not-the-password") };
                    let packet = stun::binding_request(&wire.username, password, random.transaction(), true);
                    socket.try_send_to(&packet, target.server).is_ok()
                }
                Flood::SessionJunk => {
                    let packet = if n.is_multiple_of(2) { random.rtp() } else { random.dtls() };
                    wire.socket.try_send_to(&packet, target.server).is_ok()
                }
                Flood::SignedStunNewPorts => {
                    // A new address for every datagram: 200 × 250 loopback IPs, ephemeral ports.
                    let ip = Ipv4Addr::new(127, 1 + (n / 250 % 200) as u8, 0, 2 + (n % 250) as u8);
                    let packet = stun::binding_request(
                        &wire.username,
                        Some(wire.password.as_bytes()),
                        random.transaction(),
                        false,
                    );
                    std::net::UdpSocket::bind((ip, 0)).and_then(|s| s.send_to(&packet, target.server)).is_ok()
                }
            };
            sent += u64::from(ok);
        }
    }
    Ok(sent)
}

/// xorshift64: fast, reproducible junk.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn transaction(&mut self) -> [u8; 12] {
        let mut id = [0; 12];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&(self.next() as u32).to_be_bytes());
        id
    }

    /// An RTP header (version 2, Opus's usual payload type, a random SSRC) and random payload.
    fn rtp(&mut self) -> Vec<u8> {
        let mut packet = vec![0x80, 111];
        packet.extend_from_slice(&self.bytes(10));
        let len = 60 + self.below(100);
        packet.extend_from_slice(&self.bytes(len));
        packet
    }

    /// A DTLS 1.2 application-data record with random epoch, sequence and contents.
    fn dtls(&mut self) -> Vec<u8> {
        let len = 40 + self.below(100);
        let body = self.bytes(len);
        let mut packet = vec![23, 0xfe, 0xfd];
        packet.extend_from_slice(&self.bytes(8));
        packet.extend_from_slice(&(body.len() as u16).to_be_bytes());
        packet.extend_from_slice(&body);
        packet
    }
}
