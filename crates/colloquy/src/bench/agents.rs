//! `colloquy bench agents`: many live agents at once. A `colloquy serve` child runs the agents with
//! Silero VAD on every frame and OpenAI-compatible providers pointed at a fake served by this
//! process (realistic delays: ASR 100 ms, LLM first token 150 ms then 15 ms a token, TTS first audio
//! 80 ms); one load-client task per agent joins its channel over UDP and says a question (real
//! Opus) every 6 seconds. Per step it reports the server's CPU per agent and the agents per core
//! that implies, resident memory per agent, late playout frames, turns answered, and the engine's
//! own overhead per turn.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::post;
use colloquy_rtc::audio::{FRAME_SAMPLES, OpusEncoder, SAMPLE_RATE};
use colloquy_rtc::token::TokenSigner;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{APP, KEY, SECRET, cpu_time, rss, spawn_peer, start_server};

#[derive(Debug, clap::Args)]
pub struct AgentBenchArgs {
    /// Live agents per step, comma-separated; the ramp stops after the first step with late frames
    /// over 1%.
    #[arg(long, value_delimiter = ',', default_value = "10,50,100,200")]
    pub agents: Vec<usize>,
    /// Seconds measured per step (after every peer connected and a warm-up).
    #[arg(long, default_value_t = 12.0)]
    pub seconds: f64,
}

/// The answer the fake LLM streams, word by word.
const ANSWER: &str = "Sure, it is sunny and warm today. You will not need an umbrella.";

/// An OpenAI-compatible server with fixed, realistic delays.
pub(super) async fn fake_openai() -> anyhow::Result<SocketAddr> {
    async fn chat() -> impl IntoResponse {
        let stream = async_stream(ANSWER);
        ([("content-type", "text/event-stream")], axum::body::Body::from_stream(stream))
    }
    async fn transcribe() -> impl IntoResponse {
        tokio::time::sleep(Duration::from_millis(100)).await;
        axum::Json(json!({"text": "What is the weather like today?"}))
    }
    async fn speech() -> impl IntoResponse {
        tokio::time::sleep(Duration::from_millis(80)).await;
        // 1.5 s of a soft vowel-like tone at 24 kHz, 16-bit little endian.
        let pcm: Vec<u8> = (0..36_000)
            .flat_map(|i| {
                let t = i as f32 / 24_000.0;
                (((t * 220.0 * std::f32::consts::TAU).sin() * 6000.0) as i16).to_le_bytes()
            })
            .collect();
        ([("content-type", "audio/pcm")], pcm)
    }
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/audio/transcriptions", post(transcribe))
        .route("/v1/audio/speech", post(speech));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

/// The SSE chunks of a chat completion: the first after 150 ms, then one word every 15 ms.
fn async_stream(text: &'static str) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    futures_util::stream::unfold((0usize, words), |(i, words)| async move {
        if i > words.len() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(if i == 0 { 150 } else { 15 })).await;
        let chunk = match words.get(i) {
            Some(word) => {
                let body = json!({"choices": [{"index": 0, "delta": {"content": word}}]});
                format!("data: {body}\n\n")
            }
            None => "data: [DONE]\n\n".to_owned(),
        };
        Some((Ok(chunk), (i + 1, words)))
    })
}

/// A spoken question (Piper), then silence: 6 s of Opus frames that the peers loop.
pub(super) async fn question_frames() -> anyhow::Result<Arc<[Arc<[u8]>]>> {
    let (speech, rate) = crate::tools::speak("What is the weather like today?", 1.0).await?;
    let speech: Vec<f32> = speech.iter().map(|s| f32::from(*s) / 32768.0).collect();
    let mut pcm = colloquy_rtc::audio::to_i16(&colloquy_rtc::audio::resample(&speech, rate, SAMPLE_RATE));
    pcm.resize(SAMPLE_RATE as usize * 6, 0);
    let mut encoder = OpusEncoder::new()?;
    let frames: anyhow::Result<Vec<Arc<[u8]>>> =
        pcm.chunks(FRAME_SAMPLES).map(|frame| Ok(encoder.encode(frame)?.into())).collect();
    Ok(frames?.into())
}

