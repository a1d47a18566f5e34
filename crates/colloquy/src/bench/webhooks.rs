//! `colloquy bench webhooks`: webhook deliveries per second through the real delivery task and
//! outbox (a SQLite file), to receivers on loopback ports spread over several apps, first with
//! every receiver answering at once, then with 1% of them accepting connections and never
//! answering. Each run queues the same deliveries, round-robin over the receivers, and times how
//! long the answering receivers take to get all of theirs. The two kinds of run alternate for
//! `--rounds` rounds (the order flipped each round, so neither always runs on a warmer machine),
//! and the figures compared are each kind's median.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use colloquy_http::webhooks::{self, WebhookConfig};
use colloquy_model::{AgentId, AgentName, AgentRecord, AgentSpec, AgentState, AppId, ChannelName, UnixMillis};
use colloquy_store::{OutgoingWebhook, Store};
use colloquy_supervisor::EventStream;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct WebhookBenchArgs {
    /// Receivers (one URL each).
    #[arg(long, default_value_t = 200)]
    pub receivers: usize,
    /// Apps the receivers are spread over.
    #[arg(long, default_value_t = 10)]
    pub apps: usize,
    /// Deliveries queued per run.
    #[arg(long, default_value_t = 10_000)]
    pub deliveries: usize,
    /// Percent of receivers that accept and never answer, in the runs with hanging receivers.
    #[arg(long, default_value_t = 1.0)]
    pub hanging_percent: f64,
    /// Runs of each kind, alternating.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One run's figures.
struct Run {
    hanging: usize,
    delivered: u64,
    seconds: f64,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.delivered as f64 / self.seconds
    }
}

pub async fn run(args: WebhookBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.receivers > 0 && args.apps > 0, "--receivers and --apps must be at least 1");
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let hanging = ((args.receivers as f64) * args.hanging_percent / 100.0).round() as usize;
    let (mut none, mut some) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        if round % 2 == 0 {
            none.push(once(&args, 0).await?);
            some.push(once(&args, hanging).await?);
        } else {
            some.push(once(&args, hanging).await?);
            none.push(once(&args, 0).await?);
        }
    }
    let median = |runs: &[Run]| {
        let mut rates: Vec<f64> = runs.iter().map(Run::per_second).collect();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let (none_rate, some_rate) = (median(&none), median(&some));
    let config = WebhookConfig::DEFAULT;
    if args.json {
        let runs = |runs: &[Run]| -> Vec<serde_json::Value> {
            runs.iter()
                .map(|r| json!({"hanging_receivers": r.hanging, "delivered": r.delivered, "seconds": r.seconds, "deliveries_per_second": r.per_second()}))
                .collect()
        };
        let out = json!({
            "receivers": args.receivers, "apps": args.apps, "deliveries": args.deliveries, "rounds": args.rounds,
            "max_in_flight": config.max_in_flight, "max_in_flight_per_app": config.max_in_flight_per_app,
            "request_timeout_s": config.request_timeout.as_secs_f64(),
            "none_hanging": runs(&none), "some_hanging": runs(&some),
            "none_hanging_median_per_second": none_rate, "some_hanging_median_per_second": some_rate,
            "ratio": some_rate / none_rate,
        });
        println!("{out}");
    } else {
        println!(
            "webhooks: {} receivers over {} apps, {} deliveries; at most {} in flight, {} per app, {} s timeout; {} rounds",
            args.receivers,
            args.apps,
            args.deliveries,
            config.max_in_flight,
            config.max_in_flight_per_app,
            config.request_timeout.as_secs(),
            args.rounds,
        );
        for r in none.iter().chain(&some) {
            println!(
                "  {:>3} receivers hanging: {:>6} delivered in {:>6.2} s = {:>8.0} deliveries/s",
                r.hanging,
                r.delivered,
                r.seconds,
                r.per_second()
            );
        }
        println!(
            "  medians: {none_rate:.0}/s with none hanging, {some_rate:.0}/s with {hanging} hanging: {:.0}% of the throughput",
            100.0 * some_rate / none_rate
        );
    }
    Ok(())
}

async fn once(args: &WebhookBenchArgs, hanging: usize) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("colloquy.db")).await.context("opening the outbox")?;
    let delivered = Arc::new(AtomicU64::new(0));
    let mut urls = Vec::new();
    for r in 0..args.receivers {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        if r < hanging {
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((stream, _)) = listener.accept().await {
                    held.push(stream);
                }
            });
        } else {
            let delivered = delivered.clone();
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move || {
                    delivered.fetch_add(1, Ordering::Relaxed);
                    async { "ok" }
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        urls.push(format!("http://{address}/hook"));
    }
    // One agent per receiver, so each row knows its app.
    let mut agents = Vec::new();
    for r in 0..args.receivers {
        let record = AgentRecord {
            id: AgentId::from_string(format!("bench-agent-{r}")),
            app: AppId::new(format!("bench-app-{}", r % args.apps))?,
            spec: AgentSpec::with_defaults(AgentName::new(format!("bench-{r}"))?, ChannelName::new("bench")?),
            state: AgentState::Running,
            created_at: UnixMillis(0),
            stopped_at: None,
        };
        store.insert_agent(&record).await?;
        agents.push(record.id);
    }
    let mut expected = 0u64;
    for i in 0..args.deliveries {
        let r = i % args.receivers;
        let webhook = OutgoingWebhook {
            agent_id: agents[r].clone(),
            url: urls[r].clone(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: json!({"event": "bench", "n": i}).to_string(),
            created_at: UnixMillis(i as i64),
        };
        store.enqueue_webhook(&webhook, u32::MAX).await?;
        if r >= hanging {
            expected += 1;
        }
    }

    let (events, stream) = tokio::sync::mpsc::channel(1);
    let began = Instant::now();
    let task = webhooks::deliver(
        webhooks::Formats::new(store.clone(), Arc::new(colloquy_http::dialects::NoDialects)),
        EventStream::from_receiver(stream),
        WebhookConfig::DEFAULT,
    );
    while delivered.load(Ordering::Relaxed) < expected {
        tokio::time::sleep(Duration::from_millis(5)).await;
        anyhow::ensure!(began.elapsed() < Duration::from_secs(300), "deliveries stalled");
    }
    let seconds = began.elapsed().as_secs_f64();
    drop(events);
    let _ = task.await;
    store.close().await;
    Ok(Run { hanging, delivered: delivered.load(Ordering::Relaxed), seconds })
}
