//! `colloquy bench vendors`: every speech vendor's client against the local fake of its protocol
//! (the test suite's, `providers/tests/fakes`) on loopback. The fakes answer at once, so what is
//! measured is what the client adds:
//!
//! - added latency: for a recognizer, from the audio frame that completes half a second to the
//!   partial transcript the fake sends for it, and from the end of the audio to the final
//!   transcript; for a voice, from the request to the first audio (a new connection per clause, as
//!   agents do);
//! - CPU per streamed minute: the client's thread only (the fakes run on a thread of their own),
//!   streaming a minute of audio (recognizers) or of speech (voices) as fast as it goes;
//! - memory per open stream: the process's resident memory with `--streams` streams open at once
//!   (a recognizer's past its first partial, a voice's connected and waiting for audio from a fake
//!   that holds it back), less before, per stream. It includes the fake's side of each connection.
//!
//! Each vendor is measured in a process of its own (the bench runs itself once per vendor with
//! `--only`): memory freed by one vendor's streams stays with the allocator and would be reused by
//! the next vendor's, hiding their cost.

#[path = "../../../providers/tests/fakes/mod.rs"]
mod fakes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use colloquy_model::SpeechKind;
use colloquy_providers::TurnId;
use colloquy_providers::asr::{AsrEvent, AsrProvider, AsrRequest};
use colloquy_providers::tts::{TtsProvider, TtsRequest};
use colloquy_providers::vendors;
use fakes::{
    assemblyai, bytedance, cartesia, dashscope, deepgram, elevenlabs, microsoft, microsoft_stt, minimax, tencent,
};
use futures_util::StreamExt;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct VendorBenchArgs {
    /// Utterances (recognizers) and clauses (voices) timed for the latencies.
    #[arg(long, default_value_t = 50)]
    pub rounds: usize,
    /// Streams open at once for the memory figure.
    #[arg(long, default_value_t = 100)]
    pub streams: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Measure one client in this process (`asr:deepgram`, `tts:elevenlabs`) and print its figures
    /// as JSON: what the bench runs itself with, once per vendor.
    #[arg(long, value_name = "KIND:VENDOR")]
    pub only: Option<String>,
}

/// Every client measured, in order: `(kind, vendor)`.
const CLIENTS: &[(SpeechKind, &str)] = &[
    (SpeechKind::Asr, "deepgram"),
    (SpeechKind::Asr, "assemblyai"),
    (SpeechKind::Asr, "microsoft"),
    (SpeechKind::Asr, "paraformer"),
    (SpeechKind::Asr, "tencent"),
    (SpeechKind::Tts, "elevenlabs"),
    (SpeechKind::Tts, "microsoft"),
    (SpeechKind::Tts, "cartesia"),
    (SpeechKind::Tts, "minimax"),
    (SpeechKind::Tts, "bytedance"),
    (SpeechKind::Tts, "cosyvoice"),
    (SpeechKind::Tts, "deepgram"),
];

fn kind_name(kind: SpeechKind) -> &'static str {
    match kind {
        SpeechKind::Asr => "asr",
        SpeechKind::Tts => "tts",
    }
}

/// One vendor's client against its fake: the params of a client of the answering fake and, for a
/// voice, of one whose fake holds each stream open without audio (for the memory figure).
struct Case {
    params: serde_json::Value,
    waiting: serde_json::Value,
}

/// What a case keeps alive: its fakes, until the process ends.
type Kept = Box<dyn std::any::Any + Send>;

