//! `colloquy bench vendors`: the speech vendors' clients against local fakes of their protocols
//! (the test suite's, `providers/tests/fakes`) on loopback. The fakes answer at once, so what is
//! measured is the client's own cost:
//!
//! - added latency: Deepgram, from the audio frame that completes half a second to the interim
//!   result the fake sends for it, and from the end of the audio to the final transcript;
//!   ElevenLabs, from the request to the first audio (a new connection per clause, as agents do);
//! - CPU per streamed minute: the client's thread only (the fakes run on a thread of their own),
//!   streaming a minute of audio (Deepgram) or of speech (ElevenLabs) as fast as it goes;
//! - memory per open stream: the process's resident memory with `--streams` streams open at once
//!   (Deepgram's past its first partial, ElevenLabs' connected and waiting for audio), less
//!   before, per stream. It includes the fake's side of each connection.

#[path = "../../../providers/tests/fakes/mod.rs"]
mod fakes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use colloquy_model::SpeechKind;
use colloquy_providers::TurnId;
use colloquy_providers::asr::{AsrEvent, AsrProvider, AsrRequest};
use colloquy_providers::tts::{TtsProvider, TtsRequest};
use colloquy_providers::vendors;
use fakes::{deepgram, elevenlabs};
use futures_util::StreamExt;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct VendorBenchArgs {
    /// Utterances (Deepgram) and clauses (ElevenLabs) timed for the latencies.
    #[arg(long, default_value_t = 50)]
    pub rounds: usize,
    /// Streams open at once for the memory figure.
    #[arg(long, default_value_t = 100)]
    pub streams: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: VendorBenchArgs) -> anyhow::Result<()> {
    // The fakes on a runtime and thread of their own; the clients on this thread alone.
    let (addrs_tx, addrs_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            let dg = deepgram::start(deepgram::Mode::Normal, deepgram::counting()).await;
            let (xi, _) = elevenlabs::start(elevenlabs::Mode::Normal, elevenlabs::tone()).await;
            // Holds each stream open, its text sent, for the memory figure.
            let (slow, _) =
                elevenlabs::start(elevenlabs::Mode::SlowFirstAudio(Duration::from_secs(120)), elevenlabs::tone()).await;
            addrs_tx.send((dg.addr, xi.addr, slow.addr)).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let (dg, xi, slow) = addrs_rx.recv().context("the fakes did not start")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let asr = asr_client(&format!("ws://{dg}/v1/listen"))?;
    let tts = tts_client(&format!("ws://{xi}/v1"))?;
    let waiting_tts = tts_client(&format!("ws://{slow}/v1"))?;
    let report = runtime.block_on(async {
        let deepgram = bench_deepgram(asr.as_ref(), &args).await?;
        let elevenlabs = bench_elevenlabs(tts.as_ref(), waiting_tts.as_ref(), &args).await?;
        anyhow::Ok(
            json!({"deepgram": deepgram, "elevenlabs": elevenlabs, "rounds": args.rounds, "streams": args.streams}),
        )
    })?;
    if args.json {
        println!("{report}");
    } else {
        let d = &report["deepgram"];
        let e = &report["elevenlabs"];
        println!("colloquy bench vendors: clients against local fakes on loopback ({} rounds)", args.rounds);
        println!(
            "deepgram    first partial p50 {:.2} ms p95 {:.2} ms; final p50 {:.2} ms p95 {:.2} ms; CPU {:.0} ms per streamed minute; {:.0} KiB per open stream",
            d["first_partial_ms"]["p50"].as_f64().unwrap_or_default(),
            d["first_partial_ms"]["p95"].as_f64().unwrap_or_default(),
            d["final_ms"]["p50"].as_f64().unwrap_or_default(),
            d["final_ms"]["p95"].as_f64().unwrap_or_default(),
            d["cpu_ms_per_streamed_minute"].as_f64().unwrap_or_default(),
            d["kib_per_open_stream"].as_f64().unwrap_or_default(),
        );
        println!(
            "elevenlabs  first audio p50 {:.2} ms p95 {:.2} ms; CPU {:.0} ms per streamed minute; {:.0} KiB per open stream",
            e["first_audio_ms"]["p50"].as_f64().unwrap_or_default(),
            e["first_audio_ms"]["p95"].as_f64().unwrap_or_default(),
            e["cpu_ms_per_streamed_minute"].as_f64().unwrap_or_default(),
            e["kib_per_open_stream"].as_f64().unwrap_or_default(),
        );
    }
    Ok(())
}

fn asr_client(url: &str) -> anyhow::Result<Arc<dyn AsrProvider>> {
    let params = json!({"key": deepgram::KEY, "url": url});
    let choice = vendors::check(SpeechKind::Asr, "deepgram", params.as_object().cloned().unwrap_or_default())
        .context("no deepgram vendor")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    vendors::asr(&choice).map_err(|e| anyhow::anyhow!(e))
}

fn tts_client(url: &str) -> anyhow::Result<Arc<dyn TtsProvider>> {
    let params = json!({"key": elevenlabs::KEY, "voice_id": elevenlabs::VOICE, "base_url": url, "sample_rate": 16000});
    let choice = vendors::check(SpeechKind::Tts, "elevenlabs", params.as_object().cloned().unwrap_or_default())
        .context("no elevenlabs vendor")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    vendors::tts(&choice).map_err(|e| anyhow::anyhow!(e))
}

/// 20 ms frames of a quiet tone.
fn frames(seconds: f64) -> Vec<Vec<f32>> {
    let count = (seconds * 50.0) as usize;
    (0..count).map(|i| (0..320).map(|n| (((i * 320 + n) as f32) * 0.05).sin() * 0.1).collect()).collect()
}

async fn bench_deepgram(asr: &dyn AsrProvider, args: &VendorBenchArgs) -> anyhow::Result<serde_json::Value> {
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

async fn bench_elevenlabs(
    tts: &dyn TtsProvider,
    waiting: &dyn TtsProvider,
    args: &VendorBenchArgs,
) -> anyhow::Result<serde_json::Value> {
    let clause = "This is a clause of about the length an agent says at once.";
    let request = |turn: usize, text: &str| TtsRequest {
        turn: TurnId(turn as u64),
        text: text.to_owned(),
        voice: elevenlabs::VOICE.into(),
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
