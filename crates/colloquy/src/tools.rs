//! `colloquy asr`, `colloquy tts` and `colloquy llm`: the embedded models (or, with `--vendor`, a
//! cloud speech vendor from the registry) from the command line, on the same code paths as live
//! agents, for checking a setup and for scripts. Each prints only its
//! result on stdout; anything else goes to stderr.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use colloquy_model::{LlmParams, LocalAsrModel, PromptRole, SpeechKind, VendorChoice};
use colloquy_providers::TurnId;
use colloquy_providers::asr::{AsrEvent, AsrProvider, AsrRequest};
use colloquy_providers::embedded::{LocalLlm, OnnxRuntime, PiperTts, WhisperAsr};
use colloquy_providers::llm::{ChatMessage, LlmEvent, LlmProvider, LlmRequest, ToolUse};
use colloquy_providers::models::{ONNXRUNTIME_LIBRARY, PIPER_JOE, models_dir};
use colloquy_providers::tts::{TtsProvider, TtsRequest};
use colloquy_providers::vendors;
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
    #[command(flatten)]
    pub vendor: VendorArgs,
}

/// A cloud speech vendor instead of the embedded model.
#[derive(Debug, clap::Args)]
pub struct VendorArgs {
    /// A speech vendor from the registry (`colloquy asr --vendor x` lists them).
    #[arg(long)]
    pub vendor: Option<String>,
    /// One of the vendor's parameters, in its own name: `key=…`, `model=nova-3`,
    /// `keyterm=["a","b"]` (a value that reads as JSON is taken as JSON).
    #[arg(long = "param", value_name = "NAME=VALUE", requires = "vendor")]
    pub params: Vec<String>,
    /// The vendor's endpoint, for tests and self-hosted gateways (its `url` or `base_url`).
    #[arg(long, requires = "vendor")]
    pub url: Option<String>,
}

impl VendorArgs {
    /// The registry's checked choice of `kind`, if a vendor was named.
    fn choice(&self, kind: SpeechKind) -> anyhow::Result<Option<VendorChoice>> {
        let Some(vendor) = &self.vendor else { return Ok(None) };
        let mut params = serde_json::Map::new();
        for param in &self.params {
            let (name, value) =
                param.split_once('=').ok_or_else(|| anyhow::anyhow!("--param {param:?} must be NAME=VALUE"))?;
            let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
            params.insert(name.to_owned(), value);
        }
        if let Some(url) = &self.url {
            params.insert(vendors::url_param(kind, vendor).unwrap_or("url").to_owned(), url.clone().into());
        }
        match vendors::check(kind, vendor, params) {
            None => {
                anyhow::bail!("no {} vendor {vendor:?}; there are: {}", kind.as_str(), vendors::names(kind).join(", "))
            }
            Some(Err(error)) => anyhow::bail!("--param {}: {}", error.field, error.message),
            Some(Ok(choice)) => Ok(Some(choice)),
        }
    }
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
    #[command(flatten)]
    pub vendor: VendorArgs,
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
    if let Some(choice) = args.vendor.choice(SpeechKind::Asr)? {
        let asr = vendors::asr(&choice).map_err(|e| anyhow::anyhow!(e))?;
        let text = tokio_runtime()?.block_on(recognise(asr.as_ref(), &samples, &args.language))?;
        println!("{text}");
        return Ok(());
    }
    let asr = WhisperAsr::load(&models_dir(), args.model)?;
    let text = asr.transcribe_blocking(&samples, &args.language)?;
    println!("{text}");
    Ok(())
}

/// `samples` (16 kHz) through a streaming recogniser, 100 ms at a time; partials go to stderr.
async fn recognise(asr: &dyn AsrProvider, samples: &[f32], language: &str) -> anyhow::Result<String> {
    let (audio, receiver) = tokio::sync::mpsc::channel(samples.len() / 1600 + 1);
    for chunk in samples.chunks(1600) {
        audio.try_send(chunk.to_vec()).expect("the channel holds every chunk");
    }
    drop(audio);
    let mut events = asr.transcribe(AsrRequest { turn: TurnId(1), language: language.to_owned(), audio: receiver });
    while let Some(event) = events.next().await {
        match event? {
            AsrEvent::Partial { text, .. } => eprintln!("… {text}"),
            AsrEvent::Final { text, .. } => return Ok(text),
        }
    }
    anyhow::bail!("the recogniser ended without a final transcript")
}

pub fn tts(args: TtsArgs) -> anyhow::Result<()> {
    let (pcm, rate) = match args.vendor.choice(SpeechKind::Tts)? {
        Some(choice) => {
            let tts = vendors::tts(&choice).map_err(|e| anyhow::anyhow!(e))?;
            let voice = vendors::voice(&choice).unwrap_or_default();
            tokio_runtime()?.block_on(synthesize(tts.as_ref(), &args.text, &voice, args.speed))?
        }
        None => tokio_runtime()?.block_on(speak(&args.text, args.speed))?,
    };
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
    synthesize(&tts, text, colloquy_model::Tts::DEFAULT_LOCAL_VOICE, speed).await
}

/// `text` through a synthesiser: 16-bit mono PCM and its rate.
async fn synthesize(tts: &dyn TtsProvider, text: &str, voice: &str, speed: f32) -> anyhow::Result<(Vec<i16>, u32)> {
    let request = TtsRequest { turn: TurnId(1), text: text.to_owned(), voice: voice.to_owned(), speed };
    let (mut pcm, mut rate) = (Vec::new(), 16_000);
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
    let request = LlmRequest { turn: TurnId(1), messages, params, tools: ToolUse::none() };
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
                // No tools are offered, so none is called.
                LlmEvent::ToolCall { .. } => {}
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