/// Starts the fakes of one vendor's client and answers its case.
async fn start_case(kind: SpeechKind, vendor: &str) -> anyhow::Result<(Case, Kept)> {
    const HOLD: Duration = Duration::from_secs(120);
    let transcribe = deepgram::counting;
    let engines = || dashscope::Engines { transcribe: transcribe(), synthesize: elevenlabs::tone() };
    let recognizer = |params| Case { params, waiting: serde_json::Value::Null };
    // A voice: answering, and (with a long timeout) holding its first audio back.
    let voice = |params: serde_json::Value, mut waiting: serde_json::Value| {
        waiting.as_object_mut().expect("params are an object").insert("timeout_ms".into(), json!(120_000));
        Case { params, waiting }
    };
    Ok(match (kind, vendor) {
        (SpeechKind::Asr, "deepgram") => {
            let fake = deepgram::start(deepgram::Mode::Normal, transcribe()).await;
            let params = json!({"key": deepgram::KEY, "url": format!("ws://{}/v1/listen", fake.addr)});
            (recognizer(params), Box::new(fake) as Kept)
        }
        (SpeechKind::Asr, "assemblyai") => {
            let fake = assemblyai::start(assemblyai::Mode::Normal, transcribe()).await;
            let params = json!({"api_key": assemblyai::KEY, "url": format!("ws://{}/v3/ws", fake.addr)});
            (recognizer(params), Box::new(fake) as Kept)
        }
        (SpeechKind::Asr, "microsoft") => {
            let (fake, _) = microsoft_stt::start(microsoft_stt::Mode::Normal, transcribe()).await;
            let params =
                json!({"key": microsoft_stt::KEY, "region": "eastus", "base_url": format!("ws://{}", fake.addr)});
            (recognizer(params), Box::new(fake) as Kept)
        }
        (SpeechKind::Asr, "paraformer") => {
            let (fake, _) = dashscope::start(dashscope::Mode::Normal, engines()).await;
            let params = json!({"api_key": dashscope::KEY, "url": format!("ws://{}/api-ws/v1/inference", fake.addr)});
            (recognizer(params), Box::new(fake) as Kept)
        }
        (SpeechKind::Asr, "tencent") => {
            let fake = tencent::start(tencent::Mode::Normal, transcribe()).await;
            let params = json!({"appid": tencent::APPID, "secret_id": tencent::SECRET_ID,
                                "secret_key": tencent::SECRET_KEY, "url": format!("ws://{}/asr/v2", fake.addr)});
            (recognizer(params), Box::new(fake) as Kept)
        }
        (SpeechKind::Tts, "elevenlabs") => {
            let params = |addr: SocketAddr| {
                json!({"key": elevenlabs::KEY, "voice_id": elevenlabs::VOICE,
                                                   "base_url": format!("ws://{addr}/v1"), "sample_rate": 16000})
            };
            let (fake, _) = elevenlabs::start(elevenlabs::Mode::Normal, elevenlabs::tone()).await;
            let (slow, _) = elevenlabs::start(elevenlabs::Mode::SlowFirstAudio(HOLD), elevenlabs::tone()).await;
            (voice(params(fake.addr), params(slow.addr)), Box::new((fake, slow)) as Kept)
        }
        (SpeechKind::Tts, "microsoft") => {
            let params = |addr: SocketAddr| {
                json!({"key": microsoft::KEY, "region": "eastus", "voice_name": "en-US-AndrewMultilingualNeural",
                       "base_url": format!("http://{addr}"), "sample_rate": 16000})
            };
            let fake = microsoft::start(microsoft::Mode::Normal, elevenlabs::tone()).await;
            let slow = microsoft::start(microsoft::Mode::SlowFirstByte(HOLD), elevenlabs::tone()).await;
            (voice(params(fake.addr), params(slow.addr)), Box::new((fake, slow)) as Kept)
        }
        (SpeechKind::Tts, "cartesia") => {
            let params = |addr: SocketAddr| {
                json!({"api_key": cartesia::KEY, "voice": {"mode": "id", "id": "v-1"},
                       "output_format": {"container": "raw", "sample_rate": 16000},
                       "url": format!("ws://{addr}/tts/websocket")})
            };
            let (fake, _) = cartesia::start(cartesia::Mode::Normal, elevenlabs::tone()).await;
            let (slow, _) = cartesia::start(cartesia::Mode::SlowFirstAudio(HOLD), elevenlabs::tone()).await;
            (voice(params(fake.addr), params(slow.addr)), Box::new((fake, slow)) as Kept)
        }
        (SpeechKind::Tts, "minimax") => {
            let params = |addr: SocketAddr| {
                json!({"api_key": minimax::KEY, "voice_id": "male-qn-qingse", "sample_rate": 16000,
                       "url": format!("ws://{addr}/ws/v1/t2a_v2")})
            };
            let (fake, _) = minimax::start(minimax::Mode::Normal, elevenlabs::tone()).await;
            let (slow, _) = minimax::start(minimax::Mode::SlowStart(HOLD), elevenlabs::tone()).await;
            (voice(params(fake.addr), params(slow.addr)), Box::new((fake, slow)) as Kept)
        }
        (SpeechKind::Tts, "bytedance") => {
            let params = |addr: SocketAddr| {
                json!({"app": {"appid": bytedance::APPID, "token": bytedance::TOKEN},
                       "audio": {"voice_type": "zh_female_wanwanxiaohe_moon_bigtts", "rate": 16000},
                       "url": format!("ws://{addr}/api/v1/tts/ws_binary")})
            };
            let (fake, _) = bytedance::start(bytedance::Mode::Normal, elevenlabs::tone()).await;
            let (slow, _) = bytedance::start(bytedance::Mode::SlowFirstAudio(HOLD), elevenlabs::tone()).await;
            (voice(params(fake.addr), params(slow.addr)), Box::new((fake, slow)) as Kept)
        }
        (SpeechKind::Tts, "cosyvoice") => {
            let params = |addr: SocketAddr| {
                json!({"api_key": dashscope::KEY, "voice": "longxiaochun_v2", "sample_rate": 16000,
                       "url": format!("ws://{addr}/api-ws/v1/inference")})
            };
            let (fake, _) = dashscope::start(dashscope::Mode::Normal, engines()).await;
            let (slow, _) = dashscope::start(dashscope::Mode::SlowStart(HOLD), engines()).await;
            (voice(params(fake.addr), params(slow.addr)), Box::new((fake, slow)) as Kept)
        }
        (SpeechKind::Tts, "deepgram") => {
            let params = |addr: SocketAddr| json!({"key": deepgram::KEY, "base_url": format!("ws://{addr}/v1/speak"), "sample_rate": 16000});
            let (fake, _) = deepgram::start_speak(deepgram::SpeakMode::Normal, elevenlabs::tone()).await;
            let (slow, _) = deepgram::start_speak(deepgram::SpeakMode::SlowFirstAudio(HOLD), elevenlabs::tone()).await;
            (voice(params(fake.addr), params(slow.addr)), Box::new((fake, slow)) as Kept)
        }
        (kind, vendor) => anyhow::bail!("no {} client {vendor} in the bench", kind_name(kind)),
    })
}

