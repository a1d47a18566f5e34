//! A spoken question answered after a tool call, end to end over real UDP: a person asks about the
//! weather through `colloquy call`; the agent's LLM (a local fake of OpenAI's chat completions
//! stream, which answers the first request with a streamed `tool_calls` delta and the second with
//! words built from the tool's result) calls an HTTP tool (a local server that checks the call's
//! signature); the agent says the answer, and the history and turns record the call. Needs the
//! embedded ASR and TTS models (`scripts/fetch-models`).

mod common;

#[path = "../../providers/tests/fakes/openai.rs"]
mod openai;

use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use common::say;
use serde_json::{Value, json};

const TOOL_SECRET: &str = "tool-signing-secret";

/// What the fakes saw: the LLM's requests, and the tool's calls with their headers.
#[derive(Clone, Default)]
struct Seen {
    llm: Arc<Mutex<Vec<Value>>>,
    tool: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

fn sse(events: Vec<String>) -> Response {
    let stream = futures_util::stream::iter(events.into_iter().map(|e| Ok::<_, std::io::Error>(Bytes::from(e))));
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(stream)).unwrap()
}

/// The LLM: asked without a tool result, it calls `get_weather`; given one, it says the forecast.
/// With model `map`, it calls the client tool `show_map` and says what the page showed.
async fn chat(seen: axum::extract::State<Seen>, body: axum::Json<Value>) -> Response {
    seen.llm.lock().unwrap().push(body.0.clone());
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let result = messages.iter().find(|m| m["role"] == "tool");
    if body["model"] == "map" {
        return match result {
            None => sse(openai::tool_call_events(&[("call_map_1", "show_map", r#"{"place": "Eiffel Tower"}"#)], 6)),
            Some(result) => {
                let shown: Value = serde_json::from_str(result["content"].as_str().unwrap_or("{}")).unwrap_or_default();
                let place = shown["place"].as_str().unwrap_or("nothing");
                sse(openai::text_events(&format!("I put {place} on your map.")))
            }
        };
    }
    match result {
        None => sse(openai::tool_call_events(&[("call_weather_1", "get_weather", r#"{"city": "Paris"}"#)], 4)),
        Some(result) => {
            let result: Value = serde_json::from_str(result["content"].as_str().unwrap_or("{}")).unwrap_or_default();
            let forecast = result["forecast"].as_str().unwrap_or("unknown");
            sse(openai::text_events(&format!("In Paris it is {forecast} today.")))
        }
    }
}

async fn weather(seen: axum::extract::State<Seen>, headers: HeaderMap, body: String) -> axum::Json<Value> {
    seen.tool.lock().unwrap().push((headers, body));
    axum::Json(json!({"forecast": "sunny", "temperature_c": 21}))
}

async fn fakes(seen: Seen) -> String {
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/tools/weather", post(weather))
        .route("/hook", post(|| async { "ok" }))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[test]
fn a_spoken_question_is_answered_after_an_http_tool_call() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seen = Seen::default();
    let fake = runtime.block_on(fakes(seen.clone()));
    let server = common::start_with_media(&dir.path().join("data"), "", &[]);
    let (status, agent) = runtime.block_on(server.post(
        "/v1/agents",
        json!({
            "name": "weather-bot", "channel": "weather", "idle_timeout": 0,
            "llm": {"vendor": "openai", "url": format!("{fake}/v1"), "model": "gpt-4o-mini", "api_key": "sk-fake"},
            "tools": [{
                "name": "get_weather", "description": "The weather in a city today.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                "url": format!("{fake}/tools/weather"), "timeout_ms": 3000
            }],
            "tool_options": {"fillers": []},
            "callbacks": {"url": format!("{fake}/hook"), "secret": TOOL_SECRET}
        }),
    ));
    assert_eq!(status, 200, "{agent}");
    let id = agent["agent_id"].as_str().unwrap().to_owned();

    let question = dir.path().join("question.wav");
    say("What is the weather like in Paris today?", &question);
    let call = dir.path().join("call.wav");
    common::compose(&[Err(0.5), Ok(&question), Err(6.0)], &call);
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["call", "--server", &server.base, "--channel", "weather", "--uid", "asker", "--play"])
        .arg(&call)
        .env("COLLOQUY_API_KEY", common::KEY)
        .env("COLLOQUY_API_SECRET", common::SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let messages: Vec<Value> =
        String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();

    // The tool got one call, its arguments as the body, signed with the agent's callback secret.
    let calls = seen.tool.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{messages:?}");
    let (headers, body) = &calls[0];
    assert_eq!(serde_json::from_str::<Value>(body).unwrap(), json!({"city": "Paris"}));
    assert_eq!(headers["x-colloquy-tool"], "get_weather");
    assert_eq!(headers["x-colloquy-tool-call"], "call_weather_1");
    assert_eq!(headers["x-colloquy-agent"].to_str().unwrap(), id);
    let timestamp = headers["x-colloquy-timestamp"].to_str().unwrap();
    let expected =
        colloquy_model::signature::hmac_sha256_hex(TOOL_SECRET.as_bytes(), format!("{timestamp}.{body}").as_bytes());
    assert_eq!(headers["x-colloquy-signature"].to_str().unwrap(), format!("sha256={expected}"));

    // The LLM was asked twice: with the tool offered, then with the call and its result.
    let requests = seen.llm.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0]["tools"][0]["function"]["name"], "get_weather");
    let second = requests[1]["messages"].as_array().unwrap();
    let asked = second.iter().find(|m| m["role"] == "assistant" && m.get("tool_calls").is_some()).expect("the call");
    assert_eq!(asked["tool_calls"][0]["id"], "call_weather_1");
    let result = second.iter().find(|m| m["role"] == "tool").expect("the result");
    assert_eq!(result["tool_call_id"], "call_weather_1");
    assert!(result["content"].as_str().unwrap().contains("sunny"));

    // The agent said the answer built from the tool's result.
    let said = messages
        .iter()
        .find(|m| m["object"] == "assistant.transcription" && m["turn_status"] == 1)
        .unwrap_or_else(|| panic!("no finished answer in {messages:?}"));
    assert_eq!(said["text"], "In Paris it is sunny today.");

    // The history has the call between the question and the answer; the turn its tool time.
    let (_, history) = runtime.block_on(server.get(&format!("/v1/agents/{id}/history")));
    let roles: Vec<&str> = history["history"].as_array().unwrap().iter().filter_map(|e| e["role"].as_str()).collect();
    assert_eq!(roles, ["user", "tool", "assistant"], "{history}");
    let entry: Value = serde_json::from_str(history["history"][1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(entry["name"], "get_weather");
    assert_eq!(entry["call_id"], "call_weather_1");
    assert!(entry["result"].as_str().unwrap().contains("sunny"), "{entry}");
    assert!(entry["tool_ms"].as_u64().is_some(), "{entry}");
    let (_, turns) = runtime.block_on(server.get(&format!("/v1/agents/{id}/turns")));
    assert!(turns["turns"][0]["metrics"]["tool_ms"].as_u64().is_some(), "{turns}");
}

#[test]
fn a_client_tool_is_answered_by_a_participant_over_the_data_channel() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seen = Seen::default();
    let fake = runtime.block_on(fakes(seen.clone()));
    let server = common::start_with_media(&dir.path().join("data"), "", &[]);
    let (status, agent) = runtime.block_on(server.post(
        "/v1/agents",
        json!({
            "name": "map-bot", "channel": "map", "idle_timeout": 0,
            "llm": {"vendor": "openai", "url": format!("{fake}/v1"), "model": "map", "api_key": "sk-fake"},
            "tools": [{"name": "show_map", "description": "Shows a place on the user's map.", "client": true,
                       "parameters": {"type": "object", "properties": {"place": {"type": "string"}}},
                       "timeout_ms": 5000}],
            "tool_options": {"fillers": []}
        }),
    ));
    assert_eq!(status, 200, "{agent}");

    let question = dir.path().join("question.wav");
    say("Can you show me the Eiffel Tower on the map?", &question);
    let call = dir.path().join("call.wav");
    common::compose(&[Err(0.5), Ok(&question), Err(6.0)], &call);
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["call", "--server", &server.base, "--channel", "map", "--uid", "browser", "--play"])
        .arg(&call)
        .args(["--answer-tool", r#"show_map={"shown": true, "place": "the Eiffel Tower"}"#])
        .env("COLLOQUY_API_KEY", common::KEY)
        .env("COLLOQUY_API_SECRET", common::SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let messages: Vec<Value> =
        String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();

    // The participant saw the call with its arguments, and the call's start and end.
    let tool_call = messages.iter().find(|m| m["object"] == "tool.call").unwrap_or_else(|| panic!("{messages:?}"));
    assert_eq!((&tool_call["name"], &tool_call["call_id"]), (&json!("show_map"), &json!("call_map_1")));
    assert_eq!(tool_call["arguments"], json!({"place": "Eiffel Tower"}));
    assert!(messages.iter().any(|m| m["object"] == "tool.started" && m["call_id"] == "call_map_1"));
    let finished = messages.iter().find(|m| m["object"] == "tool.finished").expect("tool.finished");
    assert_eq!(finished["outcome"], "ok", "{finished}");
    // Its answer went back to the LLM, and the agent said what it showed.
    let requests = seen.llm.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let said = messages
        .iter()
        .find(|m| m["object"] == "assistant.transcription" && m["turn_status"] == 1)
        .unwrap_or_else(|| panic!("no finished answer in {messages:?}"));
    assert_eq!(said["text"], "I put the Eiffel Tower on your map.");
}
