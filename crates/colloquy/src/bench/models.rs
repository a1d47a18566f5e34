//! `colloquy bench models`: load time, resident memory and speed of each embedded model, on this
//! machine, one request at a time.

use std::time::{Duration, Instant};

use super::rss;

/// Load time, resident memory and speed of each embedded model.
pub fn run() -> anyhow::Result<()> {
    use colloquy_providers::embedded::{OnnxRuntime, SileroVad};
    use colloquy_providers::models::{ONNXRUNTIME_LIBRARY, SILERO_VAD, models_dir};
    use colloquy_providers::vad::{VAD_FRAME, VadModel};

    let dir = models_dir();
    let pid = std::process::id();
    let before = rss(pid)?;
    let started = Instant::now();
    let runtime = OnnxRuntime::load(&dir.join(ONNXRUNTIME_LIBRARY))?;
    let vad = SileroVad::load(&runtime, &dir.join(SILERO_VAD))?;
    let load = started.elapsed();
    let mut session = vad.session();
    // Ten seconds of a speech-like signal: a tone gliding through the voice range, with noise.
    let mut seed = 1u32;
    let samples: Vec<f32> = (0..16_000 * 10)
        .map(|i| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let t = i as f32 / 16_000.0;
            0.3 * (t * (150.0 + 100.0 * (t * 3.0).sin()) * std::f32::consts::TAU).sin()
                + ((seed >> 16) as f32 / 65536.0 - 0.5) * 0.02
        })
        .collect();
    let mut times = Vec::new();
    for frame in samples.chunks_exact(VAD_FRAME) {
        let frame: &[f32; VAD_FRAME] = frame.try_into()?;
        let started = Instant::now();
        session.probability(frame)?;
        times.push(started.elapsed());
    }
    times.sort();
    let after = rss(pid)?;
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)].as_secs_f64() * 1e6;
    println!("colloquy bench models (one thread, {} frames)", times.len());
    println!(
        "Silero VAD v6 (ONNX Runtime 1.31.1): load {:.0} ms (runtime and model), resident +{:.1} MB; \
         per 32 ms frame: median {:.0} µs, p99 {:.0} µs ({:.2}% of one core per stream)",
        load.as_secs_f64() * 1e3,
        after.saturating_sub(before) as f64 / 1e6,
        at(0.5),
        at(0.99),
        at(0.5) / 32_000.0 * 100.0
    );

    // Piper: load, then five sentences of a spoken answer, one request each, as the engine sends them.
    use colloquy_providers::TurnId;
    use colloquy_providers::embedded::PiperTts;
    use colloquy_providers::models::PIPER_JOE;
    use colloquy_providers::tts::{TtsProvider, TtsRequest};
    use futures_util::StreamExt;
    let before = rss(pid)?;
    let started = Instant::now();
    let tts = PiperTts::load(&runtime, &dir.join(PIPER_JOE))?;
    let load = started.elapsed();
    let sentences = [
        "Sure, I can help with that.",
        "The store opens at nine in the morning.",
        "It closes at six in the evening, except on Sundays.",
        "Would you like me to book a table for you?",
        "Great, your table for two is booked for seven tonight.",
    ];
    let runtime_tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (mut first_audio, mut total, mut audio_seconds) = (Vec::new(), Duration::ZERO, 0.0);
    for (i, text) in sentences.iter().enumerate() {
        let request = TtsRequest {
            turn: TurnId(i as u64),
            text: (*text).to_owned(),
            voice: "en_US-joe-medium".into(),
            speed: 1.0,
        };
        let started = Instant::now();
        let chunks: Vec<_> = runtime_tokio.block_on(tts.synthesize(request).collect::<Vec<_>>());
        let took = started.elapsed();
        first_audio.push(took);
        total += took;
        for chunk in chunks {
            let chunk = chunk?;
            audio_seconds += chunk.pcm.len() as f64 / f64::from(chunk.sample_rate);
        }
    }
    first_audio.sort();
    println!(
        "Piper en_US-joe-medium (ONNX Runtime, espeak-ng phonemes): load {:.0} ms, resident +{:.1} MB; \
         first audio of a sentence: median {:.0} ms, max {:.0} ms; real-time factor {:.3} ({:.1} s of speech in {:.2} s)",
        load.as_secs_f64() * 1e3,
        rss(pid)?.saturating_sub(before) as f64 / 1e6,
        first_audio[first_audio.len() / 2].as_secs_f64() * 1e3,
        first_audio[first_audio.len() - 1].as_secs_f64() * 1e3,
        total.as_secs_f64() / audio_seconds,
        audio_seconds,
        total.as_secs_f64()
    );
    drop(tts);
    whisper(&runtime_tokio, pid)?;
    llm(&runtime_tokio, pid)?;
    Ok(())
}

