//! `colloquy asr`, `colloquy tts` and `colloquy llm`: the embedded models from the command line, on
//! the same code paths as live agents, for checking a setup and for scripts. Each prints only its
//! result on stdout; anything else goes to stderr.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use colloquy_model::{LlmParams, LocalAsrModel, PromptRole};
use colloquy_providers::TurnId;
use colloquy_providers::embedded::{LocalLlm, OnnxRuntime, PiperTts, WhisperAsr};
use colloquy_providers::llm::{ChatMessage, LlmEvent, LlmProvider, LlmRequest};
use colloquy_providers::models::{ONNXRUNTIME_LIBRARY, PIPER_JOE, models_dir};
use colloquy_providers::tts::{TtsProvider, TtsRequest};
use futures_util::StreamExt;

#[derive(Debug, clap::Args)]
pub struct AsrArgs {
    /// A WAV file (any rate; stereo is mixed down).
    pub file: PathBuf,
    /// The Whisper model.
    #[arg(long, default_value = "whisper-tiny.en", value_parser = parse_asr_model)]
    pub model: LocalAsrModel,
    /// The language spoken (multilingual models only).
    #[arg(long, default_value = "en")]
    pub language: String,
}

fn parse_asr_model(name: &str) -> Result<LocalAsrModel, String> {
    LocalAsrModel::ALL
        .into_iter()
        .find(|m| m.as_str() == name)
        .ok_or_else(|| format!("one of {}", LocalAsrModel::ALL.map(|m| m.as_str()).join(", ")))
}

#[derive(Debug, clap::Args)]
pub struct TtsArgs {
    /// What to say.
    pub text: String,
    /// The WAV file to write (16-bit mono, at the voice's rate).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Speaking rate; 1.0 is normal.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f32,
}

#[derive(Debug, clap::Args)]
pub struct LlmArgs {
    /// The user's message.
    pub prompt: String,
    /// A system prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// A GGUF file, or the name of one in the model directory.
    #[arg(long, default_value = colloquy_model::LlmProvider::DEFAULT_LOCAL_MODEL)]
    pub model: String,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
}

pub fn asr(args: AsrArgs) -> anyhow::Result<()> {
    let (samples, rate) =
        colloquy_rtc::audio::read_wav(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let samples = colloquy_rtc::audio::resample(&samples, rate, 16_000);
    let asr = WhisperAsr::load(&models_dir(), args.model)?;
    let text = asr.transcribe_blocking(&samples, &args.language)?;
    println!("{text}");
    Ok(())
}

pub fn tts(args: TtsArgs) -> anyhow::Result<()> {
    let (pcm, rate) = tokio_runtime()?.block_on(speak(&args.text, args.speed))?;
    colloquy_rtc::audio::write_wav(&args.output, &pcm, rate)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!("{}: {:.2} s at {rate} Hz", args.output.display(), pcm.len() as f64 / f64::from(rate));
    Ok(())
}

/// `text` spoken by the embedded Piper voice: 16-bit mono PCM and its rate.
pub async fn speak(text: &str, speed: f32) -> anyhow::Result<(Vec<i16>, u32)> {
    let dir = models_dir();
    let runtime = OnnxRuntime::load(&dir.join(ONNXRUNTIME_LIBRARY))?;
    let tts = PiperTts::load(&runtime, &dir.join(PIPER_JOE))?;
    let request = TtsRequest {
        turn: TurnId(1),
        text: text.to_owned(),
        voice: colloquy_model::Tts::DEFAULT_LOCAL_VOICE.into(),
        speed,
    };
    let (mut pcm, mut rate) = (Vec::new(), tts.sample_rate());
    let mut chunks = tts.synthesize(request);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        rate = chunk.sample_rate;
        pcm.extend(chunk.pcm);
    }
    Ok((pcm, rate))
}

pub fn llm(args: LlmArgs) -> anyhow::Result<()> {
    let llm = LocalLlm::load(&LocalLlm::resolve(&args.model))?;
    let mut messages = Vec::new();
    if let Some(system) = args.system {
        messages.push(ChatMessage { role: PromptRole::System, content: system });
    }
    messages.push(ChatMessage { role: PromptRole::User, content: args.prompt });
    let params = LlmParams { temperature: args.temperature, top_p: 1.0, max_tokens: args.max_tokens };
    let request = LlmRequest { turn: TurnId(1), messages, params };
    tokio_runtime()?.block_on(async {
        let mut stream = llm.chat(request);
        let mut out = std::io::stdout().lock();
        while let Some(event) = stream.next().await {
            match event? {
                LlmEvent::Delta { text, .. } => {
                    out.write_all(text.as_bytes())?;
                    out.flush()?;
                }
                LlmEvent::Usage { prompt_tokens, completion_tokens, .. } => {
                    eprintln!("\n[{prompt_tokens} prompt tokens, {completion_tokens} completion tokens]");
                }
                LlmEvent::Done { .. } => break,
            }
        }
        writeln!(out)?;
        Ok(())
    })
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}
