//! The Alibaba dialect: the AICallKit app-server API, ARTC tokens on WHIP, the IMS/ICE OpenAPI with
//! both signatures, and the agent callbacks. The signatures here are computed by this file's own
//! code, written from Alibaba's algorithm descriptions, and checked against Alibaba's worked examples.

#[path = "../../http/tests/common/mod.rs"]
mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use colloquy_model::{AgentCommand, AgentId, ConversationEvent, HistoryEntry, SpeakPriority, Speaker, UnixMillis};
use common::{
    APP_ID, APP_KEY, APP_SECRET, Api, OTHER_APP_KEY, OTHER_APP_SECRET, Options, Received, Receiver, Reply,
    WEBHOOK_SECRET, api, basic,
};
use hmac::{KeyInit, Mac};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::Digest;
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------------
// Independent signers.

/// RFC 3986: unreserved characters as they are, every other byte %XX.
fn pct(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sorted_query(params: &[(&str, String)]) -> String {
    let mut pairs: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect();
    pairs.sort();
    pairs.join("&")
}

fn hmac_sha1_b64(key: &str, message: &str) -> String {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn hmac_sha256_hex(key: &str, message: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// RPC v1: `base64(HMAC-SHA1(secret&, METHOD&%2F&pct(sorted query)))`.
fn rpc_signature(method: &str, params: &[(&str, String)], secret: &str) -> String {
    hmac_sha1_b64(&format!("{secret}&"), &format!("{method}&%2F&{}", pct(&sorted_query(params))))
}

/// V3: the Authorization header for a request with these signed headers (lower-case names).
fn v3_authorization(
    method: &str,
    query: &[(&str, String)],
    headers: &[(&str, String)],
    payload_hash: &str,
    key: &str,
    secret: &str,
) -> String {
    let mut headers: Vec<(&str, String)> = headers.to_vec();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let signed = headers.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(";");
    let canonical = format!("{method}\n/\n{}\n{canonical_headers}\n{signed}\n{payload_hash}", sorted_query(query));
    let signature = hmac_sha256_hex(secret, &format!("ACS3-HMAC-SHA256\n{}", sha256_hex(canonical.as_bytes())));
    format!("ACS3-HMAC-SHA256 Credential={key},SignedHeaders={signed},Signature={signature}")
}

#[test]
fn the_test_signers_reproduce_alibabas_worked_examples() {
    // "V3 request structure and signature", fixed-input example.
    let empty = sha256_hex(b"");
    let headers = [
        ("host", "ecs.cn-shanghai.aliyuncs.com".to_owned()),
        ("x-acs-action", "RunInstances".to_owned()),
        ("x-acs-content-sha256", empty.clone()),
        ("x-acs-date", "2023-10-26T10:22:32Z".to_owned()),
        ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d".to_owned()),
        ("x-acs-version", "2014-05-26".to_owned()),
    ];
    let query = [
        ("ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd".to_owned()),
        ("RegionId", "cn-shanghai".to_owned()),
    ];
    assert_eq!(
        v3_authorization("POST", &query, &headers, &empty, "YourAccessKeyId", "YourAccessKeySecret"),
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;\
         x-acs-date;x-acs-signature-nonce;x-acs-version,\
         Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    );
    // The RPC signature page's DescribeRegions example.
    let params = [
        ("Timestamp", "2016-02-23T12:46:24Z".to_owned()),
        ("Format", "XML".to_owned()),
        ("AccessKeyId", "testid".to_owned()),
        ("Action", "DescribeRegions".to_owned()),
        ("SignatureMethod", "HMAC-SHA1".to_owned()),
        ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf".to_owned()),
        ("Version", "2014-05-26".to_owned()),
        ("SignatureVersion", "1.0".to_owned()),
    ];
    assert_eq!(rpc_signature("GET", &params, "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
}

/// ISO 8601 UTC of unix seconds.
fn iso(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (mut y, mut d) = (1970, days);
    loop {
        let len = if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 { 366 } else { 365 };
        if d < len {
            break;
        }
        d -= len;
        y += 1;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let months = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut m = 0;
    while d >= months[m] {
        d -= months[m];
        m += 1;
    }
    format!("{y:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", m + 1, d + 1, rem / 3600, rem % 3600 / 60, rem % 60)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

async fn raw(api: &Api, request: Request<Body>) -> Reply {
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, json, text }
}

/// An RPC-signed OpenAPI call with its parameters in the query.
async fn rpc_call(api: &Api, key: &str, secret: &str, action: &str, params: &[(&str, &str)]) -> Reply {
    rpc_call_at(api, key, secret, action, params, now(), &nonce()).await
}

async fn rpc_call_at(
    api: &Api,
    key: &str,
    secret: &str,
    action: &str,
    params: &[(&str, &str)],
    time: i64,
    nonce: &str,
) -> Reply {
    let mut all: Vec<(&str, String)> = vec![
        ("Action", action.to_owned()),
        ("Version", "2020-11-09".to_owned()),
        ("Format", "JSON".to_owned()),
        ("AccessKeyId", key.to_owned()),
        ("SignatureMethod", "HMAC-SHA1".to_owned()),
        ("SignatureVersion", "1.0".to_owned()),
        ("SignatureNonce", nonce.to_owned()),
        ("Timestamp", iso(time)),
    ];
    all.extend(params.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let signature = rpc_signature("POST", &all, secret);
    all.push(("Signature", signature));
    let uri = format!("/?{}", sorted_query(&all));
    raw(api, Request::builder().method("POST").uri(uri).body(Body::empty()).unwrap()).await
}

/// A V3-signed OpenAPI call with the parameters in a form body.
async fn v3_call(api: &Api, key: &str, secret: &str, action: &str, params: &[(&str, &str)]) -> Reply {
    let body = params.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect::<Vec<_>>().join("&");
    let hash = sha256_hex(body.as_bytes());
    let headers = [
        ("host", "ice.cn-shanghai.aliyuncs.com".to_owned()),
        ("x-acs-action", action.to_owned()),
        ("x-acs-content-sha256", hash.clone()),
        ("x-acs-date", iso(now())),
        ("x-acs-signature-nonce", nonce()),
        ("x-acs-version", "2020-11-09".to_owned()),
        ("content-type", "application/x-www-form-urlencoded".to_owned()),
    ];
    let authorization = v3_authorization("POST", &[], &headers, &hash, key, secret);
    let mut request = Request::builder().method("POST").uri("/").header(header::AUTHORIZATION, authorization);
    for (name, value) in &headers {
        request = request.header(*name, value);
    }
    raw(api, request.body(Body::from(body)).unwrap()).await
}

#[track_caller]
fn assert_ali_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json["Code"], code, "{}", reply.text);
    assert!(reply.json["RequestId"].as_str().is_some_and(|r| !r.is_empty()), "{}", reply.text);
    assert!(reply.json["Message"].as_str().is_some_and(|m| !m.is_empty()), "{}", reply.text);
}

async fn app_post(api: &Api, action: &str, body: &Value) -> Reply {
    api.send("POST", &format!("/api/v2/aiagent/{action}"), Some(&basic(APP_KEY, APP_SECRET)), Some(&body.to_string()))
        .await
}

async fn native(api: &Api, id: &str) -> Value {
    let reply = api.send("GET", &format!("/v1/agents/{id}"), Some(&basic(APP_KEY, APP_SECRET)), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json
}

fn decode_token(token: &str) -> Value {
    serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(token).unwrap()).unwrap()
}

/// Checks an rtc_auth_token against the documented hash, computed here.
#[track_caller]
fn assert_token_for(token: &str, channel: &str, user: &str) -> Value {
    let json = decode_token(token);
    assert_eq!(json["appid"], APP_ID);
    assert_eq!(json["channelid"], channel);
    assert_eq!(json["userid"], user);
    // Our tokens carry a MAC over the separated fields in `nonce` (see docs/security.md); the
    // vendor's hash below is unchanged, so any ARTC client takes them.
    let nonce = json["nonce"].as_str().unwrap();
    assert!(nonce.starts_with("cq1-") && nonce.len() == 4 + 64, "{nonce}");
    assert_eq!(json["gslb"], json!(["https://gw.rtn.aliyuncs.com"]));
    let timestamp = json["timestamp"].as_u64().unwrap();
    let expected = sha256_hex(format!("{APP_ID}{APP_SECRET}{channel}{user}{timestamp}").as_bytes());
    assert_eq!(json["token"], expected);
    json
}

// ---------------------------------------------------------------------------------------------
// The app-server API.

/// The body the AUI web client sends (`standard.ts`), with an agent_config.
fn generate_body() -> Value {
    json!({
        "user_id": "user_1001",
        "ai_agent_id": "39f8e0bc005e4f309379701645f4****",
        "workflow_type": "VoiceChat",
        "expire": 86400,
        "region": "cn-shanghai",
        "session_id": "session-1",
        "user_data": "{\"Key\":\"Value\"}",
        "agent_config": json!({
            "Greeting": "Hello, how can I help?",
            "MaxIdleTime": 120,
            "AsrConfig": { "AsrMaxSilence": 800, "VadDuration": 300 },
            "InterruptConfig": { "EnableVoiceInterrupt": true, "InterruptWords": ["stop", "wait"] },
            "LlmConfig": {
                "LlmSystemPrompt": "You are a travel agent.",
                "LlmHistory": [{ "Role": "user", "Content": "Hi" }, { "Role": "assistant", "Content": "Hello!" }],
                "LlmHistoryLimit": 12
            },
            "TtsConfig": { "VoiceId": "longxiaochun", "SpeechRate": 1.2 },
            "AutoSpeechConfig": { "UserIdle": { "WaitTime": 8000, "Messages": [{ "Text": "Are you there?", "Probability": 1 }] } },
            "Volume": 200
        }).to_string(),
    })
}

#[tokio::test]
async fn generate_ai_agent_call_starts_an_agent_and_answers_the_documented_shape() {
    let api = api(dialects()).await;
    let reply = app_post(&api, "generateAIAgentCall", &generate_body()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = &reply.json;
    assert_eq!(body["code"], 200);
    assert_eq!(body["ai_agent_id"], "39f8e0bc005e4f309379701645f4****");
    assert_eq!(body["workflow_type"], "VoiceChat");
    assert!(body["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    let channel = body["channel_id"].as_str().unwrap();
    let agent_user = body["ai_agent_user_id"].as_str().unwrap();
    let id = body["ai_agent_instance_id"].as_str().unwrap();
    for value in [channel, agent_user] {
        assert_eq!(value.len(), 32, "a UUID without dashes: {value}");
        assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let token = assert_token_for(body["rtc_auth_token"].as_str().unwrap(), channel, "user_1001");
    let expiry = token["timestamp"].as_i64().unwrap();
    assert!((expiry - now() - 86400).abs() < 10, "expire is in seconds: {expiry}");

    // The mapping is visible through the native API, as the same app.
    let agent = native(&api, id).await;
    assert_eq!(agent["status"], "RUNNING", "{agent}");
    assert_eq!(agent["channel"], channel);
    let config = &agent["config"];
    assert_eq!(config["agent_uid"], agent_user, "{config}");
    assert_eq!(config["remote_uids"], json!(["user_1001"]), "{config}");
    assert_eq!(config["idle_timeout"], 120, "{config}");
    assert_eq!(config["greeting"]["text"], "Hello, how can I help?", "{config}");
    assert_eq!(config["max_history"], 12, "{config}");
    assert_eq!(config["turn_detection"]["silence_duration_ms"], 800, "{config}");
    assert_eq!(config["interruption"]["min_speech_ms"], 300, "{config}");
    assert_eq!(config["interruption"]["mode"], "keywords", "{config}");
    assert_eq!(config["interruption"]["keywords"], json!(["stop", "wait"]), "{config}");
    assert_eq!(config["silence_prompt"]["timeout_ms"], 8000, "{config}");
    assert_eq!(config["silence_prompt"]["content"], "Are you there?", "{config}");
    let speed = config["tts"]["speed"].as_f64().unwrap();
    assert!((speed - 1.2).abs() < 1e-6, "{config}");
    let messages = config["llm"]["system_messages"].to_string();
    assert!(messages.contains("You are a travel agent.") && messages.contains("Hello!"), "{messages}");

    // describe echoes what was sent.
    let reply = app_post(&api, "describeAIAgentInstance", &json!({ "ai_agent_instance_id": id })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["code"], 200);
    assert_eq!(reply.json["status"], "Executing");
    assert_eq!(reply.json["user_data"], "{\"Key\":\"Value\"}");
    assert_eq!(reply.json["call_log_url"], "");
    let runtime: Value = serde_json::from_str(reply.json["runtime_config"].as_str().unwrap()).unwrap();
    assert_eq!(runtime["ChannelId"], channel);
    assert!(reply.json["agent_config"].as_str().unwrap().contains("MaxIdleTime"));
    // No template_config was given: "{}", which the AUI web client can JSON.parse.
    assert_eq!(reply.json["template_config"], "{}");

    // stop, then describe says Finished and the native API STOPPED.
    let reply = app_post(&api, "stopAIAgentInstance", &json!({ "ai_agent_instance_id": id })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!((reply.json["code"].clone(), reply.json["result"].clone()), (json!(200), json!(true)));
    let reply = app_post(&api, "describeAIAgentInstance", &json!({ "ai_agent_instance_id": id })).await;
    assert_eq!(reply.json["status"], "Finished", "{}", reply.text);
    assert_eq!(native(&api, id).await["status"], "STOPPED");
}

#[tokio::test]
async fn app_server_accepts_v1_paths_and_the_pascal_case_action() {
    let api = api(dialects()).await;
    let reply = api
        .send(
            "POST",
            "/api/v1/aiagent/GenerateAIAgentCall",
            Some(&basic(APP_KEY, APP_SECRET)),
            Some(r#"{"user_id":"u1","ai_agent_id":"a1"}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.json["ai_agent_instance_id"].as_str().unwrap();
    // Default: VoiceChat, the vendor's 600 s MaxIdleTime.
    assert_eq!(reply.json["workflow_type"], "VoiceChat");
    assert_eq!(native(&api, id).await["config"]["idle_timeout"], 600);
}

/// `expire` is in hours on /api/v1 (the AUI app-server page: `"expire": 24`, default 24) and in
/// seconds on /api/v2 (the current clients send 86400): both are a day.
#[tokio::test]
async fn app_server_expire_is_hours_on_v1_and_seconds_on_v2() {
    let api = api(dialects()).await;
    for (path, expire) in [("/api/v1/aiagent/generateAIAgentCall", 24), ("/api/v2/aiagent/generateAIAgentCall", 86400)]
    {
        let body = json!({ "user_id": "u1", "ai_agent_id": "a1", "workflow_type": "VoiceChat", "expire": expire });
        let reply = api.send("POST", path, Some(&basic(APP_KEY, APP_SECRET)), Some(&body.to_string())).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let token = decode_token(reply.json["rtc_auth_token"].as_str().unwrap());
        let lifetime = token["timestamp"].as_i64().unwrap() - now();
        assert!((lifetime - 86400).abs() < 10, "{path}: a day, not {lifetime} s");
    }
    let reply = api
        .send(
            "POST",
            "/api/v1/aiagent/getRtcAuthToken",
            Some(&basic(APP_KEY, APP_SECRET)),
            Some(r#"{"user_id":"u1","channel_id":"c1","expire":169}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert!(reply.json["message"].as_str().unwrap().contains("hours"), "{}", reply.text);
}

#[tokio::test]
async fn app_server_refuses_bad_credentials_with_403() {
    let api = api(dialects()).await;
    for auth in
        [Some(basic(APP_KEY, "wrong")), Some(basic(APP_KEY, OTHER_APP_SECRET)), Some("Bearer abc".to_owned()), None]
    {
        for action in ["generateAIAgentCall", "describeAIAgentInstance", "getRtcAuthToken"] {
            let reply = api
                .send("POST", &format!("/api/v2/aiagent/{action}"), auth.as_deref(), Some(&generate_body().to_string()))
                .await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
            assert_eq!(reply.json["code"], 403);
            assert_eq!(reply.json["error_code"], "Forbidden");
            assert!(reply.json["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(reply.json["request_id"].is_string());
        }
    }
    assert!(
        api.store
            .list_agents(&colloquy_model::AppId::new(APP_ID).unwrap(), &Default::default(), None, 10)
            .await
            .unwrap()
            .agents
            .is_empty()
    );
}

#[tokio::test]
async fn app_server_validates_its_fields() {
    let api = api(dialects()).await;
    let cases = [
        (json!({ "ai_agent_id": "a1" }), "MissingParameter", "user_id"),
        (json!({ "user_id": "u 1" }), "InvalidParameter", "user_id"),
        (json!({ "user_id": "u1", "expire": 0 }), "InvalidParameter", "expire"),
        (json!({ "user_id": "u1", "agent_config": "{not json" }), "InvalidParameter", "agent_config"),
        (
            json!({ "user_id": "u1", "agent_config": "{\"AsrConfig\":{\"AsrMaxSilence\":5000}}" }),
            "InvalidParameter",
            "agent_config.AsrConfig.AsrMaxSilence",
        ),
        (
            json!({ "user_id": "u1", "agent_config": "{\"AsrConfig\":{\"AsrMaxSilence\":\"long\"}}" }),
            "InvalidParameter",
            "agent_config.AsrConfig.AsrMaxSilence",
        ),
        (
            json!({ "user_id": "u1", "agent_config": "{\"InterruptConfig\":{\"NoInterruptMode\":\"later\"}}" }),
            "InvalidParameter",
            "NoInterruptMode",
        ),
        (
            json!({ "user_id": "u1", "agent_config": "{\"EnablePushToTalk\":true}" }),
            "InvalidParameter",
            "EnablePushToTalk",
        ),
        (json!({ "user_id": "u1", "workflow_type": "Chat" }), "InvalidParameter", "workflow_type"),
    ];
    for (body, code, names) in cases {
        let reply = app_post(&api, "generateAIAgentCall", &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.text);
        assert_eq!(reply.json["code"], 400, "{}", reply.text);
        assert_eq!(reply.json["error_code"], code, "{body}: {}", reply.text);
        assert!(reply.json["message"].as_str().unwrap().contains(names), "{body}: {}", reply.text);
    }
    let reply = api
        .send("POST", "/api/v2/aiagent/generateAIAgentCall", Some(&basic(APP_KEY, APP_SECRET)), Some("{\"user_id\":"))
        .await;
    assert_eq!((reply.status, reply.json["error_code"].clone()), (StatusCode::BAD_REQUEST, json!("InvalidParameter")));
    let reply = app_post(&api, "describeAIAgentInstance", &json!({})).await;
    assert_eq!(reply.json["error_code"], "MissingParameter", "{}", reply.text);
    assert!(reply.json["message"].as_str().unwrap().contains("ai_agent_instance_id"));
    let reply = app_post(&api, "describeAIAgentInstance", &json!({ "ai_agent_instance_id": "nope" })).await;
    assert_eq!((reply.status, reply.json["error_code"].clone()), (StatusCode::NOT_FOUND, json!("AgentNotFound")));
    let reply = app_post(&api, "stopAIAgentInstance", &json!({ "ai_agent_instance_id": "nope" })).await;
    assert_eq!((reply.status, reply.json["error_code"].clone()), (StatusCode::NOT_FOUND, json!("AgentNotFound")));
    let reply = app_post(&api, "cosyVoiceClone", &json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
}

#[tokio::test]
async fn avatar_and_vision_workflows_are_refused_clearly() {
    let api = api(dialects()).await;
    for workflow in ["AvatarChat3D", "VisionChat"] {
        let mut body = generate_body();
        body["workflow_type"] = json!(workflow);
        let reply = app_post(&api, "generateAIAgentCall", &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert_eq!(reply.json["error_code"], "InvalidParameter");
        let message = reply.json["message"].as_str().unwrap();
        assert!(message.contains(workflow) && message.contains("not supported"), "{message}");
    }
    let body = json!({ "user_id": "u1", "template_config": "{\"AvatarChat3D\":{\"AvatarId\":\"a\"}}" });
    let reply = app_post(&api, "generateAIAgentCall", &body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert!(reply.json["message"].as_str().unwrap().contains("AvatarChat3D"));
}

#[tokio::test]
async fn start_and_update_through_the_app_server() {
    let api = api(Options { media: true, ..dialects() }).await;
    let body = json!({
        "ai_agent_id": "a1", "channel_id": "room-42", "user_id": "user_7",
        "template_config": "{\"VoiceChat\":{\"Greeting\":\"Hi there\",\"MaxIdleTime\":90,\"EnableVoiceInterrupt\":false}}",
    });
    let reply = app_post(&api, "startAIAgentInstance", &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["channel_id"], "room-42");
    assert_token_for(reply.json["rtc_auth_token"].as_str().unwrap(), "room-42", "user_7");
    let id = reply.json["ai_agent_instance_id"].as_str().unwrap().to_owned();
    let config = native(&api, &id).await["config"].clone();
    assert_eq!(config["greeting"]["text"], "Hi there", "{config}");
    assert_eq!(config["idle_timeout"], 90);
    assert_eq!(config["interruption"]["enabled"], false, "{config}");

    let update = json!({
        "ai_agent_instance_id": id,
        "agent_config": "{\"LlmConfig\":{\"LlmSystemPrompt\":\"Be brief.\"},\"TtsConfig\":{\"SpeechRate\":0.8,\"VoiceId\":\"x\"}}",
    });
    let reply = app_post(&api, "updateAIAgentInstance", &update).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["result"], true);
    let received = api.media.as_ref().unwrap().received(&id);
    let Some(Received::Update(update)) = received.last() else { panic!("no update: {received:?}") };
    assert_eq!(update.speed, Some(0.8));
    assert_eq!(update.system_messages.as_ref().unwrap()[0].content, "Be brief.");
    // What cannot change on a running instance is refused, not dropped.
    let update = json!({ "ai_agent_instance_id": id, "agent_config": "{\"AsrConfig\":{\"AsrMaxSilence\":600}}" });
    let reply = app_post(&api, "updateAIAgentInstance", &update).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert!(reply.json["message"].as_str().unwrap().contains("AsrConfig"));
    // The AICallKit clients' voice-interrupt switch (off at start), as a flat template: honoured
    // mid-call.
    let switch =
        json!({ "ai_agent_instance_id": id, "template_config": "{\"VoiceChat\":{\"EnableVoiceInterrupt\":true}}" });
    let reply = app_post(&api, "updateAIAgentInstance", &switch).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let received = api.media.as_ref().unwrap().received(&id);
    let Some(Received::Update(update)) = received.last() else { panic!("no update: {received:?}") };
    assert!(update.interruption.as_ref().unwrap_or_else(|| panic!("{received:?}")).enabled, "{update:?}");
    let agent = native(&api, &id).await;
    assert_eq!(agent["config"]["interruption"]["enabled"], true, "the record says so too");
}

// ---------------------------------------------------------------------------------------------
// ARTC tokens on WHIP.

async fn whip(api: &Api, token: &str) -> Reply {
    let request = Request::builder()
        .method("POST")
        .uri("/rtc/whip")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(Body::from("v=0\r\n"))
        .unwrap();
    raw(api, request).await
}

#[tokio::test]
async fn rtc_auth_tokens_pass_whip_auth_and_forged_or_expired_ones_do_not() {
    let api = api(dialects()).await;
    let reply = app_post(&api, "getRtcAuthToken", &json!({ "user_id": "user_9", "channel_id": "room-9" })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["code"], 200);
    let token = reply.json["rtc_auth_token"].as_str().unwrap().to_owned();
    let json = assert_token_for(&token, "room-9", "user_9");
    assert_eq!(reply.json["timestamp"], json["timestamp"]);

    // Auth passes; this node runs no channel server, so the join itself fails later.
    let reply = whip(&api, &token).await;
    assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);

    // A token made here, independently, with the documented formula.
    let make = |channel: &str, user: &str, timestamp: i64, key: &str| {
        let digest = sha256_hex(format!("{APP_ID}{key}{channel}{user}{timestamp}").as_bytes());
        let json = json!({ "appid": APP_ID, "channelid": channel, "userid": user, "nonce": "", "timestamp": timestamp,
                           "gslb": ["https://gw.rtn.aliyuncs.com"], "token": digest });
        base64::engine::general_purpose::STANDARD.encode(json.to_string())
    };
    assert_ne!(whip(&api, &make("room-1", "u1", now() + 600, APP_SECRET)).await.status, StatusCode::UNAUTHORIZED);
    for (what, forged) in [
        ("expired", make("room-1", "u1", now() - 1, APP_SECRET)),
        ("wrong key", make("room-1", "u1", now() + 600, "not-the-secret")),
        ("garbage", "bm90IGEgdG9rZW4=".to_owned()),
    ] {
        let reply = whip(&api, &forged).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}: {}", reply.text);
    }
    // Tampering with the channel after signing.
    let mut json = decode_token(&token);
    json["channelid"] = json!("other-room");
    let tampered = base64::engine::general_purpose::STANDARD.encode(json.to_string());
    assert_eq!(whip(&api, &tampered).await.status, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// The OpenAPI.

#[tokio::test]
async fn openapi_generate_describe_list_stop_with_the_rpc_signature() {
    let api = api(dialects()).await;
    let agent_config = json!({ "Greeting": "Welcome!", "MaxIdleTime": 300, "LlmConfig": { "LlmHistoryLimit": 6 } });
    let reply = rpc_call(
        &api,
        APP_KEY,
        APP_SECRET,
        "GenerateAIAgentCall",
        &[
            ("AIAgentId", "agent-A"),
            ("UserId", "caller_1"),
            ("Expire", "7200"),
            ("SessionId", "sess-1"),
            ("UserData", "{\"order\":42}"),
            ("AgentConfig", &agent_config.to_string()),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    for field in ["AIAgentUserId", "ChannelId", "InstanceId", "RequestId", "Token", "UserId"] {
        assert!(reply.json[field].as_str().is_some_and(|v| !v.is_empty()), "{field}: {}", reply.text);
    }
    assert_eq!(reply.json["UserId"], "caller_1");
    let channel = reply.json["ChannelId"].as_str().unwrap().to_owned();
    let token = assert_token_for(reply.json["Token"].as_str().unwrap(), &channel, "caller_1");
    assert!((token["timestamp"].as_i64().unwrap() - now() - 7200).abs() < 10);
    let id = reply.json["InstanceId"].as_str().unwrap().to_owned();
    let config = native(&api, &id).await["config"].clone();
    assert_eq!((config["greeting"]["text"].clone(), config["idle_timeout"].clone()), (json!("Welcome!"), json!(300)));
    assert_eq!(config["max_history"], 6);

    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "DescribeAIAgentInstance", &[("InstanceId", &id)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let instance = &reply.json["Instance"];
    assert_eq!(instance["Status"], "Executing");
    assert_eq!(instance["UserData"], "{\"order\":42}");
    assert_eq!(instance["SessionId"], "sess-1");
    assert_eq!(instance["AgentConfig"]["Greeting"], "Welcome!");
    assert_eq!(instance["RuntimeConfig"]["VoiceChat"]["ChannelId"], channel.as_str());
    assert!(instance["GmtCreate"].as_str().unwrap().ends_with('Z'));
    assert!(instance.get("CallLogUrl").is_some());

    // A second agent of another AIAgentId is not listed under this one.
    let other = rpc_call(&api, APP_KEY, APP_SECRET, "GenerateAIAgentCall", &[("AIAgentId", "agent-B")]).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "ListAIAgentInstance", &[("AIAgentId", "agent-A")]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let instances = reply.json["Instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{}", reply.text);
    assert_eq!(instances[0]["InstanceId"], id.as_str());
    let reply = rpc_call(
        &api,
        APP_KEY,
        APP_SECRET,
        "ListAIAgentInstance",
        &[("AIAgentId", "agent-A"), ("StartTime", &iso(now() + 3600))],
    )
    .await;
    assert_eq!(reply.json["Instances"], json!([]), "{}", reply.text);

    // Apps see only their own instances.
    let reply =
        rpc_call(&api, OTHER_APP_KEY, OTHER_APP_SECRET, "DescribeAIAgentInstance", &[("InstanceId", &id)]).await;
    assert_ali_error(&reply, StatusCode::NOT_FOUND, "InvalidInstanceId.NotFound");

    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "StopAIAgentInstance", &[("InstanceId", &id)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.json["RequestId"].is_string());
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "DescribeAIAgentInstance", &[("InstanceId", &id)]).await;
    assert_eq!(reply.json["Instance"]["Status"], "Finished");
    assert_eq!(native(&api, &id).await["status"], "STOPPED");
}

#[tokio::test]
async fn openapi_start_update_with_the_v3_signature() {
    let api = api(Options { media: true, ..dialects() }).await;
    let runtime = json!({ "AgentUserId": "agent_1", "ChannelId": "room-v3" }).to_string();
    let agent_config = json!({ "Greeting": "Hi from V3", "TurnDetectionConfig": { "Mode": "Semantic" } }).to_string();
    let reply = v3_call(
        &api,
        APP_KEY,
        APP_SECRET,
        "StartAIAgentInstance",
        &[("AIAgentId", "agent-A"), ("RuntimeConfig", &runtime), ("AgentConfig", &agent_config)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.json["InstanceId"].as_str().unwrap().to_owned();
    assert!(reply.json["RequestId"].is_string());
    let agent = native(&api, &id).await;
    assert_eq!((agent["channel"].clone(), agent["config"]["agent_uid"].clone()), (json!("room-v3"), json!("agent_1")));
    assert_eq!(agent["config"]["greeting"]["text"], "Hi from V3");
    // Semantic turn detection cannot run here: the agent runs with VAD, and its record says so.
    let warnings = agent["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w["field"] == "AgentConfig.TurnDetectionConfig.Mode"), "{warnings:?}");

    let update = json!({ "LlmConfig": { "LlmSystemPrompt": "New prompt" } }).to_string();
    let reply =
        v3_call(&api, APP_KEY, APP_SECRET, "UpdateAIAgentInstance", &[("InstanceId", &id), ("AgentConfig", &update)])
            .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let received = api.media.as_ref().unwrap().received(&id);
    assert!(
        matches!(received.last(), Some(Received::Update(u)) if u.system_messages.as_ref().unwrap()[0].content == "New prompt"),
        "{received:?}"
    );
    // Describe shows the running settings, the update included (the AUI clients read them back).
    let update = json!({ "TtsConfig": { "SpeechRate": 1.5 } }).to_string();
    let params = [("InstanceId", id.as_str()), ("AgentConfig", update.as_str())];
    assert_eq!(v3_call(&api, APP_KEY, APP_SECRET, "UpdateAIAgentInstance", &params).await.status, StatusCode::OK);
    let reply = v3_call(&api, APP_KEY, APP_SECRET, "DescribeAIAgentInstance", &[("InstanceId", &id)]).await;
    let config = &reply.json["Instance"]["AgentConfig"];
    assert_eq!(config["LlmConfig"]["LlmSystemPrompt"], "New prompt", "{config}");
    assert_eq!(config["TtsConfig"]["SpeechRate"], 1.5, "{config}");
    assert_eq!(config["Greeting"], "Hi from V3", "what was sent and not changed stays");

    // `VoiceChat` as a JSON string, as Alibaba's AUI Java sample server sends it.
    let nested =
        json!({"VoiceChat": json!({"AgentUserId": "agent_s", "ChannelId": "room-string"}).to_string()}).to_string();
    let reply =
        v3_call(&api, APP_KEY, APP_SECRET, "StartAIAgentInstance", &[("AIAgentId", "a"), ("RuntimeConfig", &nested)])
            .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let agent = native(&api, reply.json["InstanceId"].as_str().unwrap()).await;
    assert_eq!(
        (agent["channel"].clone(), agent["config"]["agent_uid"].clone()),
        (json!("room-string"), json!("agent_s"))
    );

    // RuntimeConfig.AuthToken, when given, must be the agent's token for that channel.
    let runtime =
        json!({ "AgentUserId": "agent_2", "ChannelId": "room-v3", "AuthToken": "bm90IGEgdG9rZW4=" }).to_string();
    let reply =
        v3_call(&api, APP_KEY, APP_SECRET, "StartAIAgentInstance", &[("AIAgentId", "a"), ("RuntimeConfig", &runtime)])
            .await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "InvalidParameter");
    let reply =
        v3_call(&api, APP_KEY, APP_SECRET, "StartAIAgentInstance", &[("AIAgentId", "a"), ("RuntimeConfig", "{}")])
            .await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "MissingParameter");
    assert!(reply.json["Message"].as_str().unwrap().contains("ChannelId"));
}

#[tokio::test]
async fn openapi_refuses_bad_signatures_stale_times_unknown_keys_and_replays() {
    let api = api(dialects()).await;
    // RPC with the wrong secret.
    let reply = rpc_call(&api, APP_KEY, "wrong-secret", "DescribeAIAgentInstance", &[("InstanceId", "x")]).await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "SignatureDoesNotMatch");
    // V3 with the wrong secret.
    let reply = v3_call(&api, APP_KEY, "wrong-secret", "DescribeAIAgentInstance", &[("InstanceId", "x")]).await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "SignatureDoesNotMatch");
    // Unknown AccessKeyId, both styles.
    let reply = rpc_call(&api, "nobody", APP_SECRET, "DescribeAIAgentInstance", &[("InstanceId", "x")]).await;
    assert_ali_error(&reply, StatusCode::NOT_FOUND, "InvalidAccessKeyId.NotFound");
    let reply = v3_call(&api, "nobody", APP_SECRET, "DescribeAIAgentInstance", &[("InstanceId", "x")]).await;
    assert_ali_error(&reply, StatusCode::NOT_FOUND, "InvalidAccessKeyId.NotFound");
    // A timestamp 20 minutes off, either way.
    for offset in [-1200, 1200] {
        let reply = rpc_call_at(
            &api,
            APP_KEY,
            APP_SECRET,
            "DescribeAIAgentInstance",
            &[("InstanceId", "x")],
            now() + offset,
            &nonce(),
        )
        .await;
        assert_ali_error(&reply, StatusCode::BAD_REQUEST, "InvalidTimeStamp.Expired");
    }
    // A nonce used twice.
    let used = nonce();
    let first =
        rpc_call_at(&api, APP_KEY, APP_SECRET, "DescribeAIAgentInstance", &[("InstanceId", "x")], now(), &used).await;
    assert_ali_error(&first, StatusCode::NOT_FOUND, "InvalidInstanceId.NotFound");
    let again =
        rpc_call_at(&api, APP_KEY, APP_SECRET, "DescribeAIAgentInstance", &[("InstanceId", "x")], now(), &used).await;
    assert_ali_error(&again, StatusCode::BAD_REQUEST, "SignatureNonceUsed");
    // A parameter changed after signing.
    let mut all: Vec<(&str, String)> = vec![
        ("Action", "DescribeAIAgentInstance".to_owned()),
        ("Version", "2020-11-09".to_owned()),
        ("AccessKeyId", APP_KEY.to_owned()),
        ("SignatureMethod", "HMAC-SHA1".to_owned()),
        ("SignatureVersion", "1.0".to_owned()),
        ("SignatureNonce", nonce()),
        ("Timestamp", iso(now())),
        ("InstanceId", "x".to_owned()),
    ];
    let signature = rpc_signature("POST", &all, APP_SECRET);
    all.push(("Signature", signature));
    all[7].1 = "y".to_owned();
    let uri = format!("/?{}", sorted_query(&all));
    let reply = raw(&api, Request::builder().method("POST").uri(uri).body(Body::empty()).unwrap()).await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "SignatureDoesNotMatch");
    // No signature at all.
    let reply = raw(
        &api,
        Request::builder()
            .method("POST")
            .uri("/?Action=DescribeAIAgentInstance&Version=2020-11-09&InstanceId=x")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "MissingParameter");
    // A wrong version.
    let reply = raw(
        &api,
        Request::builder()
            .method("POST")
            .uri("/?Action=DescribeAIAgentInstance&Version=2017-01-01")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "InvalidVersion");
}

/// An action, its parameters, and what the error message must name.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[tokio::test]
async fn openapi_validates_parameters() {
    let api = api(Options { media: true, ..dialects() }).await;
    for action in [
        "StopAIAgentInstance",
        "DescribeAIAgentInstance",
        "UpdateAIAgentInstance",
        "SendAIAgentSpeech",
        "SendAIAgentText",
    ] {
        let reply = rpc_call(&api, APP_KEY, APP_SECRET, action, &[("Text", "hi")]).await;
        assert_ali_error(&reply, StatusCode::BAD_REQUEST, "MissingParameter");
        assert!(reply.json["Message"].as_str().unwrap().contains("\"InstanceId\""), "{}", reply.text);
    }
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "GenerateAIAgentCall", &[]).await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "MissingParameter");
    assert!(reply.json["Message"].as_str().unwrap().contains("AIAgentId"));
    let cases: [Case; 4] = [
        ("GenerateAIAgentCall", &[("AIAgentId", "a"), ("Expire", "604801")], "Expire"),
        (
            "GenerateAIAgentCall",
            &[("AIAgentId", "a"), ("AgentConfig", "{\"TtsConfig\":{\"SpeechRate\":3}}")],
            "SpeechRate",
        ),
        (
            "GenerateAIAgentCall",
            &[("AIAgentId", "a"), ("AgentConfig", "{\"AsrConfig\":{\"AsrLanguageId\":\"xx\"}}")],
            "AsrLanguageId",
        ),
        ("ListAIAgentInstance", &[("AIAgentId", "a"), ("PageSize", "101")], "PageSize"),
    ];
    for (action, params, names) in cases {
        let reply = rpc_call(&api, APP_KEY, APP_SECRET, action, params).await;
        assert_ali_error(&reply, StatusCode::BAD_REQUEST, "InvalidParameter");
        assert!(reply.json["Message"].as_str().unwrap().contains(names), "{}", reply.text);
    }
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "ForwardAIAgentCall", &[]).await;
    assert_ali_error(&reply, StatusCode::NOT_FOUND, "InvalidAction.NotFound");
}

#[tokio::test]
async fn speech_and_text_reach_the_agent_as_commands() {
    let api = api(Options { media: true, ..dialects() }).await;
    let reply =
        rpc_call(&api, APP_KEY, APP_SECRET, "GenerateAIAgentCall", &[("AIAgentId", "a"), ("UserId", "u1")]).await;
    let id = reply.json["InstanceId"].as_str().unwrap().to_owned();
    let speak = |text: &'static str, interrupt: &'static str| {
        let id = id.clone();
        let api = &api;
        async move {
            rpc_call(
                api,
                APP_KEY,
                APP_SECRET,
                "SendAIAgentSpeech",
                &[("InstanceId", &id), ("Text", text), ("EnableInterrupt", interrupt)],
            )
            .await
        }
    };
    assert_eq!(speak("Your order shipped.", "true").await.status, StatusCode::OK);
    assert_eq!(speak("One more thing.", "false").await.status, StatusCode::OK);
    let reply = rpc_call(
        &api,
        APP_KEY,
        APP_SECRET,
        "SendAIAgentText",
        &[("InstanceId", &id), ("Text", "What is the weather?")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        api.media.as_ref().unwrap().received(&id),
        [
            Received::Command(AgentCommand::Speak {
                text: "Your order shipped.".into(),
                priority: SpeakPriority::Interrupt,
                interruptible: true
            }),
            Received::Command(AgentCommand::Speak {
                text: "One more thing.".into(),
                priority: SpeakPriority::Append,
                interruptible: true
            }),
            Received::Command(AgentCommand::think("What is the weather?")),
        ]
    );
    let long = "x".repeat(1025);
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "SendAIAgentSpeech", &[("InstanceId", &id), ("Text", &long)]).await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "InvalidParameter");
    let reply = rpc_call(
        &api,
        APP_KEY,
        APP_SECRET,
        "SendAIAgentSpeech",
        &[("InstanceId", &id), ("Text", "https://x/a.mp3"), ("Type", "AudioUrl")],
    )
    .await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "InvalidParameter");
    assert!(reply.json["Message"].as_str().unwrap().contains("AudioUrl"));
    // After stop, commands are refused.
    rpc_call(&api, APP_KEY, APP_SECRET, "StopAIAgentInstance", &[("InstanceId", &id)]).await;
    let reply = speak("Too late.", "true").await;
    assert_ali_error(&reply, StatusCode::FORBIDDEN, "Forbidden.InstanceNotExecuting");
}

#[tokio::test]
async fn without_media_speech_is_refused_with_an_alibaba_error() {
    let api = api(dialects()).await;
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "GenerateAIAgentCall", &[("AIAgentId", "a")]).await;
    let id = reply.json["InstanceId"].as_str().unwrap().to_owned();
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "SendAIAgentText", &[("InstanceId", &id), ("Text", "hi")]).await;
    assert_ali_error(&reply, StatusCode::FORBIDDEN, "Forbidden.NoMediaSession");
}

#[tokio::test]
async fn dialogues_come_from_the_history_of_the_session() {
    let api = api(dialects()).await;
    let start = |session: &'static str| {
        let api = &api;
        async move {
            let reply = rpc_call(
                api,
                APP_KEY,
                APP_SECRET,
                "GenerateAIAgentCall",
                &[("AIAgentId", "a"), ("SessionId", session)],
            )
            .await;
            AgentId::from_string(reply.json["InstanceId"].as_str().unwrap().to_owned())
        }
    };
    let first = start("s-1").await;
    let other = start("s-2").await;
    let entry = |turn, speaker, content: &str, at| HistoryEntry {
        turn_id: turn,
        speaker,
        content: content.to_owned(),
        interrupted: false,
        at: UnixMillis(at),
    };
    api.store.append_history(&first, &entry(1, Speaker::User, "Hello", 1_000)).await.unwrap();
    api.store.append_history(&first, &entry(1, Speaker::Assistant, "Hi! How can I help?", 2_000)).await.unwrap();
    api.store.append_history(&first, &entry(2, Speaker::User, "Bye", 3_000)).await.unwrap();
    api.store.append_history(&other, &entry(1, Speaker::User, "Elsewhere", 1_500)).await.unwrap();

    let reply = rpc_call(
        &api,
        APP_KEY,
        APP_SECRET,
        "ListAIAgentDialogues",
        &[("SessionId", "s-1"), ("StartTime", "0"), ("EndTime", "2500"), ("Order", "ASC")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let dialogues = reply.json["Dialogues"].as_array().unwrap();
    let texts: Vec<_> =
        dialogues.iter().map(|d| (d["Producer"].as_str().unwrap(), d["Text"].as_str().unwrap())).collect();
    assert_eq!(texts, [("user", "Hello"), ("agent", "Hi! How can I help?")]);
    assert_eq!(dialogues[0]["RoundId"], "1");
    assert_eq!(dialogues[0]["Time"], 1000);
    assert_eq!(dialogues[0]["Source"], "call");
    let reply = rpc_call(
        &api,
        APP_KEY,
        APP_SECRET,
        "ListAIAgentDialogues",
        &[("SessionId", "s-1"), ("StartTime", "0"), ("EndTime", "9999"), ("Order", "DESC"), ("PageSize", "1")],
    )
    .await;
    assert_eq!(reply.json["Dialogues"][0]["Text"], "Bye", "{}", reply.text);
    assert_eq!(reply.json["Dialogues"].as_array().unwrap().len(), 1);
    // Alibaba's default order is DESC; RoundLimit keeps the most recent rounds, all of them.
    let reply =
        rpc_call(&api, APP_KEY, APP_SECRET, "ListAIAgentDialogues", &[("SessionId", "s-1"), ("EndTime", "9999")]).await;
    assert_eq!(reply.json["Dialogues"][0]["Text"], "Bye", "{}", reply.text);
    let reply = rpc_call(
        &api,
        APP_KEY,
        APP_SECRET,
        "ListAIAgentDialogues",
        &[("SessionId", "s-1"), ("EndTime", "9999"), ("RoundLimit", "1"), ("PageSize", "1")],
    )
    .await;
    let texts: Vec<&str> =
        reply.json["Dialogues"].as_array().unwrap().iter().map(|d| d["Text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Bye"], "{}", reply.text);
    let reply = rpc_call(
        &api,
        APP_KEY,
        APP_SECRET,
        "ListAIAgentDialogues",
        &[("SessionId", "s-1"), ("EndTime", "9999"), ("RoundLimit", "2"), ("PageSize", "1"), ("Order", "ASC")],
    )
    .await;
    let texts: Vec<&str> =
        reply.json["Dialogues"].as_array().unwrap().iter().map(|d| d["Text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Hello", "Hi! How can I help?", "Bye"], "RoundLimit overrides the paging: {}", reply.text);
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "ListAIAgentDialogues", &[("SessionId", "s-1")]).await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "MissingParameter");
    assert!(reply.json["Message"].as_str().unwrap().contains("EndTime"));
}

#[tokio::test]
async fn openapi_and_zego_share_post_root_without_confusion() {
    let api = api(dialects()).await;
    // Alibaba's parameters in a form body are recognised as Alibaba's.
    let mut all: Vec<(&str, String)> = vec![
        ("Action", "DescribeAIAgentInstance".to_owned()),
        ("Version", "2020-11-09".to_owned()),
        ("AccessKeyId", APP_KEY.to_owned()),
        ("SignatureMethod", "HMAC-SHA1".to_owned()),
        ("SignatureVersion", "1.0".to_owned()),
        ("SignatureNonce", nonce()),
        ("Timestamp", iso(now())),
        ("InstanceId", "nope".to_owned()),
    ];
    let signature = rpc_signature("POST", &all, APP_SECRET);
    all.push(("Signature", signature));
    let request = Request::builder()
        .method("POST")
        .uri("/")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(sorted_query(&all)))
        .unwrap();
    let reply = raw(&api, request).await;
    assert_ali_error(&reply, StatusCode::NOT_FOUND, "InvalidInstanceId.NotFound");

    // The same form with its `Version` key damaged is still Alibaba's, and gets Alibaba's error
    // naming the parameter (not ZEGO's "AppId is empty").
    let mut damaged: Vec<(&str, String)> = all
        .iter()
        .filter(|(k, _)| *k != "Signature")
        .map(|(k, v)| (if *k == "Version" { "Versio" } else { k }, v.clone()))
        .collect();
    let signature = rpc_signature("POST", &damaged, APP_SECRET);
    damaged.push(("Signature", signature));
    let request = Request::builder()
        .method("POST")
        .uri("/")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(sorted_query(&damaged)))
        .unwrap();
    let reply = raw(&api, request).await;
    assert_ali_error(&reply, StatusCode::BAD_REQUEST, "MissingParameter");
    assert!(reply.json["Message"].as_str().unwrap().contains("\"Version\""), "{}", reply.text);
}

// ---------------------------------------------------------------------------------------------
// Callbacks.

#[tokio::test]
async fn callbacks_carry_the_token_and_the_documented_events() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let api = api(Options { media: true, webhook_url: Some(url), ..dialects() }).await;
    let mut body = generate_body();
    body["agent_config"] = json!("{}");
    let reply = app_post(&api, "generateAIAgentCall", &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.json["ai_agent_instance_id"].as_str().unwrap().to_owned();
    let media = api.media.as_ref().unwrap();
    media.emit(&id, ConversationEvent::UserSpeech { turn: 1, speaking: true });
    media.emit(&id, ConversationEvent::UserTranscript { turn: 1, text: "Hello there".into() });
    media.emit(&id, ConversationEvent::UserSpeech { turn: 2, speaking: true });
    media.emit(&id, ConversationEvent::AgentReply { turn: 1, text: "Hi!".into(), interrupted: false });
    media.emit(&id, ConversationEvent::Error { turn: 2, stage: "llm", message: "timeout".into() });
    let reply = app_post(&api, "stopAIAgentInstance", &json!({ "ai_agent_instance_id": id })).await;
    assert_eq!(reply.status, StatusCode::OK);

    let accepted = receiver.accepted(6).await;
    let bodies: Vec<Value> = accepted
        .iter()
        .map(|(headers, body)| {
            assert_eq!(headers.get(header::AUTHORIZATION).unwrap(), WEBHOOK_SECRET);
            assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), "application/json");
            serde_json::from_str(body).unwrap()
        })
        .collect();
    let events: Vec<&str> = bodies.iter().map(|b| b["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["agent_start", "session_start", "chat_record", "chat_record", "error", "agent_stop"],
        "{bodies:?}"
    );
    for body in &bodies {
        assert_eq!(body["aiAgentId"], "39f8e0bc005e4f309379701645f4****");
        assert_eq!(body["instanceId"], id.as_str());
        assert_eq!(body["sessionId"], "session-1");
        assert_eq!(body["userData"], "{\"Key\":\"Value\"}");
        // Alibaba's required `code` and `message` (strings), and `timestamp` as ISO 8601.
        assert!(body["code"].is_string() && body["message"].is_string(), "{body}");
        let timestamp = body["timestamp"].as_str().unwrap();
        assert!(timestamp.len() == 20 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T', "{timestamp}");
    }
    assert_eq!((bodies[0]["code"].clone(), bodies[0]["message"].clone()), (json!("0"), json!("agent_start")));
    assert_eq!(bodies[4]["code"], "LLMError");
    assert_eq!(bodies[0]["data"]["channelId"], reply_channel(&api, &id).await);
    assert_eq!(
        (bodies[2]["data"]["role"].clone(), bodies[2]["data"]["text"].clone()),
        (json!("user"), json!("Hello there"))
    );
    assert_eq!((bodies[3]["data"]["role"].clone(), bodies[3]["data"]["text"].clone()), (json!("agent"), json!("Hi!")));
    assert_eq!(bodies[4]["data"]["stage"], "llm");
    assert_eq!(bodies[5]["data"]["reason"], "left");
}

async fn reply_channel(api: &Api, id: &str) -> String {
    native(api, id).await["channel"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Cross-dialect state and limits.

#[tokio::test]
async fn the_native_api_and_alibaba_see_the_same_instance() {
    let api = api(dialects()).await;
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "GenerateAIAgentCall", &[("AIAgentId", "a")]).await;
    let id = reply.json["InstanceId"].as_str().unwrap().to_owned();
    assert_eq!(native(&api, &id).await["status"], "RUNNING");
    // Another app's credentials do not see it natively either.
    let other = api.send("GET", &format!("/v1/agents/{id}"), Some(&basic(OTHER_APP_KEY, OTHER_APP_SECRET)), None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    // Stopped natively, it is Finished for Alibaba.
    let left = api.send("POST", &format!("/v1/agents/{id}/leave"), Some(&basic(APP_KEY, APP_SECRET)), None).await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.text);
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "DescribeAIAgentInstance", &[("InstanceId", &id)]).await;
    assert_eq!(reply.json["Instance"]["Status"], "Finished", "{}", reply.text);
    let reply = app_post(&api, "describeAIAgentInstance", &json!({ "ai_agent_instance_id": id })).await;
    assert_eq!(reply.json["status"], "Finished", "{}", reply.text);
}

#[tokio::test]
async fn rate_limits_answer_in_each_envelope() {
    let limit = colloquy_http::auth::RateLimit { per_second: 1, burst: 1 };
    let api = api(Options { rate_limit: limit, ..dialects() }).await;
    let first = rpc_call(&api, APP_KEY, APP_SECRET, "DescribeAIAgentInstance", &[("InstanceId", "x")]).await;
    assert_ali_error(&first, StatusCode::NOT_FOUND, "InvalidInstanceId.NotFound");
    let second = rpc_call(&api, APP_KEY, APP_SECRET, "DescribeAIAgentInstance", &[("InstanceId", "x")]).await;
    assert_ali_error(&second, StatusCode::TOO_MANY_REQUESTS, "Throttling.User");
    assert_eq!(second.headers["retry-after"], "1", "a throttled answer says when to come back");
    assert_eq!(second.headers["x-acs-retry-after"], "1000", "and in the SDKs' own header, in milliseconds");
    let third = app_post(&api, "describeAIAgentInstance", &json!({ "ai_agent_instance_id": "x" })).await;
    assert_eq!((third.status, third.json["code"].clone()), (StatusCode::TOO_MANY_REQUESTS, json!(429)));
    assert_eq!(third.json["error_code"], "Throttling.User");
    assert_eq!(third.headers["retry-after"], "1");
}

/// The test server's options, with the vendor dialects mounted.
/// Alibaba's samples name its own voices (`longxiaochun`), which exist only in its cloud: the app
/// lets the embedded voice stand in.
fn dialects() -> Options {
    Options {
        dialects: std::sync::Arc::new(colloquy_dialects::VendorDialects::new()),
        substitute_unsupported_vendors: true,
        ..Options::default()
    }
}

/// Alibaba's SDK serialises every list, so each update carries `LlmHistory: []`: that changes
/// nothing, and an update never drops the running prompt for the built-in one.
#[tokio::test]
async fn an_update_with_an_empty_history_keeps_the_prompt() {
    let api = api(Options { media: true, ..dialects() }).await;
    let runtime = json!({ "AgentUserId": "agent_1", "ChannelId": "room-keep" }).to_string();
    let start = json!({ "LlmConfig": {
        "LlmSystemPrompt": "You are Ann, the bakery's assistant.",
        "LlmHistory": [{"Role": "user", "Content": "Hi"}, {"Role": "assistant", "Content": "Hello!"}]
    }})
    .to_string();
    let reply = v3_call(
        &api,
        APP_KEY,
        APP_SECRET,
        "StartAIAgentInstance",
        &[("AIAgentId", "a"), ("RuntimeConfig", &runtime), ("AgentConfig", &start)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.json["InstanceId"].as_str().unwrap().to_owned();
    let update = |config: Value| {
        let config = config.to_string();
        let api = &api;
        let id = id.clone();
        async move {
            let params = [("InstanceId", id.as_str()), ("AgentConfig", config.as_str())];
            let reply = v3_call(api, APP_KEY, APP_SECRET, "UpdateAIAgentInstance", &params).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        }
    };
    let updates = || {
        let received = api.media.as_ref().unwrap().received(&id);
        received
            .into_iter()
            .filter_map(|r| if let Received::Update(u) = r { Some(u) } else { None })
            .collect::<Vec<_>>()
    };

    // The SDK's speech-rate update, with its empty list: the prompt is untouched.
    update(json!({ "LlmConfig": { "LlmHistory": [] }, "TtsConfig": { "SpeechRate": 1.2 } })).await;
    let last = updates().pop().unwrap();
    assert_eq!(last.system_messages, None, "{last:?}");
    assert!(last.speed.is_some());

    // A new history without a prompt keeps the prompt; a new prompt keeps the history.
    update(json!({ "LlmConfig": { "LlmHistory": [{"Role": "user", "Content": "Bread?"}] } })).await;
    let messages = updates().pop().unwrap().system_messages.unwrap();
    let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["You are Ann, the bakery's assistant.", "Bread?"]);
    update(json!({ "LlmConfig": { "LlmSystemPrompt": "You are Bo.", "LlmHistory": [] } })).await;
    let messages = updates().pop().unwrap().system_messages.unwrap();
    let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["You are Bo.", "Bread?"], "the history the last update gave stays");
}

/// An `AIAgentId` the app configures starts that agent: its LLM, prompt, greeting, idle time and
/// webhook, with the request's `AgentConfig` over them. In an app that configures agents an
/// unknown id is refused in each envelope; an app with none takes any id.
#[tokio::test]
async fn a_configured_ai_agent_id_starts_that_agent() {
    let api = api(Options { agents: vec![common::support_agent()], ..dialects() }).await;
    let body = json!({
        "user_id": "user_1", "ai_agent_id": "support", "workflow_type": "VoiceChat",
        "agent_config": json!({ "TtsConfig": { "SpeechRate": 1.1 } }).to_string(),
    });
    let reply = app_post(&api, "generateAIAgentCall", &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let config = native(&api, reply.json["ai_agent_instance_id"].as_str().unwrap()).await["config"].clone();
    assert_eq!(
        (config["llm"]["vendor"].clone(), config["llm"]["model"].clone()),
        (json!("openai"), json!("acme-chat"))
    );
    assert_eq!(config["llm"]["url"], "http://127.0.0.1:9/v1", "{config}");
    assert_eq!(config["llm"]["system_messages"][0]["content"], "You are Ada, Acme's support agent.", "{config}");
    assert_eq!(config["greeting"]["text"], "Welcome to Acme.", "{config}");
    assert_eq!(config["idle_timeout"], 90, "{config}");
    assert_eq!(config["turn_detection"]["silence_duration_ms"], 500, "{config}");
    assert!((config["tts"]["speed"].as_f64().unwrap() - 1.1).abs() < 1e-6, "the request's own setting: {config}");
    assert_eq!(config["callbacks"]["url"], "http://127.0.0.1:9/support-hook", "the agent's webhook: {config}");

    // The request's settings win over the configured ones.
    let params = [
        ("AIAgentId", "support"),
        ("AgentConfig", r#"{"Greeting":"Hi, Ada here.","LlmConfig":{"LlmSystemPrompt":"Be brief."}}"#),
    ];
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "GenerateAIAgentCall", &params).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let config = native(&api, reply.json["InstanceId"].as_str().unwrap()).await["config"].clone();
    assert_eq!(config["greeting"]["text"], "Hi, Ada here.", "{config}");
    assert_eq!(config["llm"]["system_messages"][0]["content"], "Be brief.", "{config}");
    assert_eq!(config["llm"]["model"], "acme-chat", "{config}");

    // An id the app does not configure: the vendor's not-found, in both envelopes.
    let reply = rpc_call(&api, APP_KEY, APP_SECRET, "GenerateAIAgentCall", &[("AIAgentId", "sales")]).await;
    assert_ali_error(&reply, StatusCode::NOT_FOUND, "InvalidAIAgentId.NotFound");
    assert!(reply.json["Message"].as_str().unwrap().contains("sales"), "{}", reply.text);
    let reply = app_post(&api, "generateAIAgentCall", &json!({ "user_id": "u", "ai_agent_id": "sales" })).await;
    assert_eq!((reply.status, reply.json["error_code"].clone()), (StatusCode::NOT_FOUND, json!("AgentNotFound")));
    let app = colloquy_model::AppId::new(APP_ID).unwrap();
    assert_eq!(api.supervisor.count(&app, &Default::default()).await.unwrap(), 2, "nothing started for them");

    // The other app configures none: any id starts an agent with the defaults.
    let reply = rpc_call(&api, OTHER_APP_KEY, OTHER_APP_SECRET, "GenerateAIAgentCall", &[("AIAgentId", "sales")]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// Without substitution, an Alibaba voice is refused at the start, naming the field; nothing runs.
#[tokio::test]
async fn an_alibaba_voice_is_refused_unless_the_app_allows_substitution() {
    let api = api(Options { substitute_unsupported_vendors: false, ..dialects() }).await;
    let reply = app_post(&api, "generateAIAgentCall", &generate_body()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    let message = reply.json["message"].as_str().unwrap_or_default();
    assert!(message.contains("TtsConfig.VoiceId") && message.contains("longxiaochun"), "{}", reply.text);
    let app = colloquy_model::AppId::new(common::APP_ID).unwrap();
    assert_eq!(api.supervisor.count(&app, &Default::default()).await.unwrap(), 0, "nothing started");
}

/// With a DashScope key for CosyVoice, an Alibaba voice is spoken by CosyVoice.
#[tokio::test]
async fn an_alibaba_voice_is_spoken_by_cosyvoice_with_the_apps_dashscope_key() {
    let keys = [("cosyvoice".to_owned(), colloquy_model::Secret::new("sk-ds"))].into();
    let api = api(Options { substitute_unsupported_vendors: false, vendor_keys: keys, ..dialects() }).await;
    let reply = app_post(&api, "generateAIAgentCall", &generate_body()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.json["ai_agent_instance_id"].as_str().unwrap().to_owned();
    let app = colloquy_model::AppId::new(common::APP_ID).unwrap();
    let record = api.supervisor.get(&app, &AgentId::from_string(id)).await.unwrap();
    let colloquy_model::TtsProvider::Vendor(choice) = &record.spec.tts.provider else {
        panic!("{:?}", record.spec.tts)
    };
    assert_eq!((choice.vendor.as_str(), choice.params["voice"].as_str()), ("cosyvoice", Some("longxiaochun")));
    assert_eq!(choice.secrets["api_key"].expose(), "sk-ds");
    assert_eq!(record.spec.tts.voice, "longxiaochun");
}

/// A MiniMax model in `TtsConfig.ModelId` makes the voice MiniMax's, with the app's MiniMax key.
#[tokio::test]
async fn a_minimax_model_id_is_spoken_by_minimax() {
    let keys = [("minimax".to_owned(), colloquy_model::Secret::new("mm-key"))].into();
    let api = api(Options { substitute_unsupported_vendors: false, vendor_keys: keys, ..dialects() }).await;
    let mut body = generate_body();
    body["agent_config"] =
        json!({"TtsConfig": {"VoiceId": "male-qn-qingse", "ModelId": "speech-02-turbo"}}).to_string().into();
    let reply = app_post(&api, "generateAIAgentCall", &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.json["ai_agent_instance_id"].as_str().unwrap().to_owned();
    let app = colloquy_model::AppId::new(common::APP_ID).unwrap();
    let record = api.supervisor.get(&app, &AgentId::from_string(id)).await.unwrap();
    let colloquy_model::TtsProvider::Vendor(choice) = &record.spec.tts.provider else {
        panic!("{:?}", record.spec.tts)
    };
    assert_eq!(choice.vendor, "minimax");
    assert_eq!(
        (choice.params["voice_id"].as_str(), choice.params["model"].as_str()),
        (Some("male-qn-qingse"), Some("speech-02-turbo"))
    );
    assert!(record.spec.warnings.is_empty(), "{:?}", record.spec.warnings);
}
