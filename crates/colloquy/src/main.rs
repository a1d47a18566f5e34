//! `colloquy`: the server and its command-line tools.

mod bench;
mod call;
mod config;
mod credentials;
mod demo;
mod models;
mod serve;
mod tools;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

/// A self-hosted, real-time conversational AI engine.
#[derive(Debug, Parser)]
#[command(name = "colloquy", version, about)]
struct Cli {
    /// Log format on stderr (the level comes from RUST_LOG, default `info`).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: the HTTP API, the channel server, the agent supervisor and the records.
    Serve(ServeArgs),
    /// Join a channel as a headless WebRTC client: play a WAV, record what you hear, print messages.
    Call(call::CallArgs),
    /// The embedded model files: list them, or verify them against their sha256.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Benchmarks that print numbers.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// One spoken turn end to end on this machine: a server in process, an agent, a WebRTC call that
    /// plays your question and records the answer, and the latency of each stage.
    Demo(demo::DemoArgs),
    /// Transcribe a WAV file with the embedded Whisper; prints only the transcript.
    Asr(tools::AsrArgs),
    /// Speak a text with the embedded Piper voice into a WAV file.
    Tts(tools::TtsArgs),
    /// Ask the embedded LLM; streams the answer to stdout.
    Llm(tools::LlmArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address of the HTTP API [default: 127.0.0.1:7880].
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// UDP address of the WebRTC channel server [default: 127.0.0.1:7881].
    #[arg(long, value_name = "ADDR")]
    rtc_udp: Option<SocketAddr>,
    /// The IP address put in ICE host candidates [default: the --rtc-udp address].
    #[arg(long, value_name = "IP")]
    rtc_public_ip: Option<std::net::IpAddr>,
    /// Where records and generated credentials live [default: ~/.local/share/colloquy].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep the records in this PostgreSQL database (postgres://user:password@host:port/database),
    /// which several nodes may share [default: the SQLite file colloquy.db in the data dir].
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// A TOML configuration file; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Agents keep their lifecycle only: they join no channel, and no model is loaded (for testing
    /// the API, or a node that only keeps records).
    #[arg(long)]
    no_media: bool,
}

/// Logs on stderr, readable or JSON; the level comes from RUST_LOG (default `info`).
pub fn init_stderr_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,str0m=warn,dimpl=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, cli.log_format, started),
        Command::Models(command) => models::run(command),
        Command::Bench(command) => {
            init_stderr_logging(cli.log_format.unwrap_or_default());
            bench::run(command)
        }
        Command::Call(args) => {
            init_stderr_logging(cli.log_format.unwrap_or_default());
            call::run(args)
        }
        Command::Demo(args) => {
            init_stderr_logging(cli.log_format.unwrap_or_default());
            demo::run(args)
        }
        Command::Asr(args) => tools::asr(args),
        Command::Tts(args) => tools::tts(args),
        Command::Llm(args) => tools::llm(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("colloquy: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
