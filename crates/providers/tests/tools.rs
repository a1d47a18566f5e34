//! HTTP tools against a local server: a call is a signed POST of its arguments and the JSON answer
//! is the result; every failure (a refusal, an answer that is not JSON or is too large, a timeout,
//! arguments that are not an object) is an outcome the LLM is told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use colloquy_model::{Secret, ToolCall, ToolOutcome};
use colloquy_providers::tools::{HttpToolCall, HttpTools, MAX_RESULT_BYTES};
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

async fn ok(State(seen): State<Seen>, headers: HeaderMap, body: String) -> axum::Json<Value> {
    seen.lock().unwrap().push((headers, body));
    axum::Json(json!({"status": "shipped", "eta_days": 2}))
}

async fn server(seen: Seen) -> String {
    let app = Router::new()
        .route("/ok", post(ok))
        .route("/refuses", post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "database is down").into_response() }))
        .route("/text", post(|| async { "shipped" }))
        .route("/huge", post(|| async { axum::Json(json!({"blob": "x".repeat(MAX_RESULT_BYTES)})) }))
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                axum::Json(json!({}))
            }),
        )
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn order(arguments: &str) -> ToolCall {
    ToolCall { id: "call_7".into(), name: "order_status".into(), arguments: arguments.into() }
}

async fn call(tools: &HttpTools, url: &str, tool_call: &ToolCall, secret: Option<&Secret>) -> ToolOutcome {
    let request = HttpToolCall {
        url,
        call: tool_call,
        agent_id: "agent-1",
        secret,
        timeout: Duration::from_millis(500),
        timestamp_ms: 1_765_000_000_000,
    };
    tools.call(request).await
}

#[tokio::test]
async fn a_call_is_a_signed_post_of_its_arguments_and_the_json_answer_is_the_result() {
    let seen = Seen::default();
    let base = server(seen.clone()).await;
    let tools = HttpTools::new().unwrap();
    let secret = Secret::new("s3cret");
    let outcome = call(&tools, &format!("{base}/ok"), &order(r#"{"order": "A-1"}"#), Some(&secret)).await;
    let ToolOutcome::Ok(result) = outcome else { panic!("{outcome:?}") };
    assert_eq!(serde_json::from_str::<Value>(&result).unwrap(), json!({"status": "shipped", "eta_days": 2}));

    let (headers, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"order": "A-1"}));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-colloquy-tool"], "order_status");
    assert_eq!(headers["x-colloquy-tool-call"], "call_7");
    assert_eq!(headers["x-colloquy-agent"], "agent-1");
    assert_eq!(headers["x-colloquy-timestamp"], "1765000000000");
    let mac = colloquy_model::signature::hmac_sha256_hex(b"s3cret", format!("1765000000000.{body}").as_bytes());
    assert_eq!(headers["x-colloquy-signature"].to_str().unwrap(), format!("sha256={mac}"));

    // Without a secret, no signature.
    call(&tools, &format!("{base}/ok"), &order("{}"), None).await;
    assert!(seen.lock().unwrap()[1].0.get("x-colloquy-signature").is_none());
}

#[tokio::test]
async fn failures_are_outcomes_that_say_what_went_wrong() {
    let base = server(Seen::default()).await;
    let tools = HttpTools::new().unwrap();
    let failed = |outcome: ToolOutcome| match outcome {
        ToolOutcome::Failed(message) => message,
        ToolOutcome::Ok(result) => panic!("a result: {result}"),
    };
    let cases = [
        ("/refuses", "{}", "500 Internal Server Error: database is down"),
        ("/text", "{}", "not JSON"),
        ("/huge", "{}", &format!("over the {MAX_RESULT_BYTES}-byte limit")),
        ("/slow", "{}", "no answer within 500 ms"),
        ("/ok", "[1, 2]", "must be a JSON object"),
        ("/ok", "{\"order\": ", "not JSON"),
    ];
    for (path, arguments, expected) in cases {
        let message = failed(call(&tools, &format!("{base}{path}"), &order(arguments), None).await);
        assert!(message.contains(expected), "{path}: {message}");
    }
    let message = failed(call(&tools, "http://127.0.0.1:9/nothing", &order("{}"), None).await);
    assert!(!message.is_empty());
}
