//! `colloquy serve`: opens the records, recovers from a previous crash, serves the API, and on
//! SIGINT/SIGTERM stops every agent cleanly before exiting.

use std::io::Write;
use std::time::Instant;

use std::sync::Arc;

use anyhow::Context;
use colloquy_agent::AgentRuntime;
use colloquy_http::HttpConfig;
use colloquy_http::auth::{Credential, RateLimit};
use colloquy_http::rtc::RtcEdge;
use colloquy_http::webhooks::WebhookConfig;
use colloquy_model::AppId;
use colloquy_rtc::server::ChannelServer;
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
        database: args.database,
        log_format,
    };
    let config = config::resolve(file, overrides)?;
    crate::init_stderr_logging(config.log_format);
    if !args.no_media {
        // A missing model is a start-up error naming the fix, not a surprise at the first agent.
        colloquy_agent::EmbeddedModels::check_files()?;
        config::check_local_models(&config.apps, &crate::models::ModelsDir)?;
    }
    let media = !args.no_media;
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(config, media, started))
}

/// A server running in this process: the records, the supervisor, the channel server and the HTTP
/// API. `colloquy serve` runs one until a signal; `colloquy demo` runs one for a single call.
pub struct RunningServer {
    pub http: std::net::SocketAddr,
    pub rtc_udp: std::net::SocketAddr,
    pub credentials: credentials::ApiCredentials,
    supervisor: Supervisor,
    channel_server: ChannelServer,
    store: Store,
    webhooks: tokio::task::JoinHandle<()>,
    /// Tells the HTTP server to drain.
    stop_http: tokio::sync::oneshot::Sender<()>,
    http_task: tokio::task::JoinHandle<std::io::Result<colloquy_http::listener::Drained>>,
    /// The exclusive lock on the data dir, held until the server is dropped.
    _data_dir_lock: std::fs::File,
}