/// Reads one counter or histogram sum/count line from the metrics text.
pub(super) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn run(args: AgentBenchArgs) -> anyhow::Result<()> {
    let fake = fake_openai().await?;
    let frames = question_frames().await?;
    let server = start_server(&[])?;
    let pid = server.child.id();
    let http = reqwest::Client::new();
    let signer = TokenSigner::new(SECRET.as_bytes());
    let url = format!("http://{fake}/v1");
    let metrics = |http: reqwest::Client, base: String| async move {
        http.get(format!("{base}/metrics")).send().await?.text().await.context("metrics")
    };

    // The first agent waits for the embedded models (VAD) to load; measure starts after that.
    let warm = start_agent(&http, &server.base, "warm-up", "warm-up", &url).await?;
    leave(&http, &server.base, &warm).await;
    let idle_rss = rss(pid)?;
    println!(
        "colloquy bench agents: server pid {pid}, {} cores, RSS with models loaded {:.0} MB; fake providers at {fake}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        idle_rss as f64 / 1e6
    );
    greeting_probe(&http, &server.base, &signer, &url, &frames).await?;
    println!(
        "agents  start p50/max   server CPU  CPU/agent  agents/core  RSS/agent  frames  late    turns  overhead p50/p99/max"
    );
    for &count in &args.agents {
        // Start the agents, timing each POST /v1/agents.
        let mut ids = Vec::new();
        let mut starts = Vec::new();
        for i in 0..count {
            let started = Instant::now();
            ids.push(start_agent(&http, &server.base, &format!("a{count}-{i}"), &format!("c{count}-{i}"), &url).await?);
            starts.push(started.elapsed());
        }
        starts.sort();
        let (stop_tx, stop_rx) = watch::channel(false);
        let epoch = Arc::new(AtomicU64::new(0));
        let expires = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
        let mut peers = Vec::new();
        for i in 0..count {
            let token = signer.issue(APP, &format!("c{count}-{i}"), "caller", expires);
            peers.push(spawn_peer(&http, &server.base, token, &frames, &epoch, &stop_rx));
            // Spread the peers over the 6 s loop, so turns do not all happen at once.
            tokio::time::sleep(Duration::from_millis((6000 / count.max(1)).min(100) as u64)).await;
        }
        let joined_by = Instant::now() + Duration::from_secs(30);
        while peers.iter().any(|(s, _)| !s.connected.load(Ordering::Relaxed)) {
            anyhow::ensure!(Instant::now() < joined_by, "not every peer connected within 30 s at {count} agents");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = metrics(http.clone(), server.base.clone()).await?;
        let (cpu0, t0) = (cpu_time(pid)?, Instant::now());
        tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
        let (cpu1, t1) = (cpu_time(pid)?, Instant::now());
        let memory = rss(pid)?;
        let after = metrics(http.clone(), server.base.clone()).await?;
        let delta = |name: &str| metric(&after, name) - metric(&before, name);
        let (frames_sent, late) = (delta("colloquy_playout_frames_total"), delta("colloquy_playout_frames_late_total"));
        let turns = delta("colloquy_turns_total");
        let _ = stop_tx.send(true);
        for (_, task) in peers {
            let _ = task.await;
        }
        // The engine's own time per turn, from every agent's turn records.
        let mut overhead = Vec::new();
        for id in &ids {
            let turns: Value = http
                .get(format!("{}/v1/agents/{id}/turns", server.base))
                .basic_auth(KEY, Some(SECRET))
                .send()
                .await?
                .json()
                .await?;
            for turn in turns["turns"].as_array().into_iter().flatten() {
                if let Some(ms) = turn["metrics"]["engine_overhead_ms"].as_u64() {
                    overhead.push(ms);
                }
            }
            leave(&http, &server.base, id).await;
        }
        overhead.sort_unstable();
        let pick = |q: f64| overhead.get(((overhead.len() as f64 * q) as usize).min(overhead.len().saturating_sub(1)));
        let cpu = (cpu1 - cpu0).as_secs_f64() / (t1 - t0).as_secs_f64();
        let per_agent = cpu / count as f64;
        let late_share = late / frames_sent.max(1.0);
        println!(
            "{count:>6}  {:>5.0}/{:<5.0} ms  {:>8.1}%  {:>7.2}%  {:>11.0}  {:>6.2} MB  {:>6.0}  {:>5.2}%  {:>5.0}  {}/{}/{} ms",
            starts[starts.len() / 2].as_secs_f64() * 1e3,
            starts[starts.len() - 1].as_secs_f64() * 1e3,
            cpu * 100.0,
            per_agent * 100.0,
            1.0 / per_agent.max(1e-9),
            memory.saturating_sub(idle_rss) as f64 / 1e6 / count as f64,
            frames_sent,
            late_share * 100.0,
            turns,
            pick(0.5).map_or("-".into(), u64::to_string),
            pick(0.99).map_or("-".into(), u64::to_string),
            overhead.last().map_or("-".into(), u64::to_string),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        if late_share > 0.01 {
            println!("stopping the ramp: more than 1% of playout frames late at {count} agents");
            break;
        }
    }
    Ok(())
}

pub(super) async fn start_agent(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    channel: &str,
    url: &str,
) -> anyhow::Result<String> {
    let body = json!({
        "name": name, "channel": channel, "idle_timeout": 0,
        "llm": {"vendor": "openai", "url": url, "model": "fake", "api_key": "none"},
        "asr": {"vendor": "openai", "url": url, "model": "fake", "api_key": "none"},
        "tts": {"vendor": "openai", "url": url, "model": "fake", "voice": "alloy", "api_key": "none"},
    });
    let response = http.post(format!("{base}/v1/agents")).basic_auth(KEY, Some(SECRET)).json(&body).send().await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "starting an agent: {status} {answer}");
    answer["agent_id"].as_str().map(str::to_owned).context("agent_id")
}

pub(super) async fn leave(http: &reqwest::Client, base: &str, id: &str) {
    let _ = http.post(format!("{base}/v1/agents/{id}/leave")).basic_auth(KEY, Some(SECRET)).send().await;
}

/// From `POST /v1/agents` to the answer, and to the first packet of the agent's greeting at a person
/// already in the channel; five times, with the fake TTS's 80 ms before its first byte taken out.
async fn greeting_probe(
    http: &reqwest::Client,
    base: &str,
    signer: &TokenSigner,
    url: &str,
    frames: &Arc<[Arc<[u8]>]>,
) -> anyhow::Result<()> {
    let mut answers = Vec::new();
    let mut first_audio = Vec::new();
    for round in 0..5 {
        let channel = format!("greet-{round}");
        let (stop_tx, stop_rx) = watch::channel(false);
        let expires = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 600;
        let silence: Arc<[Arc<[u8]>]> = Arc::new([Arc::clone(&frames[frames.len() - 1])]);
        let token = signer.issue(APP, &channel, "person", expires);
        let (stats, task) = spawn_peer(http, base, token, &silence, &Arc::new(AtomicU64::new(0)), &stop_rx);
        while !stats.connected.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let body = json!({
            "name": format!("greeter-{round}"), "channel": channel, "idle_timeout": 0,
            "greeting": {"text": "Hello there."},
            "llm": {"vendor": "openai", "url": url, "model": "fake", "api_key": "none"},
            "asr": {"vendor": "openai", "url": url, "model": "fake", "api_key": "none"},
            "tts": {"vendor": "openai", "url": url, "model": "fake", "voice": "alloy", "api_key": "none"},
        });
        let answer: Value = http
            .post(format!("{base}/v1/agents"))
            .basic_auth(KEY, Some(SECRET))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        answers.push(started.elapsed());
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.received.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        first_audio.push(started.elapsed().saturating_sub(Duration::from_millis(80)));
        let _ = stop_tx.send(true);
        let _ = task.await;
        if let Some(id) = answer["agent_id"].as_str() {
            leave(http, base, id).await;
        }
    }
    answers.sort();
    first_audio.sort();
    println!(
        "agent start: POST /v1/agents answered in {:.0} ms median (max {:.0}); the greeting's first packet at a person \
         in the channel {:.0} ms median (max {:.0}) after the POST, less the fake TTS's 80 ms",
        answers[2].as_secs_f64() * 1e3,
        answers[4].as_secs_f64() * 1e3,
        first_audio[2].as_secs_f64() * 1e3,
        first_audio[4].as_secs_f64() * 1e3,
    );
    Ok(())
}
