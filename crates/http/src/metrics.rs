//! `GET /metrics`: Prometheus text, every series prefixed `colloquy_`. HTTP requests are counted by a
//! middleware; agent counts are read from the supervisor, and the channel server's datagram counts
//! from its stats, at each scrape.

use std::fmt;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use colloquy_model::AgentStatus;
use colloquy_rtc::server::ChannelServer;
use colloquy_supervisor::Supervisor;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route template (`/v1/agents/{id}`), never the raw path: ids would explode the series.
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

/// The server's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    pub fn new(supervisor: Supervisor, channel_server: Option<ChannelServer>) -> Metrics {
        let mut registry = Registry::with_prefix("colloquy");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status code",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route and method",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        registry.register_collector(Box::new(AgentCollector { supervisor }));
        if let Some(server) = channel_server {
            registry.register_collector(Box::new(RtcCollector { server }));
        }
        Metrics { registry, requests, latency }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Counts every request by route, method and status, and times it.
pub async fn record_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.inner.metrics;
    metrics
        .latency
        .get_or_create(&RouteLabels { route: route.clone(), method: method.clone() })
        .observe(started.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&RequestLabels { route, method, status: response.status().as_u16() }).inc();
    response
}

/// `GET /metrics`
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.inner.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(_) => crate::error::ApiError::internal("metrics could not be rendered").into_response(),
    }
}

/// Reads agent counts from the supervisor at each scrape.
#[derive(Debug)]
struct AgentCollector {
    supervisor: Supervisor,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TurnEndLabels {
    end: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndedLabels {
    status: String,
    reason: String,
}

impl Collector for AgentCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let live = self.supervisor.live_counts();
        let mut family =
            encoder.encode_descriptor("agents", "Live agents on this node, by status", None, MetricType::Gauge)?;
        for status in AgentStatus::ALL.into_iter().filter(|s| !s.is_terminal()) {
            let count = live.get(&status).copied().unwrap_or(0);
            let labels = StatusLabels { status: status.as_str().to_owned() };
            ConstGauge::new(count as i64).encode(family.encode_family(&labels)?)?;
        }
        let ended = self.supervisor.ended_counts();
        let mut family = encoder.encode_descriptor(
            "agents_ended",
            "Agents that ended since this process started, by final status and reason",
            None,
            MetricType::Counter,
        )?;
        let mut ended: Vec<_> = ended.into_iter().collect();
        ended.sort();
        for ((status, reason), count) in ended {
            let labels = EndedLabels { status: status.as_str().to_owned(), reason: reason.to_owned() };
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        let stats = self.supervisor.turn_stats();
        let mut family = encoder.encode_descriptor(
            "turn_latency_seconds",
            "Latency of each stage of a turn: eou_delay, asr_ttlw, llm_ttft, llm_ttfs, tts_ttfb, engine_overhead, e2e",
            None,
            MetricType::Histogram,
        )?;
        for (stage, histogram) in stats.stages() {
            // The encoder wants each bucket's own count, with the overflow as the +Inf bucket.
            let mut buckets = Vec::with_capacity(histogram.cumulative.len() + 1);
            let mut below = 0;
            for (bound_ms, cumulative) in &histogram.cumulative {
                buckets.push((*bound_ms as f64 / 1000.0, cumulative - below));
                below = *cumulative;
            }
            buckets.push((f64::INFINITY, histogram.count - below));
            let labels = StageLabels { stage: stage.to_owned() };
            family.encode_family(&labels)?.encode_histogram::<StageLabels>(
                histogram.sum_ms as f64 / 1000.0,
                histogram.count,
                &buckets,
                None,
            )?;
        }
        let (frames, late) = stats.frames();
        let family = encoder.encode_descriptor(
            "playout_frames",
            "Agent audio frames (20 ms) sent into channels",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(frames).encode(family)?;
        let family = encoder.encode_descriptor(
            "playout_frames_late",
            "Agent audio frames sent more than 10 ms after their time",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(late).encode(family)?;
        let mut family =
            encoder.encode_descriptor("turns", "Turns ended, by how they ended", None, MetricType::Counter)?;
        for (end, count) in stats.ended() {
            ConstCounter::new(count).encode(family.encode_family(&TurnEndLabels { end: end.to_owned() })?)?;
        }
        Ok(())
    }
}

/// Reads the channel server's datagram counts at each scrape.
#[derive(Debug)]
struct RtcCollector {
    server: ChannelServer,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    why: String,
}

impl Collector for RtcCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = self.server.stats();
        let count = |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
        let family = encoder.encode_descriptor(
            "rtc_datagrams",
            "UDP datagrams the channel server received",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(count(&stats.datagrams_in)).encode(family)?;
        let mut family = encoder.encode_descriptor(
            "rtc_datagrams_dropped",
            "UDP datagrams dropped before reaching a session, by why: unrouted (no session for its \
             address or ufrag), unauthenticated (a STUN request from a new address that failed \
             MESSAGE-INTEGRITY), too_many_addresses (a session's new address beyond [rtc] max_peer_addresses)",
            None,
            MetricType::Counter,
        )?;
        for (why, counter) in [
            ("unrouted", &stats.datagrams_unrouted),
            ("unauthenticated", &stats.datagrams_unauthenticated),
            ("too_many_addresses", &stats.datagrams_too_many_addresses),
        ] {
            ConstCounter::new(count(counter)).encode(family.encode_family(&DropLabels { why: why.to_owned() })?)?;
        }
        Ok(())
    }
}