/// The LibriVox clips of pocketsphinx-testdata, with their length in seconds.
fn librivox() -> anyhow::Result<Vec<(std::path::PathBuf, Vec<f32>)>> {
    let dir = std::path::Path::new("/usr/share/pocketsphinx/test/data/librivox");
    let mut clips = Vec::new();
    for entry in std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e} (apt-get install pocketsphinx-testdata)", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wav") {
            let (samples, rate) = colloquy_rtc::audio::read_wav(&path)?;
            clips.push((path, colloquy_rtc::audio::resample(&samples, rate, 16_000)));
        }
    }
    clips.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(clips)
}

/// Whisper tiny.en: load, real-time factor over the LibriVox clips, and the time from the end of a
/// ~3 s utterance, fed in real time through the streaming path, to its final transcript.
fn whisper(runtime: &tokio::runtime::Runtime, pid: u32) -> anyhow::Result<()> {
    use colloquy_model::LocalAsrModel;
    use colloquy_providers::TurnId;
    use colloquy_providers::asr::{AsrEvent, AsrProvider, AsrRequest};
    use colloquy_providers::embedded::WhisperAsr;
    use colloquy_providers::models::models_dir;
    use futures_util::StreamExt;

    let before = rss(pid)?;
    let started = Instant::now();
    let asr = WhisperAsr::load(&models_dir(), LocalAsrModel::WhisperTinyEn)?;
    let load = started.elapsed();
    let clips = librivox()?;
    let (mut audio, mut took) = (0.0, Duration::ZERO);
    for (_, samples) in &clips {
        let started = Instant::now();
        asr.transcribe_blocking(samples, "en")?;
        took += started.elapsed();
        audio += samples.len() as f64 / 16_000.0;
    }
    // The shortest clip near 3 s, streamed in 20 ms pieces at real time.
    let (_, utterance) = clips
        .iter()
        .min_by_key(|(_, s)| (s.len() as i64 - 48_000).abs())
        .ok_or_else(|| anyhow::anyhow!("no LibriVox clip"))?;
    let mut finals = Vec::new();
    for round in 0..3u64 {
        let (audio_tx, audio_rx) = tokio::sync::mpsc::channel(1000);
        let mut stream = asr.transcribe(AsrRequest { turn: TurnId(round), language: "en".into(), audio: audio_rx });
        let end = runtime.block_on(async {
            let feed = async {
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                for piece in utterance.chunks(320) {
                    tick.tick().await;
                    let _ = audio_tx.send(piece.to_vec()).await;
                }
                drop(audio_tx);
                Instant::now()
            };
            let read = async {
                let mut partials = 0;
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(AsrEvent::Partial { .. }) => partials += 1,
                        Ok(AsrEvent::Final { .. }) => return Ok::<_, anyhow::Error>((Instant::now(), partials)),
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(anyhow::anyhow!("no final transcript"))
            };
            let (ended, read) = tokio::join!(feed, read);
            read.map(|(at, partials)| (at.saturating_duration_since(ended), partials))
        })?;
        finals.push(end);
    }
    finals.sort();
    println!(
        "Whisper tiny.en (candle, CTranslate2 weights): load {:.0} ms, resident +{:.1} MB; real-time factor {:.3} \
         ({:.1} s of LibriVox in {:.2} s); end of a {:.1} s utterance to its final transcript (streamed in real time, \
         {} partials): median {:.0} ms, max {:.0} ms",
        load.as_secs_f64() * 1e3,
        rss(pid)?.saturating_sub(before) as f64 / 1e6,
        took.as_secs_f64() / audio,
        audio,
        took.as_secs_f64(),
        utterance.len() as f64 / 16_000.0,
        finals[1].1,
        finals[1].0.as_secs_f64() * 1e3,
        finals[2].0.as_secs_f64() * 1e3,
    );
    Ok(())
}

