//! An agent's tools through the native API: accepted and shown back, and refused with the field
//! named when a name, schema, URL, timeout or option is wrong, or when the LLM cannot call tools.

mod common;

use axum::http::StatusCode;
use common::{Options, api, assert_error};
use serde_json::{Value, json};

fn openai_llm() -> Value {
    json!({"vendor": "openai", "url": "http://127.0.0.1:9/v1", "model": "gpt-4o-mini"})
}

fn weather() -> Value {
    json!({
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "url": "http://127.0.0.1:9/tools/weather",
        "timeout_ms": 3000
    })
}

fn with_tools(tools: Value, options: Option<Value>) -> String {
    let mut body = json!({"name": "n", "channel": "c", "llm": openai_llm(), "tools": tools});
    if let Some(options) = options {
        body["tool_options"] = options;
    }
    body.to_string()
}

#[tokio::test]
async fn tools_are_accepted_and_shown_with_their_options() {
    let api = api(Options::default()).await;
    let options = json!({"max_rounds": 2, "filler_after_ms": 500, "fillers": ["Let me check."], "end_call": true,
                         "webhooks": true});
    let reply = api.post("/v1/agents", &with_tools(json!([weather()]), Some(options.clone()))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let config = &reply.json["config"];
    assert_eq!(config["tools"], json!([weather()]));

    // A client tool has no URL.
    let map = json!({"name": "show_map", "description": "Shows a place.", "client": true});
    let reply = api
        .post("/v1/agents", &json!({"name": "m", "channel": "m", "llm": openai_llm(), "tools": [map]}).to_string())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["config"]["tools"][0]["client"], true);
    assert!(reply.json["config"]["tools"][0].get("url").is_none());
    assert_eq!(config["tool_options"], options);

    // Defaults: no tools, three rounds, a filler after 800 ms, no end_call.
    let id = api.start("plain", "c2").await;
    let shown = api.get(&format!("/v1/agents/{id}")).await;
    assert_eq!(shown.json["config"]["tools"], json!([]));
    assert_eq!(
        shown.json["config"]["tool_options"],
        json!({"max_rounds": 3, "filler_after_ms": 800, "fillers": ["One moment."], "end_call": false, "webhooks": false})
    );
}

#[tokio::test]
async fn bad_tools_are_refused_naming_the_field() {
    let api = api(Options::default()).await;
    let mut nameless = weather();
    nameless["name"] = json!("get weather");
    let mut bad_schema = weather();
    bad_schema["parameters"] = json!({"type": "object", "properties": {"city": {"type": "text"}}});
    let mut not_object = weather();
    not_object["parameters"] = json!({"type": "array"});
    let mut bad_url = weather();
    bad_url["url"] = json!("ftp://example.com/x");
    let mut slow = weather();
    slow["timeout_ms"] = json!(600_000);
    let cases = [
        (with_tools(json!([nameless]), None), "tools[0].name"),
        (with_tools(json!([bad_schema]), None), "tools[0].parameters.properties.city.type"),
        (with_tools(json!([not_object]), None), "tools[0].parameters.type"),
        (with_tools(json!([bad_url]), None), "tools[0].url"),
        (with_tools(json!([slow]), None), "tools[0].timeout_ms"),
        (with_tools(json!([weather(), weather()]), None), "tools[1].name"),
        (with_tools(json!([]), Some(json!({"max_rounds": 0}))), "tool_options.max_rounds"),
        (with_tools(json!([]), Some(json!({"fillers": ["ok", " "]}))), "tool_options.fillers[1]"),
        (with_tools(json!([{"name": "x"}]), None), "tools[0].url"),
        (with_tools(json!([{"name": "x", "url": "http://127.0.0.1:9/x", "client": true}]), None), "tools[0].client"),
    ];
    for (body, field) in cases {
        let reply = api.post("/v1/agents", &body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_field", Some(field));
    }
    let unknown = with_tools(json!([{"name": "x", "url": "http://127.0.0.1:9/x", "method": "GET"}]), None);
    assert_error(
        &api.post("/v1/agents", &unknown).await,
        StatusCode::BAD_REQUEST,
        "unknown_field",
        Some("tools[0].method"),
    );

    // The embedded LLM cannot call tools.
    let local = json!({"name": "n", "channel": "c", "tools": [weather()]}).to_string();
    let reply = api.post("/v1/agents", &local).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_field", Some("tools"));
    assert!(reply.text.contains("cannot call tools"), "{}", reply.text);
    let end_call_only = json!({"name": "n", "channel": "c", "tool_options": {"end_call": true}}).to_string();
    assert_error(
        &api.post("/v1/agents", &end_call_only).await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        Some("tools"),
    );
}

#[tokio::test]
async fn an_agent_that_asks_gets_agent_tool_called_webhooks_without_arguments_or_results() {
    let receiver = common::Receiver::default();
    let url = receiver.start().await;
    let api = api(Options { media: true, webhook_url: Some(url.clone()), ..Options::default() }).await;
    let start = |name: &str, webhooks: bool| {
        json!({"name": name, "channel": name, "idle_timeout": 0, "llm": openai_llm(), "tools": [weather()],
               "tool_options": {"webhooks": webhooks}, "callbacks": {"url": url, "secret": "whsec"}})
        .to_string()
    };
    let quiet = api.post("/v1/agents", &start("quiet", false)).await.json["agent_id"].as_str().unwrap().to_owned();
    let told = api.post("/v1/agents", &start("told", true)).await.json["agent_id"].as_str().unwrap().to_owned();
    let media = api.media.as_ref().unwrap();
    let called = |call_id: &str| colloquy_model::ConversationEvent::ToolCalled {
        turn: 2,
        call_id: call_id.into(),
        name: "get_weather".into(),
        duration_ms: 140,
        outcome: "ok",
    };
    media.emit(&quiet, called("call_q"));
    media.emit(&told, called("call_t"));

    // Two starts, then the one tool call of the agent that asked.
    let accepted = receiver.accepted(3).await;
    let bodies: Vec<Value> = accepted.iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
    let tool_called: Vec<&Value> = bodies.iter().filter(|b| b["event"] == "agent.tool_called").collect();
    assert_eq!(tool_called.len(), 1, "{bodies:?}");
    assert_eq!(tool_called[0]["agent"]["agent_id"], told.as_str());
    assert_eq!(
        tool_called[0]["tool"],
        json!({"turn_id": 2, "call_id": "call_t", "name": "get_weather", "duration_ms": 140, "outcome": "ok"})
    );
    let (headers, _) = accepted.iter().find(|(_, b)| b.contains("agent.tool_called")).unwrap();
    assert_eq!(headers["x-colloquy-event"], "agent.tool_called");
    assert!(headers["x-colloquy-delivery"].to_str().unwrap().ends_with(".call_t"));
    assert!(headers.contains_key("x-colloquy-signature"));
}
