//! Errors the HTTP edge raises before a dialect's handler runs (an unknown path under the dialect's
//! prefix, a method its route does not take, a body or URI over the limits) come back in that
//! dialect's envelope, through the real listener (whose body limit runs before the router) and in
//! process (where the router's own limits do).

#[path = "../../http/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;

use axum::http::StatusCode;
use common::{APP_ID, APP_KEY, APP_SECRET, Options, basic};

use serde_json::Value;

const AGORA: &str = "/api/conversational-ai-agent/v2/projects";

fn dialects() -> Options {
    Options { dialects: std::sync::Arc::new(colloquy_dialects::VendorDialects::new()), ..Options::default() }
}

/// The test router on a loopback port, through the real listener.
async fn serve() -> (common::Api, SocketAddr) {
    let options = dialects();
    let dialects = options.dialects.clone();
    let api = common::api(options).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = colloquy_http::listener::HttpLimits::DEFAULT;
    tokio::spawn(colloquy_http::listener::serve(
        listener,
        api.router.clone(),
        limits,
        dialects,
        std::future::pending(),
    ));
    (api, addr)
}

struct Answer {
    status: StatusCode,
    json: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let text = response.text().await.unwrap();
    Answer { status, json: serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")) }
}

#[track_caller]
fn assert_agora(answer: &Answer, status: StatusCode, reason: &str) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(answer.json["reason"], reason, "{}", answer.json);
    assert!(answer.json["detail"].as_str().is_some_and(|d| !d.is_empty()), "{}", answer.json);
    assert_eq!(answer.json.as_object().unwrap().len(), 2, "only detail and reason: {}", answer.json);
}

