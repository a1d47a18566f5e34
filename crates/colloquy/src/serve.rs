//! `colloquy serve`: opens the records, recovers from a previous crash, serves the API, and on
//! SIGINT/SIGTERM stops every agent cleanly before exiting.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use colloquy_http::HttpConfig;
use colloquy_http::auth::{Credential, RateLimit};
use colloquy_http::rtc::RtcEdge;
use colloquy_http::webhooks::WebhookConfig;
use colloquy_model::AppId;
use colloquy_rtc::server::{ChannelServer, RtcConfig};
use colloquy_rtc::token::TokenSigner;
use colloquy_store::Store;
use colloquy_supervisor::{Supervisor, SupervisorConfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{self, LogFormat, Overrides};
use crate::{ServeArgs, credentials};

pub fn run(args: ServeArgs, log_format: Option<LogFormat>, started: Instant) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => config::read_file(path)?,
        None => config::ConfigFile::default(),
    };
    let overrides = Overrides {
        http: args.http,
        rtc_udp: args.rtc_udp,
        rtc_public_ip: args.rtc_public_ip,
        data_dir: args.data_dir,
        log_format,
    };
    let config = config::resolve(file, overrides)?;
    crate::init_stderr_logging(config.log_format);
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(config, started))
}

async fn serve(config: config::Config, started: Instant) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let db_path = config.data_dir.join("colloquy.db");
    let store = Store::open(&db_path).await.with_context(|| format!("opening the records at {}", db_path.display()))?;
    let supervisor = Supervisor::new(store.clone(), SupervisorConfig { max_agents: config.max_agents });
    let orphans = supervisor.recover().await.context("recovering the records of the last run")?;
    let events = supervisor.take_events().expect("the event stream is taken once, here");
    let webhooks = colloquy_http::webhooks::spawn(store.clone(), events, WebhookConfig::DEFAULT);
    let credentials = credentials::load_or_generate(&config.data_dir)?;
    let credentials_from = match credentials.source {
        credentials::Source::Environment => "the environment",
        credentials::Source::Generated => "the data dir",
    };
    let channel_server = ChannelServer::start(RtcConfig {
        udp: config.rtc_udp,
        public_ip: config.rtc_public_ip,
        max_participants_per_channel: config.max_participants_per_channel,
        max_channels: config.max_channels,
        connect_timeout: config.connect_timeout,
        inactivity_timeout: config.inactivity_timeout,
    })
    .await
    .with_context(|| format!("binding the channel server to UDP {}", config.rtc_udp))?;
    let signer = TokenSigner::new(credentials.secret.expose().as_bytes());

    let router = colloquy_http::router(
        supervisor.clone(),
        HttpConfig {
            credentials: vec![Credential { key: credentials.key, secret: credentials.secret, app: AppId::native() }],
            rate_limit: RateLimit { per_second: config.requests_per_second, burst: config.burst },
            rtc: RtcEdge::new(signer, Some(channel_server.clone())),
        },
    );
    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .with_context(|| format!("binding the HTTP API to {}", config.http))?;
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        rtc_udp = %channel_server.local_addr(),
        data_dir = %config.data_dir.display(),
        recovered_agents = orphans,
        credentials_from,
        ready_ms = started.elapsed().as_millis() as u64,
        "colloquy ready"
    );
    // The one line on stdout that scripts and tests wait for.
    let mut out = std::io::stdout().lock();
    writeln!(out, "colloquy listening on http://{address}")?;
    out.flush()?;
    drop(out);

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let shutdown_signal = async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
        }
    };
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let http = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown_signal.await;
        let _ = signalled_tx.send(());
    });
    let stop_agents = {
        let supervisor = supervisor.clone();
        async move {
            // Agents stop as soon as the signal comes, alongside the HTTP drain, so that a request
            // waiting on an agent cannot hold the shutdown up.
            if signalled_rx.await.is_ok() {
                supervisor.shutdown().await;
            }
        }
    };
    let (served, ()) = tokio::join!(http.into_future(), stop_agents);
    served.context("serving HTTP")?;
    supervisor.shutdown().await;
    channel_server.shutdown().await;
    // The event stream has ended; the webhook task delivers what is due within its grace period.
    let _ = webhooks.await;
    store.close().await;
    tracing::info!("colloquy stopped; every agent's final state is recorded");
    Ok(())
}
