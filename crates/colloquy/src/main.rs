//! `colloquy`: the server and its command-line tools.

mod config;
mod credentials;
mod serve;

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
    /// Run the server: the HTTP API, the agent supervisor and the records.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address of the HTTP API [default: 127.0.0.1:7880].
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// UDP address of the WebRTC channel server [default: 127.0.0.1:7881].
    #[arg(long, value_name = "ADDR")]
    rtc_udp: Option<SocketAddr>,
    /// Where records and generated credentials live [default: ~/.local/share/colloquy].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML configuration file; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, cli.log_format, started),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("colloquy: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