#[tokio::test]
async fn agora_routes_answer_edge_errors_in_agoras_envelope() {
    let (_api, addr) = serve().await;
    let client = reqwest::Client::new();
    let base = format!("http://{addr}{AGORA}/{APP_ID}");
    let auth = basic(APP_KEY, APP_SECRET);

    let unknown = send(client.get(format!("{base}/agents/a1/nothing")).header("authorization", &auth)).await;
    assert_agora(&unknown, StatusCode::NOT_FOUND, "NotImplemented");
    let cn_unknown = send(client.get(format!("http://{addr}/cn{AGORA}/{APP_ID}/nothing"))).await;
    assert_agora(&cn_unknown, StatusCode::NOT_FOUND, "NotImplemented");

    let wrong_method = send(client.delete(format!("{base}/join")).header("authorization", &auth)).await;
    assert_agora(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "NotImplemented");

    // Declared: refused before the body is read.
    let big = "x".repeat(3 * 1024 * 1024);
    let declared = send(client.post(format!("{base}/join")).header("authorization", &auth).body(big.clone())).await;
    assert_agora(&declared, StatusCode::PAYLOAD_TOO_LARGE, "InvalidRequestBody");
    // Chunked (no Content-Length): refused by the listener's body limit.
    let stream = chunks(big.into_bytes());
    let chunked = send(
        client.post(format!("{base}/join")).header("authorization", &auth).body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    assert_agora(&chunked, StatusCode::PAYLOAD_TOO_LARGE, "InvalidRequestBody");

    let long = format!("{base}/agents?channel={}", "c".repeat(20_000));
    assert_agora(
        &send(client.get(long).header("authorization", &auth)).await,
        StatusCode::URI_TOO_LONG,
        "InvalidRequestBody",
    );
}

#[tokio::test]
async fn zego_routes_answer_edge_errors_in_zegos_envelope() {
    let (_api, addr) = serve().await;
    let client = reqwest::Client::new();
    let assert_zego = |answer: &Answer, code: u64| {
        // ZEGO answers every request with HTTP 200; `Code` says what went wrong.
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        assert_eq!(answer.json["Code"], code, "{}", answer.json);
        assert!(answer.json["Message"].as_str().is_some_and(|m| !m.is_empty()), "{}", answer.json);
        assert!(answer.json["RequestId"].is_string() && answer.json["Data"].is_object(), "{}", answer.json);
    };
    let unknown = send(client.post(format!("http://{addr}/zego/nothing?Action=ListAgents"))).await;
    assert_zego(&unknown, 100_000_007);
    let wrong_method = send(client.get(format!("http://{addr}/zego?Action=ListAgents"))).await;
    assert_zego(&wrong_method, 100_000_007);
    // A 3 MB body, declared and chunked.
    let big = "x".repeat(3 * 1024 * 1024);
    let url = format!("http://{addr}/?Action=CreateAgentInstance&AppId={APP_ID}");
    assert_zego(&send(client.post(&url).body(big.clone())).await, 410_000_003);
    let chunked = client.post(&url).body(reqwest::Body::wrap_stream(chunks(big.into_bytes())));
    assert_zego(&send(chunked).await, 410_000_003);
    let long = format!("http://{addr}/zego?Action=ListAgents&AppId={}", "1".repeat(20_000));
    assert_zego(&send(client.post(long)).await, 410_000_003);
}

#[tokio::test]
async fn alibaba_routes_answer_edge_errors_in_alibabas_envelopes() {
    let (_api, addr) = serve().await;
    let client = reqwest::Client::new();
    // The app server: `{code, message, error_code, request_id}`.
    let app_server = send(client.get(format!("http://{addr}/api/v2/aiagent/describeAIAgentInstance"))).await;
    assert_eq!(app_server.status, StatusCode::METHOD_NOT_ALLOWED, "{}", app_server.json);
    assert_eq!(app_server.json["code"], 405, "{}", app_server.json);
    assert_eq!(app_server.json["error_code"], "UnsupportedHTTPMethod", "{}", app_server.json);
    assert!(app_server.json["request_id"].is_string(), "{}", app_server.json);
    let unknown = send(client.post(format!("http://{addr}/api/v2/aiagent/nothing/else"))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.json);
    assert_eq!(unknown.json["error_code"], "InvalidAction.NotFound", "{}", unknown.json);
    // The OpenAPI: `{RequestId, HostId, Code, Message}`, chosen by its RPC parameters on `POST /`.
    let long = format!("http://{addr}/?Action=DescribeAIAgentInstance&Version=2020-11-09&X={}", "y".repeat(20_000));
    let openapi = send(client.post(long)).await;
    assert_eq!(openapi.status, StatusCode::URI_TOO_LONG, "{}", openapi.json);
    assert_eq!(openapi.json["Code"], "InvalidParameter.UriTooLong", "{}", openapi.json);
    assert!(openapi.json["HostId"].is_string() && openapi.json["RequestId"].is_string(), "{}", openapi.json);
    let big = "x".repeat(3 * 1024 * 1024);
    let form =
        client.post(format!("http://{addr}/")).header("content-type", "application/x-www-form-urlencoded").body(big);
    let too_large = send(form).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", too_large.json);
    assert_eq!(too_large.json["Code"], "InvalidParameter.TooLarge", "{}", too_large.json);
}

#[tokio::test]
async fn in_process_an_oversized_agora_body_gets_agoras_envelope() {
    let api = common::api(dialects()).await;
    let body = format!("{{\"name\": \"{}\"}}", "n".repeat(100_000));
    let reply =
        api.send("POST", &format!("{AGORA}/{APP_ID}/join"), Some(&basic(APP_KEY, APP_SECRET)), Some(&body)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.text);
    assert_eq!(reply.json["reason"], "InvalidRequestBody", "{}", reply.text);
}

#[tokio::test]
async fn native_paths_keep_the_native_envelope() {
    let api = common::api(dialects()).await;
    let reply = api.get("/v1/nothing").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json["error"]["code"], "not_found", "{}", reply.text);
}

/// A body sent in 64 KiB chunks, with no length.
fn chunks(bytes: Vec<u8>) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    futures_util::stream::iter(chunks)
}