/// SmolLM2-135M: load, time to first token of a voice-sized prompt, and tokens per second.
fn llm(runtime: &tokio::runtime::Runtime, pid: u32) -> anyhow::Result<()> {
    use colloquy_model::{LlmParams, PromptRole};
    use colloquy_providers::TurnId;
    use colloquy_providers::embedded::LocalLlm;
    use colloquy_providers::llm::{ChatMessage, LlmEvent, LlmProvider, LlmRequest};
    use futures_util::StreamExt;

    let before = rss(pid)?;
    let started = Instant::now();
    let llm = LocalLlm::load(&LocalLlm::resolve(colloquy_model::LlmProvider::DEFAULT_LOCAL_MODEL))?;
    let load = started.elapsed();
    let questions = [
        "What is the capital of France?",
        "Can you recommend a good book for a long flight?",
        "How do I make a cup of green tea?",
        "What should I pack for a weekend hike?",
        "Why is the sky blue?",
    ];
    let system = colloquy_model::Llm::DEFAULT_SYSTEM_PROMPT;
    let (mut ttft, mut tokens, mut generating) = (Vec::new(), 0u32, Duration::ZERO);
    for (i, question) in questions.iter().enumerate() {
        let request = LlmRequest {
            turn: TurnId(i as u64),
            messages: vec![
                ChatMessage { role: PromptRole::System, content: system.to_owned() },
                ChatMessage { role: PromptRole::User, content: (*question).to_owned() },
            ],
            params: LlmParams { temperature: 0.0, top_p: 1.0, max_tokens: 64 },
            tools: colloquy_providers::llm::ToolUse::none(),
        };
        let started = Instant::now();
        let (first, done, completion) = runtime.block_on(async {
            let mut stream = llm.chat(request);
            let (mut first, mut completion) = (None, 0);
            while let Some(event) = stream.next().await {
                match event? {
                    LlmEvent::Delta { .. } => {
                        first.get_or_insert_with(|| started.elapsed());
                    }
                    LlmEvent::Usage { completion_tokens, .. } => completion = completion_tokens,
                    LlmEvent::ToolCall { .. } => {}
                    LlmEvent::Done { .. } => break,
                }
            }
            Ok::<_, anyhow::Error>((first.unwrap_or_default(), started.elapsed(), completion))
        })?;
        ttft.push(first);
        tokens += completion.saturating_sub(1);
        generating += done.saturating_sub(first);
    }
    let cold = ttft[0];
    ttft.sort();
    println!(
        "SmolLM2-135M-Instruct Q4_1 (candle, GGUF): load {:.0} ms, resident +{:.1} MB; time to first token \
         (system prompt + a question): first request {:.0} ms, median {:.0} ms over {}; {:.0} tokens/s while generating",
        load.as_secs_f64() * 1e3,
        rss(pid)?.saturating_sub(before) as f64 / 1e6,
        cold.as_secs_f64() * 1e3,
        ttft[ttft.len() / 2].as_secs_f64() * 1e3,
        ttft.len(),
        f64::from(tokens) / generating.as_secs_f64().max(1e-9),
    );
    Ok(())
}