/// Takes the exclusive lock on `data_dir/colloquy.lock`, or says who holds it: two servers on one
/// data dir would each take the other's running agents for crash victims.
fn lock_data_dir(data_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("colloquy.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            write!(file, "{}", std::process::id())?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "another colloquy server (pid {}) is using the data dir {}; stop it, or give this one its own \
                 --data-dir",
                holder.trim(),
                data_dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Opens the records, recovers from the last run, starts the channel server, the supervisor (with
/// the embedded models loading in the background when `media`) and the HTTP API.
pub async fn start(config: &config::Config, media: bool) -> anyhow::Result<RunningServer> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let data_dir_lock = lock_data_dir(&config.data_dir)?;
    let store = match &config.database {
        config::Database::SqliteInDataDir => {
            let db_path = config.data_dir.join("colloquy.db");
            Store::open(&db_path).await.with_context(|| format!("opening the records at {}", db_path.display()))?
        }
        config::Database::Postgres(url) => {
            Store::open_postgres(url).await.context("connecting to the records' PostgreSQL database (--database)")?
        }
    };
    let credentials = credentials::load_or_generate(&config.data_dir)?;
    let credentials_from = match credentials.source {
        credentials::Source::Environment => "the environment",
        credentials::Source::Generated => "the data dir",
    };
    let channel_server = ChannelServer::start(config.rtc.clone())
        .await
        .with_context(|| format!("binding the channel server to UDP {}", config.rtc.udp))?;
    let signer = TokenSigner::new(credentials.secret.expose().as_bytes());
    let supervisor_config = SupervisorConfig { max_agents: config.max_agents };
    let supervisor = if media {
        let models = AgentRuntime::load_models_in_background();
        let runtime = AgentRuntime::new(channel_server.clone(), models, store.clone());
        Supervisor::with_media(store.clone(), supervisor_config, Arc::new(runtime))
    } else {
        Supervisor::new(store.clone(), supervisor_config)
    };
    let orphans = supervisor.recover().await.context("recovering the records of the last run")?;
    let dialects: Arc<dyn colloquy_http::dialects::Dialects> = Arc::new(colloquy_dialects::VendorDialects::new());
    let webhooks = colloquy_http::webhooks::spawn(&supervisor, WebhookConfig::DEFAULT, dialects.clone());

    let playground = config.playground.enabled(credentials.source == credentials::Source::Generated);
    let router = colloquy_http::router(
        supervisor.clone(),
        HttpConfig {
            credentials: vec![Credential {
                key: credentials.key.clone(),
                secret: credentials.secret.clone(),
                app: AppId::native(),
            }],
            apps: colloquy_http::apps::Apps::new(config.apps.clone()),
            rate_limit: RateLimit { per_second: config.requests_per_second, burst: config.burst },
            brake: config.brake,
            rtc: RtcEdge::new(signer, Some(channel_server.clone())),
            playground,
            dialects: dialects.clone(),
            local_models: Arc::new(crate::models::ModelsDir),
            speech_vendors: Arc::new(colloquy_providers::vendors::Registry),
        },
    );
    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .with_context(|| format!("binding the HTTP API to {}", config.http))?;
    let http = listener.local_addr()?;
    let rtc_udp = channel_server.local_addr();
    tracing::info!(
        address = %http,
        %rtc_udp,
        data_dir = %config.data_dir.display(),
        recovered_agents = orphans,
        media,
        credentials_from,
        playground,
        apps = config.apps.len(),
        "colloquy ready"
    );
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(colloquy_http::listener::serve(
        listener,
        router,
        config.http_limits,
        dialects.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(RunningServer {
        http,
        rtc_udp,
        credentials,
        supervisor,
        channel_server,
        store,
        webhooks,
        stop_http,
        http_task,
        _data_dir_lock: data_dir_lock,
    })
}

impl RunningServer {
    /// Stops every agent (their final states recorded), drains HTTP, closes the channel server,
    /// delivers the webhooks that are due, and closes the records. Answers what could not be
    /// recorded.
    pub async fn stop(self) -> anyhow::Result<Unrecorded> {
        // Agents stop alongside the HTTP drain, so that a request waiting on an agent cannot hold
        // the shutdown up.
        let _ = self.stop_http.send(());
        let (served, report) = tokio::join!(self.http_task, self.supervisor.shutdown());
        let drained = served.context("the HTTP task")?.context("serving HTTP")?;
        if drained.closed_at_deadline > 0 {
            tracing::warn!(
                closed = drained.closed_at_deadline,
                finished = drained.finished,
                "HTTP connections still open at the drain deadline were closed"
            );
        }
        self.channel_server.shutdown().await;
        // The event stream has ended; the webhook task delivers what is due within its grace period.
        let _ = self.webhooks.await;
        let writes = self.store.unrecorded();
        self.store.close().await;
        Ok(Unrecorded { final_states: report.unrecorded, writes })
    }
}

/// What a run could not record.
#[derive(Debug, Default)]
pub struct Unrecorded {
    /// Agents whose final state is not in the records (they show as live until the next start
    /// marks them FAILED, "node restarted"), with the error.
    pub final_states: Vec<(colloquy_model::AgentId, String)>,
    /// Failed writes of the whole run, by kind (`state change`, `history`, `webhook`, …).
    pub writes: std::collections::BTreeMap<&'static str, u64>,
}

impl Unrecorded {
    pub fn is_empty(&self) -> bool {
        self.final_states.is_empty() && self.writes.is_empty()
    }

    /// `"2 agents' final states (a1, a2); failed writes: 3 history, 1 state change"`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.final_states.is_empty() {
            let ids: Vec<_> = self.final_states.iter().map(|(id, _)| id.to_string()).collect();
            parts.push(format!("{} agents' final states ({})", ids.len(), ids.join(", ")));
        }
        if !self.writes.is_empty() {
            let writes: Vec<_> = self.writes.iter().map(|(what, n)| format!("{n} {what}")).collect();
            parts.push(format!("failed writes: {}", writes.join(", ")));
        }
        parts.join("; ")
    }
}

async fn serve(config: config::Config, media: bool, started: Instant) -> anyhow::Result<()> {
    let server = start(&config, media).await?;
    tracing::info!(ready_ms = started.elapsed().as_millis() as u64, "serving");
    // The one line on stdout that scripts and tests wait for.
    let mut out = std::io::stdout().lock();
    writeln!(out, "colloquy listening on http://{}", server.http)?;
    out.flush()?;
    drop(out);

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
    }
    let unrecorded = server.stop().await?;
    if unrecorded.is_empty() {
        tracing::info!("colloquy stopped; every agent's final state is recorded");
    } else {
        let final_states: Vec<_> = unrecorded.final_states.iter().map(|(id, e)| format!("{id}: {e}")).collect();
        tracing::error!(
            unrecorded = %unrecorded.describe(),
            errors = ?final_states,
            "colloquy stopped, but could not record everything: the agents named are marked FAILED \
             (node restarted) at the next start"
        );
    }
    Ok(())
}
