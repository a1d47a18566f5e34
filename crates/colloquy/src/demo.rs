//! `colloquy demo --wav question.wav --out reply.wav`: a whole conversation turn on this machine, as a
//! newcomer's first "it works". It starts a server in this process on free loopback ports, starts
//! an agent with the embedded models through the real HTTP API, joins the channel with the real
//! WebRTC client over UDP, plays the question, records the reply, and prints both sides' words and
//! the turn's latency breakdown. The last stderr line is `demo summary: {json}` for scripts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::call::{self, CallArgs};
use crate::config;
use crate::serve;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The question: a WAV file of speech (any rate).
    #[arg(long, value_name = "FILE.wav")]
    pub wav: PathBuf,
    /// Where to write what the agent said (48 kHz mono WAV).
    #[arg(long, value_name = "FILE.wav")]
    pub out: PathBuf,
    /// A system prompt for the agent.
    #[arg(long)]
    pub system: Option<String>,
    /// The longest the call may last after the question, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub max_wait: f64,
}

/// What the demo saw, for scripts and tests.
#[derive(Debug, Default, serde::Serialize)]
struct DemoSummary {
    user_text: String,
    agent_text: String,
    /// The agent's turn status: 1 ended, 2 interrupted.
    agent_turn_status: Option<u64>,
    /// From the end of the question's sound to the first sound of the reply, on the client.
    voice_to_voice_ms: Option<u64>,
    turns: Value,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = config::resolve(
        config::ConfigFile::default(),
        config::Overrides {
            http: Some("127.0.0.1:0".parse()?),
            rtc_udp: Some("127.0.0.1:0".parse()?),
            rtc_public_ip: None,
            data_dir: Some(dir.path().to_owned()),
            database: None,
            cluster: None,
            log_format: None,
        },
    )?;
    colloquy_agent::EmbeddedModels::check_files()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(demo(args, config))
}

async fn demo(args: DemoArgs, config: config::Config) -> anyhow::Result<()> {
    let question_seconds = question_seconds(&args.wav).with_context(|| format!("reading {}", args.wav.display()))?;
    let server = serve::start(&config, true).await?;
    let base = format!("http://{}", server.http);
    let (key, secret) = (server.credentials.key.clone(), server.credentials.secret.expose().to_owned());
    let http = reqwest::Client::new();
    eprintln!("demo: server on {base} (WebRTC on UDP {}); starting an agent…", server.rtc_udp);

    // Greedy decoding, so the same question gets the same answer every time.
    let mut agent =
        json!({"name": "demo", "channel": "demo", "idle_timeout": 0, "llm": {"params": {"temperature": 0.0}}});
    if let Some(system) = &args.system {
        agent["llm"]["system_messages"] = json!([{"role": "system", "content": system}]);
    }
    let started = std::time::Instant::now();
    let reply = http.post(format!("{base}/v1/agents")).basic_auth(&key, Some(&secret)).json(&agent).send().await?;
    let status = reply.status();
    let body: Value = reply.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("starting the agent failed ({status}): {body}");
    }
    let agent_id = body["agent_id"].as_str().context("no agent_id")?.to_owned();
    eprintln!("demo: agent {agent_id} is in channel \"demo\" ({} ms); calling…", started.elapsed().as_millis());

    let token: Value = http
        .post(format!("{base}/v1/tokens"))
        .basic_auth(&key, Some(&secret))
        .json(&json!({"channel": "demo", "uid": "you"}))
        .send()
        .await?
        .json()
        .await?;
    let call_args = CallArgs {
        answer_tool: Vec::new(),
        server: base.clone(),
        token: token["token"].as_str().map(str::to_owned),
        channel: Some("demo".into()),
        uid: None,
        play: Some(args.wav.clone()),
        record: Some(args.out.clone()),
        seconds: Some(question_seconds + args.max_wait),
        send: Vec::new(),
        extra_downlinks: 0,
    };
    let (messages_tx, mut messages) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop) = tokio::sync::oneshot::channel();
    let call = tokio::spawn(call::call(call_args, Some(messages_tx), Some(stop)));

    // Follow the conversation; end the call shortly after the agent's answer ends.
    let mut summary = DemoSummary::default();
    let mut stop_tx = Some(stop_tx);
    while let Some(message) = messages.recv().await {
        match message["object"].as_str() {
            Some("user.transcription") if message["final"] == true => {
                summary.user_text = message["text"].as_str().unwrap_or_default().to_owned();
                println!("you:   {}", summary.user_text);
            }
            Some("assistant.transcription") if message["turn_status"] != 0 => {
                summary.agent_text = message["text"].as_str().unwrap_or_default().to_owned();
                summary.agent_turn_status = message["turn_status"].as_u64();
                println!("agent: {}", summary.agent_text);
                if let Some(stop) = stop_tx.take() {
                    tokio::spawn(async move {
                        // Let the last frames arrive before hanging up.
                        tokio::time::sleep(Duration::from_millis(600)).await;
                        let _ = stop.send(());
                    });
                }
            }
            Some("message.error") => eprintln!("demo: the agent reported an error: {message}"),
            _ => {}
        }
    }
    let call_summary = call.await.context("the call task")??;
    if let (Some(spoken), Some(span)) = (
        call_summary.last_audio_sent_unix_us,
        call_summary.heard_spans_unix_us.iter().find(|(start, _)| Some(*start) > call_summary.last_audio_sent_unix_us),
    ) {
        summary.voice_to_voice_ms = Some(span.0.saturating_sub(spoken) / 1000);
    }

    let turns: Value = http
        .get(format!("{base}/v1/agents/{agent_id}/turns"))
        .basic_auth(&key, Some(&secret))
        .send()
        .await?
        .json()
        .await?;
    print_turns(&turns, summary.voice_to_voice_ms);
    summary.turns = turns;
    let _ = http.post(format!("{base}/v1/agents/{agent_id}/leave")).basic_auth(&key, Some(&secret)).send().await;
    server.stop().await?;
    eprintln!("demo: the reply is in {}", args.out.display());
    eprintln!("demo summary: {}", serde_json::to_string(&summary)?);
    if summary.user_text.is_empty() || summary.agent_text.is_empty() {
        bail!("the turn did not complete: no transcript from one side");
    }
    Ok(())
}

fn question_seconds(path: &std::path::Path) -> anyhow::Result<f64> {
    let (samples, rate) = colloquy_rtc::audio::read_wav(path)?;
    Ok(samples.len() as f64 / f64::from(rate))
}

fn print_turns(turns: &Value, voice_to_voice_ms: Option<u64>) {
    let ms = |v: &Value| v.as_u64().map_or_else(|| "–".to_owned(), |ms| format!("{ms} ms"));
    for turn in turns["turns"].as_array().into_iter().flatten() {
        let m = &turn["metrics"];
        println!(
            "turn {} ({}, {}): end of speech → turn end {}, → final transcript {}; LLM first token {}, \
             first sentence {}; TTS first audio {}; engine {}; end of speech → first audio sent {}",
            turn["turn_id"],
            turn["start"].as_str().unwrap_or("?"),
            turn["end"].as_str().unwrap_or("?"),
            ms(&m["eou_delay_ms"]),
            ms(&m["asr_ttlw_ms"]),
            ms(&m["llm_ttft_ms"]),
            ms(&m["llm_ttfs_ms"]),
            ms(&m["tts_ttfb_ms"]),
            ms(&m["engine_overhead_ms"]),
            ms(&m["e2e_ms"]),
        );
    }
    if let Some(v2v) = voice_to_voice_ms {
        println!("voice to voice, on the client's recording: {v2v} ms");
    }
}