pub fn run(args: VendorBenchArgs) -> anyhow::Result<()> {
    if let Some(only) = &args.only {
        let (kind, vendor) = match only.split_once(':') {
            Some(("asr", vendor)) => (SpeechKind::Asr, vendor),
            Some(("tts", vendor)) => (SpeechKind::Tts, vendor),
            _ => anyhow::bail!("--only takes asr:VENDOR or tts:VENDOR, not {only:?}"),
        };
        println!("{}", measure_one(kind, vendor, &args)?);
        return Ok(());
    }
    let (mut asr, mut tts) = (serde_json::Map::new(), serde_json::Map::new());
    for &(kind, vendor) in CLIENTS {
        let figures = measure_in_child(kind, vendor, &args)?;
        match kind {
            SpeechKind::Asr => asr.insert(vendor.to_owned(), figures),
            SpeechKind::Tts => tts.insert(vendor.to_owned(), figures),
        };
    }
    let report = json!({"asr": asr, "tts": tts, "rounds": args.rounds, "streams": args.streams});
    if args.json {
        println!("{report}");
        return Ok(());
    }
    print_table(&report, &args);
    Ok(())
}

/// Runs this bench again for one client in a fresh process and reads its JSON figures.
fn measure_in_child(kind: SpeechKind, vendor: &str, args: &VendorBenchArgs) -> anyhow::Result<serde_json::Value> {
    let only = format!("{}:{vendor}", kind_name(kind));
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "vendors", "--only", &only])
        .args(["--rounds", &args.rounds.to_string(), "--streams", &args.streams.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running the bench for {only}"))?;
    anyhow::ensure!(output.status.success(), "the bench for {only} failed: {}", output.status);
    serde_json::from_slice(&output.stdout).with_context(|| format!("the figures of {only}"))
}

/// One client's figures, its fakes on a runtime and thread of their own, the client on this thread
/// alone (so the CPU figure is the client's).
fn measure_one(kind: SpeechKind, vendor: &str, args: &VendorBenchArgs) -> anyhow::Result<serde_json::Value> {
    let (case_tx, case_rx) = std::sync::mpsc::channel();
    let (kind_owned, vendor_owned) = (kind, vendor.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            match start_case(kind_owned, &vendor_owned).await {
                Ok((case, _kept)) => {
                    let _ = case_tx.send(Ok(case));
                    std::future::pending::<()>().await
                }
                Err(e) => {
                    let _ = case_tx.send(Err(e));
                }
            }
        });
    });
    let case = case_rx.recv().context("the fakes did not start")??;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        match kind {
            SpeechKind::Asr => bench_asr(asr_client(vendor, &case.params)?.as_ref(), args).await,
            SpeechKind::Tts => {
                let (client, waiting) = (tts_client(vendor, &case.params)?, tts_client(vendor, &case.waiting)?);
                bench_tts(client.as_ref(), waiting.as_ref(), args).await
            }
        }
        .with_context(|| format!("{vendor} {}", kind_name(kind)))
    })
}

