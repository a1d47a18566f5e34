//! An agent started through a vendor dialect talks like any other, and its conversation reaches the
//! app's webhook receiver in that dialect's form. Here: Agora's REST v2 and NCS webhooks, over a real
//! spoken turn on loopback UDP with the embedded models (`scripts/fetch-models`).

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const APP_ID: &str = "0123456789abcdef0123456789abcdef";
const CUSTOMER_ID: &str = "customer-id";
const CUSTOMER_SECRET: &str = "customer-secret";
const NCS_SECRET: &str = "ncs-secret";

type Deliveries = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A webhook receiver on a loopback port; answers its URL.
async fn receiver(deliveries: Deliveries) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ncs", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/ncs",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let deliveries = deliveries.clone();
            async move {
                deliveries.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn hmac_sha256_hex(key: &str, message: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn an_agent_started_through_agoras_api_answers_a_spoken_question_and_reports_it_in_ncs_webhooks() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deliveries = Deliveries::default();
    let url = runtime.block_on(receiver(deliveries.clone()));
    let config = format!(
        "[[apps]]\nid = \"{APP_ID}\"\nkey = \"{CUSTOMER_ID}\"\nsecret = \"{CUSTOMER_SECRET}\"\n\
         webhook_url = \"{url}\"\nwebhook_secret = \"{NCS_SECRET}\"\n"
    );
    let server = common::start_with_media(&dir.path().join("data"), &config, &[]);
    let base = format!("/api/conversational-ai-agent/v2/projects/{APP_ID}");
    let agora = |method: reqwest::Method, path: String, body: Option<Value>| {
        runtime.block_on(server.call(method, &path, body, (CUSTOMER_ID, CUSTOMER_SECRET)))
    };

    let (status, joined) = agora(
        reqwest::Method::POST,
        format!("{base}/join"),
        Some(json!({
            "name": "e2e-agora",
            "properties": {
                "channel": "agora-room", "token": "", "agent_rtc_uid": "1001", "remote_rtc_uids": ["*"],
                "idle_timeout": 0,
                "llm": {"vendor": "local", "params": {"temperature": 0.0, "max_tokens": 60},
                        "system_messages": [{"role": "system", "content":
                            "You are a helpful voice assistant. Answer in one short sentence."}]},
                "labels": {"case": "e2e"}
            }
        })),
    );
    assert_eq!(status, 200, "{joined}");
    assert_eq!(joined["status"], "RUNNING", "{joined}");
    let id = joined["agent_id"].as_str().unwrap().to_owned();

    // A person joins the channel and asks.
    let question = dir.path().join("question.wav");
    let spoken = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["tts", "What is the capital of France?", "-o", question.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(spoken.status.success(), "{}", String::from_utf8_lossy(&spoken.stderr));
    let call = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["call", "--server", &server.base, "--channel", "agora-room", "--uid", "2002", "--play"])
        .arg(&question)
        .args(["--seconds", "15"])
        // The app's own credentials: its agent is in the app's channel, not the native one's.
        .env("COLLOQUY_API_KEY", CUSTOMER_ID)
        .env("COLLOQUY_API_SECRET", CUSTOMER_SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&call.stderr);
    assert!(call.status.success(), "{stderr}");

    // The agent answered: the turn is in Agora's /turns with its latency breakdown.
    let (status, turns) = agora(reqwest::Method::GET, format!("{base}/agents/{id}/turns"), None);
    assert_eq!(status, 200, "{turns}");
    let voice_turn = turns["turns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["start"]["type"] == "voice_input")
        .unwrap_or_else(|| panic!("no voice turn: {turns}; call: {stderr}"))
        .clone();
    assert!(voice_turn["metrics"]["e2e_latency_ms"].as_u64().is_some(), "{voice_turn}");

    // What the agent heard and said, as Agora's history shows it (Whisper tiny may mishear a word on
    // a busy machine: the webhook must carry whatever was recorded).
    let (status, heard) = agora(reqwest::Method::GET, format!("{base}/agents/{id}/history"), None);
    assert_eq!(status, 200, "{heard}");
    let (status, left) = agora(reqwest::Method::POST, format!("{base}/agents/{id}/leave"), Some(json!({})));
    assert_eq!(status, 200, "{left}");

    // Joined, metrics for the turn, left, the history and the turns, each signed twice.
    let mut events = Vec::new();
    for _ in 0..200 {
        events = deliveries.lock().unwrap().clone();
        if events.iter().any(|(_, body)| body.contains("\"eventType\":112")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let bodies: Vec<Value> = events.iter().map(|(_, body)| serde_json::from_str(body).unwrap()).collect();
    for (headers, body) in &events {
        assert_eq!(headers["agora-signature-v2"].to_str().unwrap(), hmac_sha256_hex(NCS_SECRET, body));
        assert!(headers.contains_key("agora-signature"), "{headers:?}");
    }
    let of_type = |n: u64| bodies.iter().filter(move |b| b["eventType"] == n);
    for (event, count) in [(101, 1), (102, 1), (103, 1), (112, 1)] {
        assert_eq!(of_type(event).count(), count, "event {event}: {bodies:#?}");
    }
    assert!(
        of_type(111).any(|b| b["payload"]["metrics"][0]["turn_id"] == voice_turn["turn_id"]),
        "no 111 for the voice turn: {bodies:#?}"
    );
    for body in &bodies {
        assert_eq!((body["productId"].as_u64(), &body["payload"]["labels"]), (Some(17), &json!({"case": "e2e"})));
    }
    let history = &of_type(103).next().unwrap()["payload"]["contents"];
    assert_eq!(history, &heard["contents"], "the 103 history is not the recorded one");
    let said: Vec<(String, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["role"].as_str().unwrap().to_owned(), c["content"].as_str().unwrap().to_lowercase()))
        .collect();
    assert!(said.iter().any(|(role, text)| role == "user" && text.contains("capital")), "{history}");
    assert!(said.iter().any(|(role, text)| role == "assistant" && !text.is_empty()), "{history}");
    let stopped = of_type(102).next().unwrap();
    assert_eq!(
        (stopped["payload"]["status"].as_str(), stopped["payload"]["message"].as_str()),
        (Some("STOPPED"), Some("OK"))
    );

    // The native API, with the same app's credentials, sees the same agent.
    let (status, native) = runtime.block_on(server.call(
        reqwest::Method::GET,
        &format!("/v1/agents/{id}"),
        None,
        (CUSTOMER_ID, CUSTOMER_SECRET),
    ));
    assert_eq!(
        (status, native["status"].as_str(), native["channel"].as_str()),
        (200, Some("STOPPED"), Some("agora-room"))
    );
}
