//! `colloquy bench joins`: how fast the channel server admits and connects people, and whether
//! it refuses at once what it cannot take.
//!
//! Starts `colloquy serve --no-media` and fires every join at once (two people per channel), each
//! a str0m peer over loopback UDP. A refused join (503 with `Retry-After`) waits as told and tries
//! again. It reports how many were admitted at the first attempt, how many were refused and how
//! fast the refusal came, how long until everyone was connected, and joins connected per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use colloquy_rtc::audio::{FRAME_SAMPLES, OpusEncoder};
use colloquy_rtc::token::TokenSigner;
use serde_json::json;
use tokio::sync::watch;

use super::{APP, PeerStats, SECRET, spawn_peer, start_server_with};

#[derive(Debug, clap::Args)]
pub struct JoinBenchArgs {
    /// People joining at once (two per channel).
    #[arg(long, default_value_t = 200)]
    pub joins: usize,
    /// The longest the bench waits for everyone to connect, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub within: f64,
    /// The server's `[rtc] max_connecting` (default: the server's default); a large value shows
    /// the channel server without early refusal.
    #[arg(long)]
    pub max_connecting: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: JoinBenchArgs) -> anyhow::Result<()> {
    let settings = args.max_connecting.map(|n| format!("max_connecting = {n}\n")).unwrap_or_default();
    let server = start_server_with(&["--no-media"], &settings)?;
    let http = reqwest::Client::new();
    let signer = TokenSigner::new(SECRET.as_bytes());
    let frames: Arc<[Arc<[u8]>]> = {
        let mut encoder = OpusEncoder::new()?;
        Arc::new([encoder.encode(&vec![0i16; FRAME_SAMPLES])?.into()])
    };
    let epoch = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let expires = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let started = Instant::now();
    let peers: Vec<(Arc<PeerStats>, _)> = (0..args.joins)
        .map(|i| {
            let token = signer.issue(APP, &format!("joins-{}", i / 2), &format!("p{}", i % 2), expires);
            spawn_peer(&http, &server.base, token, &frames, &epoch, &stop_rx)
        })
        .collect();
    let deadline = started + Duration::from_secs_f64(args.within);
    let connected = |peers: &[(Arc<PeerStats>, _)]| peers.iter().filter(|(s, _)| s.connected_ms() > 0).count();
    while connected(&peers) < peers.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let everyone = connected(&peers);
    let mut times: Vec<u64> = peers.iter().map(|(s, _)| s.connected_ms()).filter(|ms| *ms > 0).collect();
    times.sort_unstable();
    let last_ms = times.last().copied().unwrap_or(0);
    let median_ms = times.get(times.len() / 2).copied().unwrap_or(0);
    let first_try =
        peers.iter().filter(|(s, _)| s.refused.load(Ordering::Relaxed) == 0 && s.connected_ms() > 0).count();
    let refusals: u64 = peers.iter().map(|(s, _)| s.refused.load(Ordering::Relaxed)).sum();
    let mut refusal_us: Vec<u64> =
        peers.iter().map(|(s, _)| s.first_refusal_us.load(Ordering::Relaxed)).filter(|us| *us > 0).collect();
    refusal_us.sort_unstable();
    let refusal_median_ms = refusal_us.get(refusal_us.len() / 2).map_or(0.0, |us| *us as f64 / 1000.0);
    let per_second = everyone as f64 / (last_ms.max(1) as f64 / 1000.0);
    let _ = stop_tx.send(true);
    for (_, task) in peers {
        let _ = task.await;
    }
    let report = json!({
        "joins": args.joins,
        "connected": everyone,
        "never_connected": args.joins - everyone,
        "connected_at_first_attempt": first_try,
        "refusals_503": refusals,
        "refusal_answer_median_ms": refusal_median_ms,
        "median_connect_ms": median_ms,
        "all_connected_ms": last_ms,
        "connected_joins_per_second": per_second,
        "max_connecting": args.max_connecting,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "colloquy bench joins: {} joins at once in {} channels on {} cores",
            args.joins,
            args.joins.div_ceil(2),
            report["cores"]
        );
        println!(
            "connected {everyone} ({} never), {first_try} at the first attempt; {refusals} refusals (503 + Retry-After), \
             answered in a median {refusal_median_ms:.1} ms",
            args.joins - everyone
        );
        println!("median connect {median_ms} ms, all connected after {last_ms} ms: {per_second:.1} connected joins/s");
    }
    Ok(())
}