fn print_table(report: &serde_json::Value, args: &VendorBenchArgs) {
    let ms = |v: &serde_json::Value, key: &str, q: &str| v[key][q].as_f64().unwrap_or_default();
    println!(
        "colloquy bench vendors: clients against local fakes on loopback ({} rounds, {} open streams, a process per client)",
        args.rounds, args.streams
    );
    println!(
        "ASR          first partial p50 / p95 ms   final p50 / p95 ms   CPU ms per streamed min   KiB per open stream"
    );
    for (vendor, v) in report["asr"].as_object().into_iter().flatten() {
        println!(
            "{vendor:<12} {:>8.2} / {:<8.2}           {:>7.2} / {:<7.2}     {:>10.1}                {:>8.1}",
            ms(v, "first_partial_ms", "p50"),
            ms(v, "first_partial_ms", "p95"),
            ms(v, "final_ms", "p50"),
            ms(v, "final_ms", "p95"),
            v["cpu_ms_per_streamed_minute"].as_f64().unwrap_or_default(),
            v["kib_per_open_stream"].as_f64().unwrap_or_default(),
        );
    }
    println!("TTS          first audio p50 / p95 ms     CPU ms per streamed min   KiB per open stream");
    for (vendor, v) in report["tts"].as_object().into_iter().flatten() {
        println!(
            "{vendor:<12} {:>8.2} / {:<8.2}           {:>10.1}                {:>8.1}",
            ms(v, "first_audio_ms", "p50"),
            ms(v, "first_audio_ms", "p95"),
            v["cpu_ms_per_streamed_minute"].as_f64().unwrap_or_default(),
            v["kib_per_open_stream"].as_f64().unwrap_or_default(),
        );
    }
}

fn asr_client(vendor: &str, params: &serde_json::Value) -> anyhow::Result<Arc<dyn AsrProvider>> {
    let choice = vendors::check(SpeechKind::Asr, vendor, params.as_object().cloned().unwrap_or_default())
        .with_context(|| format!("no {vendor} ASR vendor"))?
        .map_err(|e| anyhow::anyhow!("{vendor}: {e}"))?;
    vendors::asr(&choice).map_err(|e| anyhow::anyhow!(e))
}

fn tts_client(vendor: &str, params: &serde_json::Value) -> anyhow::Result<Arc<dyn TtsProvider>> {
    let choice = vendors::check(SpeechKind::Tts, vendor, params.as_object().cloned().unwrap_or_default())
        .with_context(|| format!("no {vendor} TTS vendor"))?
        .map_err(|e| anyhow::anyhow!("{vendor}: {e}"))?;
    vendors::tts(&choice).map_err(|e| anyhow::anyhow!(e))
}

/// 20 ms frames of a quiet tone.
fn frames(seconds: f64) -> Vec<Vec<f32>> {
    let count = (seconds * 50.0) as usize;
    (0..count).map(|i| (0..320).map(|n| (((i * 320 + n) as f32) * 0.05).sin() * 0.1).collect()).collect()
}

