//! The brute-force brake over real loopback TCP (so the server knows each client's address):
//! repeated wrong credentials from one address are refused with 429 and `Retry-After` in every
//! dialect's envelope, while the right credential from another address still works.

#[path = "../../http/tests/common/mod.rs"]
mod common;

use std::net::{IpAddr, SocketAddr};

use common::{APP_ID, APP_KEY, KEY, Options, SECRET, basic};
use serde_json::Value;

/// Serves the test router on a loopback port through the real listener.
async fn serve() -> (common::Api, SocketAddr) {
    let api = common::api(Options { brake: colloquy_http::brake::BrakeConfig::DEFAULT, ..dialects() }).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = api.router.clone();
    let limits = colloquy_http::listener::HttpLimits::DEFAULT;
    tokio::spawn(colloquy_http::listener::serve(listener, router, limits, dialects().dialects, std::future::pending()));
    (api, addr)
}

/// A client whose requests come from `ip` (any 127.x address is loopback on Linux).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::from(ip)).build().unwrap()
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    json: Value,
}

async fn send(client: &reqwest::Client, url: String, auth: Option<String>, body: &str) -> Answer {
    let mut request = client.post(url).header("content-type", "application/json").body(body.to_owned());
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let json = response.json().await.unwrap_or(Value::Null);
    Answer { status, retry_after, json }
}

#[tokio::test]
async fn wrong_secrets_are_braked_per_address_and_credential() {
    let (_api, addr) = serve().await;
    let attacker = client_from([127, 0, 0, 1]);
    let url = format!("http://{addr}/v1/tokens");
    let body = r#"{"channel":"room","uid":"u"}"#;
    // Five free failures, and the sixth closes the pair.
    for attempt in 1..=6 {
        let answer = send(&attacker, url.clone(), Some(basic(KEY, "guess")), body).await;
        assert_eq!(answer.status, 401, "attempt {attempt}");
    }
    let answer = send(&attacker, url.clone(), Some(basic(KEY, "guess")), body).await;
    assert_eq!((answer.status, answer.json["error"]["code"].as_str()), (429, Some("rate_limited")));
    assert!(answer.retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    // From the same address even the right secret waits: a guess costs the wait.
    let answer = send(&attacker, url.clone(), Some(basic(KEY, SECRET)), body).await;
    assert_eq!(answer.status, 429);
    // The right credential from elsewhere is not locked out.
    let owner = client_from([127, 0, 0, 2]);
    let answer = send(&owner, url.clone(), Some(basic(KEY, SECRET)), body).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
}

#[tokio::test]
async fn every_dialect_brakes_with_retry_after_in_its_envelope() {
    let (_api, addr) = serve().await;
    let attacker = client_from([127, 0, 0, 3]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();

    // Agora: Basic with the wrong customer secret.
    let agora = format!("http://{addr}/api/conversational-ai-agent/v2/projects/{APP_ID}/join");
    let mut last = None;
    for _ in 0..7 {
        last = Some(send(&attacker, agora.clone(), Some(basic(APP_KEY, "guess")), "{}").await);
    }
    let last = last.unwrap();
    assert_eq!((last.status, last.json["reason"].as_str()), (429, Some("TooManyRequests")), "{}", last.json);
    assert!(last.retry_after.is_some());

    // ZEGO: a wrong signature (every answer is HTTP 200; the Code says what happened).
    let zego = |n: u32| {
        format!(
            "http://{addr}/?Action=ListAgents&AppId={APP_ID}&SignatureNonce={n:016x}&Timestamp={now}\
             &SignatureVersion=2.0&Signature=00000000000000000000000000000000"
        )
    };
    for n in 0..6 {
        let answer = send(&attacker, zego(n), None, "{}").await;
        assert_eq!(answer.json["Code"], 100_000_005, "{}", answer.json);
    }
    let answer = send(&attacker, zego(6), None, "{}").await;
    assert_eq!((answer.status, answer.json["Code"].as_u64()), (200, Some(410_000_006)), "{}", answer.json);
    assert!(answer.retry_after.is_some(), "ZEGO's throttling answer carries Retry-After");

    // Alibaba's OpenAPI: a wrong RPC signature.
    let alibaba = |n: u32| {
        format!(
            "http://{addr}/?Action=DescribeAIAgentInstance&Version=2020-11-09&AccessKeyId={APP_KEY}\
             &SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&SignatureNonce=n{n}&Timestamp={}\
             &InstanceId=x&Signature=forged",
            colloquy_dialects::alibaba::signature::format_iso8601(now).replace(':', "%3A")
        )
    };
    for n in 0..6 {
        let answer = send(&attacker, alibaba(n), None, "").await;
        assert_eq!(answer.json["Code"], "SignatureDoesNotMatch", "{}", answer.json);
    }
    let answer = send(&attacker, alibaba(6), None, "").await;
    assert_eq!((answer.status, answer.json["Code"].as_str()), (429, Some("Throttling.User")), "{}", answer.json);
    assert!(answer.retry_after.is_some(), "Alibaba's throttling answer carries Retry-After");
}

/// The test server's options, with the vendor dialects mounted.
fn dialects() -> Options {
    Options { dialects: std::sync::Arc::new(colloquy_dialects::VendorDialects::new()), ..Options::default() }
}
