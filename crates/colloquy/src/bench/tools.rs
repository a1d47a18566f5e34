//! `colloquy bench tools`: the engine's own time in one tool round. A `colloquy serve` child runs
//! one agent whose LLM is a fake served by this process (OpenAI's streamed `tool_calls` chunks,
//! `providers/tests/fakes/openai.rs`) and whose HTTP tool is served here too; each round is a
//! `think`: the fake LLM asks for the tool, the tool answers at once, the LLM is asked again and
//! answers one word. Four instants per round, all read in this process:
//!
//! 1. the fake LLM hands its last tool-call chunk (`[DONE]`) to the HTTP stack;
//! 2. the tool's request arrives;
//! 3. the tool hands back its answer;
//! 4. the LLM's second request (with the result) arrives.
//!
//! "delta → request" is 2 − 1: the agent reading the end of the stream, the conversation core
//! making the call, the call leaving. "round overhead" adds 4 − 3: the result coming back, the
//! core asking the LLM again. Neither contains the LLM's or the tool's own time; both contain
//! loopback HTTP, on the same cores as the server.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{KEY, SECRET, start_server};

#[path = "../../../providers/tests/fakes/openai.rs"]
mod openai;

#[derive(Debug, clap::Args)]
pub struct ToolBenchArgs {
    /// Tool rounds measured (after two for warm-up).
    #[arg(long, default_value_t = 100)]
    pub rounds: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The instants of the round under way.
#[derive(Debug, Default)]
struct Round {
    last_delta: Option<Instant>,
    tool_request: Option<Instant>,
    tool_answer: Option<Instant>,
    second_request: Option<Instant>,
}

#[derive(Clone, Debug, Default)]
struct Probe {
    round: Arc<Mutex<Round>>,
    /// Wakes the driver when the LLM has been asked again.
    asked_again: Arc<Notify>,
}

async fn chat(State(probe): State<Probe>, body: axum::Json<Value>) -> Response {
    let has_result = body["messages"].as_array().is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
    if has_result {
        probe.round.lock().unwrap_or_else(|e| e.into_inner()).second_request = Some(Instant::now());
        probe.asked_again.notify_one();
        return sse(openai::text_events("Done."), None);
    }
    sse(openai::tool_call_events(&[("call_probe", "probe", r#"{"n": 1}"#)], 8), Some(probe))
}

/// The events as a stream; with a probe, the instant the last one is handed over is kept.
fn sse(events: Vec<String>, probe: Option<Probe>) -> Response {
    let count = events.len();
    let stream = futures_util::stream::iter(events.into_iter().enumerate().map(move |(i, event)| {
        if i + 1 == count
            && let Some(probe) = &probe
        {
            probe.round.lock().unwrap_or_else(|e| e.into_inner()).last_delta = Some(Instant::now());
        }
        Ok::<_, std::io::Error>(Bytes::from(event))
    }));
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(stream)).unwrap_or_default()
}

async fn tool(State(probe): State<Probe>) -> axum::Json<Value> {
    let mut round = probe.round.lock().unwrap_or_else(|e| e.into_inner());
    round.tool_request = Some(Instant::now());
    round.tool_answer = Some(Instant::now());
    axum::Json(json!({"ok": true}))
}

async fn fakes(probe: Probe) -> anyhow::Result<String> {
    let app = Router::new().route("/v1/chat/completions", post(chat)).route("/tool", post(tool)).with_state(probe);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
}

pub async fn run(args: ToolBenchArgs) -> anyhow::Result<()> {
    let probe = Probe::default();
    let fake = fakes(probe.clone()).await?;
    let server = start_server(&[])?;
    let http = reqwest::Client::new();
    let body = json!({
        "name": "tool-bench", "channel": "tool-bench", "idle_timeout": 0,
        "llm": {"vendor": "openai", "url": format!("{fake}/v1"), "model": "fake", "api_key": "none"},
        "tools": [{"name": "probe", "url": format!("{fake}/tool"), "timeout_ms": 5000}],
        "tool_options": {"fillers": []},
    });
    let response =
        http.post(format!("{}/v1/agents", server.base)).basic_auth(KEY, Some(SECRET)).json(&body).send().await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "starting the agent: {status} {answer}");
    let id = answer["agent_id"].as_str().context("agent_id")?.to_owned();

    let (mut to_request, mut overhead) = (Vec::new(), Vec::new());
    for n in 0..args.rounds + 2 {
        *probe.round.lock().unwrap_or_else(|e| e.into_inner()) = Round::default();
        let asked_again = probe.asked_again.notified();
        let think = json!({"text": format!("Probe {n}.")});
        let response = http
            .post(format!("{}/v1/agents/{id}/think", server.base))
            .basic_auth(KEY, Some(SECRET))
            .json(&think)
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "think: {}", response.status());
        tokio::time::timeout(Duration::from_secs(10), asked_again).await.context("the tool round did not finish")?;
        let round = std::mem::take(&mut *probe.round.lock().unwrap_or_else(|e| e.into_inner()));
        let (Some(delta), Some(request), Some(answer), Some(again)) =
            (round.last_delta, round.tool_request, round.tool_answer, round.second_request)
        else {
            anyhow::bail!("round {n} missed a step: {round:?}");
        };
        if n >= 2 {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            to_request.push(ms(request.saturating_duration_since(delta)));
            overhead.push(ms(request.saturating_duration_since(delta) + again.saturating_duration_since(answer)));
        }
        // Let the one-word answer be said before the next round cuts it off.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = http.post(format!("{}/v1/agents/{id}/leave", server.base)).basic_auth(KEY, Some(SECRET)).send().await;
    to_request.sort_by(f64::total_cmp);
    overhead.sort_by(f64::total_cmp);
    let figures = |v: &[f64]| (percentile(v, 0.5), percentile(v, 0.99), v.last().copied().unwrap_or(f64::NAN));
    let (d50, d99, dmax) = figures(&to_request);
    let (o50, o99, omax) = figures(&overhead);
    if args.json {
        let out = json!({
            "rounds": args.rounds,
            "delta_to_request_ms": {"p50": d50, "p99": d99, "max": dmax},
            "round_overhead_ms": {"p50": o50, "p99": o99, "max": omax},
        });
        println!("{out}");
    } else {
        println!("colloquy bench tools: {} rounds, one agent, loopback HTTP", args.rounds);
        println!("                        p50      p99      max");
        println!("delta → request   {d50:>8.2} {d99:>8.2} {dmax:>8.2} ms");
        println!("round overhead    {o50:>8.2} {o99:>8.2} {omax:>8.2} ms");
    }
    Ok(())
}