async fn bench_asr(asr: &dyn AsrProvider, args: &VendorBenchArgs) -> anyhow::Result<serde_json::Value> {
    let (mut partials, mut finals) = (Vec::new(), Vec::new());
    let second = frames(1.0);
    for round in 0..args.rounds {
        let (audio, receiver) = tokio::sync::mpsc::channel(64);
        let mut events =
            asr.transcribe(AsrRequest { turn: TurnId(round as u64), language: "en".into(), audio: receiver });
        // Half a second first: the fake answers an interim result for it.
        for frame in &second[..25] {
            audio.send(frame.clone()).await?;
        }
        let sent = Instant::now();
        match events.next().await {
            Some(Ok(AsrEvent::Partial { .. })) => partials.push(sent.elapsed()),
            other => anyhow::bail!("expected a partial, got {other:?}"),
        }
        for frame in &second[25..] {
            audio.send(frame.clone()).await?;
        }
        drop(audio);
        let ended = Instant::now();
        loop {
            match events.next().await {
                Some(Ok(AsrEvent::Final { .. })) => break finals.push(ended.elapsed()),
                Some(Ok(AsrEvent::Partial { .. })) => {}
                other => anyhow::bail!("expected the final transcript, got {other:?}"),
            }
        }
    }
    // A minute of audio through one stream.
    let minute = frames(60.0);
    let cpu = thread_cpu()?;
    let (audio, receiver) = tokio::sync::mpsc::channel(64);
    let mut events = asr.transcribe(AsrRequest { turn: TurnId(0), language: "en".into(), audio: receiver });
    let feed = async move {
        for frame in minute {
            audio.send(frame).await?;
        }
        anyhow::Ok(())
    };
    let drain = async {
        while let Some(event) = events.next().await {
            if let AsrEvent::Final { .. } = event? {
                break;
            }
        }
        anyhow::Ok(())
    };
    let (fed, drained) = tokio::join!(feed, drain);
    fed?;
    drained?;
    let cpu = thread_cpu()? - cpu;
    // Streams open at once, each with a second of audio sent.
    let before = super::rss(std::process::id())?;
    let mut open = Vec::new();
    for round in 0..args.streams {
        let (audio, receiver) = tokio::sync::mpsc::channel(64);
        let mut events =
            asr.transcribe(AsrRequest { turn: TurnId(round as u64), language: "en".into(), audio: receiver });
        for frame in &second[..25] {
            audio.send(frame.clone()).await?;
        }
        events.next().await.context("no partial")??;
        open.push((audio, events));
    }
    let after = super::rss(std::process::id())?;
    drop(open);
    Ok(json!({
        "first_partial_ms": percentiles(&mut partials),
        "final_ms": percentiles(&mut finals),
        "cpu_ms_per_streamed_minute": cpu.as_secs_f64() * 1000.0,
        "kib_per_open_stream": after.saturating_sub(before) as f64 / 1024.0 / args.streams as f64,
    }))
}

async fn bench_tts(
    tts: &dyn TtsProvider,
    waiting: &dyn TtsProvider,
    args: &VendorBenchArgs,
) -> anyhow::Result<serde_json::Value> {
    let clause = "This is a clause of about the length an agent says at once.";
    let request = |turn: usize, text: &str| TtsRequest {
        turn: TurnId(turn as u64),
        text: text.to_owned(),
        voice: String::new(),
        speed: 1.0,
    };
    let mut firsts = Vec::new();
    for round in 0..args.rounds {
        let started = Instant::now();
        let mut chunks = tts.synthesize(request(round, clause));
        chunks.next().await.context("no audio")??;
        firsts.push(started.elapsed());
        while let Some(chunk) = chunks.next().await {
            chunk?;
        }
    }
    // A minute of speech: the fake tone is 10 ms per character.
    let minute = "a".repeat(6_000);
    let cpu = thread_cpu()?;
    let mut samples = 0usize;
    let mut chunks = tts.synthesize(request(0, &minute));
    while let Some(chunk) = chunks.next().await {
        samples += chunk?.pcm.len();
    }
    let cpu = thread_cpu()? - cpu;
    let streamed_minutes = samples as f64 / 16_000.0 / 60.0;
    // Streams open at once, each connected with its text sent, waiting for the voice.
    let before = super::rss(std::process::id())?;
    let open: Vec<_> = (0..args.streams).map(|round| waiting.synthesize(request(round, clause))).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = super::rss(std::process::id())?;
    drop(open);
    Ok(json!({
        "first_audio_ms": percentiles(&mut firsts),
        "cpu_ms_per_streamed_minute": cpu.as_secs_f64() * 1000.0 / streamed_minutes.max(f64::EPSILON),
        "kib_per_open_stream": after.saturating_sub(before) as f64 / 1024.0 / args.streams as f64,
    }))
}

fn percentiles(times: &mut [Duration]) -> serde_json::Value {
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    json!({"p50": at(0.5), "p95": at(0.95), "max": at(1.0)})
}

/// CPU time of this thread, from `/proc/thread-self/schedstat` (nanoseconds on the CPU).
fn thread_cpu() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").context("reading schedstat")?;
    let ns: u64 = stat.split_whitespace().next().context("an empty schedstat")?.parse()?;
    Ok(Duration::from_nanos(ns))
}
