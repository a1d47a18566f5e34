//! The ZEGOCLOUD AI Agent dialect: signed `POST /?Action=…` requests, `{Code, Message, RequestId,
//! Data}` answers, agent templates, instances, their control, and the callbacks.

#[path = "../../http/tests/common/mod.rs"]
mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use colloquy_model::{
    AgentCommand, AgentId, ConversationEvent, HistoryEntry, InterruptCause, SpeakPriority, Speaker, TurnEnd,
    TurnMetrics, TurnRecord, TurnStart, UnixMillis,
};
use common::{APP_ID, APP_KEY, APP_SECRET, Api, OTHER_APP_ID, OTHER_APP_SECRET, Options, Received, Receiver};
use md5::{Digest, Md5};
use serde_json::{Value, json};

/// A fresh `SignatureNonce`, 16 hex digits as ZEGO's samples make it: the server takes each once.
fn nonce() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The signature, computed here with the md-5 crate, independently of the server's signer.
fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

fn signed_uri(path: &str, action: &str, app_id: &str, secret: &str, timestamp: i64) -> String {
    signed_uri_with(path, action, app_id, secret, timestamp, &nonce())
}

fn signed_uri_with(path: &str, action: &str, app_id: &str, secret: &str, timestamp: i64, nonce: &str) -> String {
    let signature = md5_hex(&format!("{app_id}{nonce}{secret}{timestamp}"));
    format!(
        "{path}?Action={action}&AppId={app_id}&SignatureNonce={nonce}&Timestamp={timestamp}&SignatureVersion=2.0&Signature={signature}"
    )
}

async fn call_as(api: &Api, path: &str, app_id: &str, secret: &str, action: &str, body: &Value) -> Value {
    let uri = signed_uri(path, action, app_id, secret, now_secs());
    let reply = api.send("POST", &uri, None, Some(&body.to_string())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    check_envelope(&reply.json);
    reply.json
}

async fn call(api: &Api, action: &str, body: Value) -> Value {
    call_as(api, "/", APP_ID, APP_SECRET, action, &body).await
}

/// Every answer has ZEGO's four fields.
#[track_caller]
fn check_envelope(json: &Value) {
    assert!(json["Code"].is_u64(), "{json}");
    assert!(json["Message"].is_string(), "{json}");
    assert!(json["RequestId"].as_str().is_some_and(|r| !r.is_empty()), "{json}");
    assert!(json["Data"].is_object(), "{json}");
}

#[track_caller]
fn assert_ok(json: &Value) {
    assert_eq!(json["Code"], 0, "{json}");
}

#[track_caller]
fn assert_code(json: &Value, code: u64, mentions: &str) {
    assert_eq!(json["Code"], code, "{json}");
    let message = json["Message"].as_str().unwrap();
    assert!(message.contains(mentions), "{message:?} should mention {mentions:?}");
}

/// The RegisterAgent sample of ZEGO's docs (shortened keys as in the samples).
fn register_body(agent_id: &str) -> Value {
    json!({
        "AgentId": agent_id,
        "Name": "Customer service",
        "LLM": {
            "Url": "https://ark.cn-beijing.volces.com/api/v3/chat/completions",
            "ApiKey": "zego_test",
            "Model": "doubao-1-5-lite-32k-250115",
            "SystemPrompt": "You are a helpful assistant.",
            "Temperature": 0.8,
            "TopP": 0.9,
            "Params": { "max_tokens": 400 }
        },
        "TTS": {
            "Vendor": "ByteDance",
            "Params": { "app": { "appid": "zego_test", "token": "zego_test", "cluster": "volcano_tts" },
                        "audio": { "voice_type": "zh_female_wanwanxiaohe_moon_bigtts" } }
        },
        "ASR": { "HotWord": "ZEGO|10", "VADSilenceSegmentation": 800, "PauseInterval": 1000 }
    })
}

fn create_body(agent_id: &str, room: &str, agent_user: &str) -> Value {
    json!({
        "AgentId": agent_id,
        "UserId": "user_1",
        "RTC": {
            "RoomId": room,
            "AgentStreamId": format!("{agent_user}_stream"),
            "AgentUserId": agent_user,
            "UserStreamId": "user_1_stream"
        },
        "MessageHistory": {
            "SyncMode": 1,
            "Messages": [
                { "Role": "user", "Content": "Hello" },
                { "Role": "assistant", "Content": "Hi, how can I help?" }
            ],
            "WindowSize": 10
        },
        "CallbackConfig": { "ASRResult": 1, "LLMResult": 1, "Interrupted": 1, "UserSpeakAction": 1, "AgentSpeakAction": 0 },
        "AdvancedConfig": { "InterruptMode": 0 }
    })
}

async fn media_api() -> Api {
    common::api(Options { media: true, ..dialects() }).await
}

/// Registers `agent_id` and creates one instance of it; answers the instance id.
async fn instance(api: &Api, agent_id: &str, room: &str) -> String {
    assert_ok(&call(api, "RegisterAgent", register_body(agent_id)).await);
    let reply = call(api, "CreateAgentInstance", create_body(agent_id, room, "agent_1")).await;
    assert_ok(&reply);
    reply["Data"]["AgentInstanceId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn templates_register_query_list_update_unregister() {
    let api = common::api(dialects()).await;
    let reply = call(&api, "RegisterAgent", register_body("agent_a")).await;
    assert_ok(&reply);
    assert_eq!(reply["Message"], "success");
    assert_code(&call(&api, "RegisterAgent", register_body("agent_a")).await, 410_001_008, "already registered");
    assert_ok(&call(&api, "RegisterAgent", json!({"AgentId": "agent_b", "Name": "B"})).await);

    let reply = call(&api, "QueryAgents", json!({"AgentIds": ["agent_a", "missing"]})).await;
    assert_ok(&reply);
    let agents = reply["Data"]["Agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["AgentId"], "agent_a");
    assert_eq!(agents[0]["Name"], "Customer service");
    assert_eq!(agents[0]["LLM"]["Model"], "doubao-1-5-lite-32k-250115");
    assert_eq!(agents[0]["LLM"]["ApiKey"], "<redacted>", "keys are not echoed");
    assert_eq!(agents[0]["ASR"]["VADSilenceSegmentation"], 800);

    let reply = call(&api, "ListAgents", json!({"Limit": 1})).await;
    assert_ok(&reply);
    assert_eq!(reply["Data"]["Agents"][0]["AgentId"], "agent_a");
    assert_eq!(reply["Data"]["Cursor"], "agent_a");
    assert_eq!(reply["Data"]["Total"], 2, "Total counts every template, not the page");
    let reply = call(&api, "ListAgents", json!({"Limit": 1, "Cursor": "agent_a"})).await;
    assert_eq!(reply["Data"]["Agents"][0]["AgentId"], "agent_b");
    assert_eq!(reply["Data"]["Cursor"], "");
    // ZEGO: Limit 0 or absent means 5; above 10 is a parameter error.
    for _ in 0..5 {
        let id = format!("bulk_{}", nonce());
        assert_ok(&call(&api, "RegisterAgent", json!({"AgentId": id, "Name": "Bulk"})).await);
    }
    for limit in [json!({"Limit": 0}), json!({})] {
        let reply = call(&api, "ListAgents", limit).await;
        assert_eq!(reply["Data"]["Agents"].as_array().unwrap().len(), 5, "{reply}");
        assert_eq!(reply["Data"]["Total"], 7);
    }
    assert_code(&call(&api, "ListAgents", json!({"Limit": 11})).await, 410_000_003, "Limit");
    // AgentIds may use the punctuation ZEGO allows.
    let punctuated = "agent!#$%&()+-:;<=.>?@[]^_{}|~,1";
    assert_ok(&call(&api, "RegisterAgent", json!({"AgentId": punctuated, "Name": "P"})).await);
    let reply = call(&api, "QueryAgents", json!({"AgentIds": [punctuated]})).await;
    assert_eq!(reply["Data"]["Agents"][0]["AgentId"], punctuated);
    assert_code(
        &call(&api, "RegisterAgent", json!({"AgentId": "no spaces", "Name": "P"})).await,
        410_000_003,
        "AgentId",
    );
    assert_ok(&call(&api, "UnregisterAgent", json!({"AgentId": punctuated})).await);

    let reply =
        call(&api, "UpdateAgent", json!({"AgentId": "agent_a", "Name": "Sales", "LLM": {"Temperature": 0.2}})).await;
    assert_ok(&reply);
    let reply = call(&api, "QueryAgents", json!({"AgentIds": ["agent_a"]})).await;
    assert_eq!(reply["Data"]["Agents"][0]["Name"], "Sales");
    assert_eq!(reply["Data"]["Agents"][0]["LLM"]["Temperature"], 0.2);
    assert_eq!(reply["Data"]["Agents"][0]["LLM"]["Model"], "doubao-1-5-lite-32k-250115", "other keys are kept");
    assert_code(
        &call(&api, "UpdateAgent", json!({"AgentId": "agent_a", "LLM": {"Temperature": 9}})).await,
        410_000_003,
        "LLM.Temperature",
    );
    assert_code(&call(&api, "UpdateAgent", json!({"AgentId": "nobody"})).await, 410_001_009, "nobody");

    assert_ok(&call(&api, "UnregisterAgent", json!({"AgentId": "agent_a"})).await);
    assert_code(&call(&api, "UnregisterAgent", json!({"AgentId": "agent_a"})).await, 410_001_009, "agent_a");
    let reply = call(&api, "QueryAgents", json!({"AgentIds": ["agent_a"]})).await;
    assert_eq!(reply["Data"]["Agents"], json!([]));
}

#[tokio::test]
async fn template_validation_names_the_field() {
    let api = common::api(dialects()).await;
    assert_code(&call(&api, "RegisterAgent", json!({"Name": "x"})).await, 410_000_003, "AgentId");
    assert_code(&call(&api, "RegisterAgent", json!({"AgentId": "bad id!"})).await, 410_000_003, "AgentId");
    let mut body = register_body("agent_x");
    body["LLM"]["Params"]["max_tokens"] = json!(0);
    assert_code(&call(&api, "RegisterAgent", body).await, 410_000_003, "LLM.Params.max_tokens");
    let mut body = register_body("agent_x");
    body["LLM"]["Temperature"] = json!("hot");
    assert_code(&call(&api, "RegisterAgent", body).await, 410_000_003, "LLM.Temperature");
    assert_code(&call(&api, "QueryAgents", json!({})).await, 410_000_003, "AgentIds");
    // Not JSON at all.
    let uri = signed_uri("/", "RegisterAgent", APP_ID, APP_SECRET, now_secs());
    let reply = api.send("POST", &uri, None, Some("{not json")).await;
    check_envelope(&reply.json);
    assert_eq!(reply.json["Code"], 410_000_004);
}

#[tokio::test]
async fn auth_failures_get_zego_codes() {
    let api = common::api(dialects()).await;
    let body = json!({"AgentIds": ["a"]}).to_string();
    let send = |uri: String| {
        let api = &api;
        let body = body.clone();
        async move {
            let reply = api.send("POST", &uri, None, Some(&body)).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            check_envelope(&reply.json);
            reply.json
        }
    };
    let ts = now_secs();
    // The signature checked against a vector computed with python3's hashlib:
    // md5("1234567890" + "a1b2c3d4e5f60718" + "app-secret-1" + "1700000000").
    assert_eq!(md5_hex("1234567890a1b2c3d4e5f60718app-secret-11700000000"), "da6e7ede5e6b7badaa6c1e464d30463a");

    let used = nonce();
    let good = signed_uri_with("/", "QueryAgents", APP_ID, APP_SECRET, ts, &used);
    assert_ok(&send(good.clone()).await);

    let bad_signature = good.replace("&Signature=", "&Signature=0");
    assert_code(&send(bad_signature).await, 100_000_005, "signature");
    let wrong_secret = signed_uri("/", "QueryAgents", APP_ID, OTHER_APP_SECRET, ts);
    assert_code(&send(wrong_secret).await, 100_000_005, "signature");
    let stale = signed_uri("/", "QueryAgents", APP_ID, APP_SECRET, ts - 11 * 60);
    assert_code(&send(stale).await, 100_000_004, "expired");
    let future = signed_uri("/", "QueryAgents", APP_ID, APP_SECRET, ts + 11 * 60);
    assert_code(&send(future).await, 100_000_004, "expired");
    let unknown_app = signed_uri("/", "QueryAgents", "55555", "whatever", ts);
    assert_code(&send(unknown_app).await, 100_000_010, "AppId");
    let no_nonce = good.replace(&format!("&SignatureNonce={used}"), "");
    assert_code(&send(no_nonce).await, 100_000_008, "SignatureNonce");
    let no_timestamp = good.replace(&format!("&Timestamp={ts}"), "");
    assert_code(&send(no_timestamp).await, 100_000_002, "Timestamp");
    let bad_timestamp = good.replace(&format!("&Timestamp={ts}"), "&Timestamp=soon");
    assert_code(&send(bad_timestamp).await, 100_000_003, "Timestamp");
    let no_signature = good.split("&Signature=").next().unwrap().to_owned();
    assert_code(&send(no_signature).await, 100_000_009, "Signature");
    let bad_version = good.replace("SignatureVersion=2.0", "SignatureVersion=1.0");
    assert_code(&send(bad_version).await, 100_000_014, "2.0");
    let no_action = good.replace("Action=QueryAgents&", "");
    assert_code(&send(no_action).await, 100_000_006, "Action");
    let unknown_action = signed_uri("/", "DoSomething", APP_ID, APP_SECRET, ts);
    assert_code(&send(unknown_action).await, 100_000_007, "DoSomething");
}

#[tokio::test]
async fn create_instance_and_query_it() {
    let api = media_api().await;
    let id = instance(&api, "agent_a", "room_1").await;
    assert!(!id.is_empty());

    let reply = call(&api, "QueryAgentInstanceStatus", json!({"AgentInstanceId": id})).await;
    assert_ok(&reply);
    // Nobody it listens to has joined yet: ZEGO's IDLE, not LISTENING.
    assert_eq!(reply["Data"]["Status"], "IDLE");
    assert!(reply["Data"].get("LLMFirstTokenLatency").is_none(), "no turn yet");

    // A turn with metrics: its latencies show.
    let agent_id = AgentId::from_string(id.clone());
    let turn = TurnRecord {
        turn_id: 1,
        start: TurnStart::VoiceInput,
        end: TurnEnd::Ok,
        started_at: UnixMillis(1),
        ended_at: UnixMillis(2),
        metrics: TurnMetrics {
            llm_ttft_ms: Some(321),
            tts_ttfb_ms: Some(123),
            e2e_ms: Some(900),
            ..TurnMetrics::default()
        },
        detail: Default::default(),
    };
    api.store.record_turn(&agent_id, &turn).await.unwrap();
    let reply = call(&api, "QueryAgentInstanceStatus", json!({"AgentInstanceId": id})).await;
    assert_eq!(reply["Data"]["LLMFirstTokenLatency"], 321);
    assert_eq!(reply["Data"]["TTSFirstAudioLatency"], 123);

    // The spec: room, uids, template values and request overrides.
    let record = api.supervisor.get(&colloquy_model::AppId::new(APP_ID).unwrap(), &agent_id).await.unwrap();
    assert_eq!(record.spec.channel.as_str(), "room_1");
    assert_eq!(record.spec.agent_uid.as_str(), "agent_1");
    assert_eq!(record.spec.max_history, 10);
    assert_eq!(record.spec.turn_detection.silence_duration_ms, 800);
    assert_eq!(record.spec.turn_detection.max_wait_ms, 1000);
    assert!((record.spec.llm.params.temperature - 0.8).abs() < 1e-6);
    assert_eq!(record.spec.llm.params.max_tokens, 400);
    match &record.spec.llm.provider {
        colloquy_model::LlmProvider::OpenAiCompatible(endpoint) => {
            assert_eq!(endpoint.url, "https://ark.cn-beijing.volces.com/api/v3");
            assert_eq!(endpoint.model, "doubao-1-5-lite-32k-250115");
        }
        other => panic!("{other:?}"),
    }
    let roles: Vec<_> = record.spec.llm.system_messages.iter().map(|m| (m.role, m.content.as_str())).collect();
    assert_eq!(
        roles,
        vec![
            (colloquy_model::PromptRole::System, "You are a helpful assistant."),
            (colloquy_model::PromptRole::User, "Hello"),
            (colloquy_model::PromptRole::Assistant, "Hi, how can I help?"),
        ]
    );

    assert_ok(&call(&api, "DeleteAgentInstance", json!({"AgentInstanceId": id})).await);
    assert_code(&call(&api, "DeleteAgentInstance", json!({"AgentInstanceId": id})).await, 410_001_010, "not found");
    assert_code(
        &call(&api, "QueryAgentInstanceStatus", json!({"AgentInstanceId": id})).await,
        410_001_010,
        "not found",
    );
}

#[tokio::test]
async fn create_instance_request_fields_override_the_template() {
    let api = media_api().await;
    assert_ok(&call(&api, "RegisterAgent", register_body("agent_a")).await);
    let mut body = create_body("agent_a", "room_1", "agent_1");
    body["LLM"] = json!({"Temperature": 0.1, "SystemPrompt": "Be brief."});
    body["AdvancedConfig"] = json!({"InterruptMode": 1});
    body["RTC"]["WelcomeMessage"] = json!("Welcome!");
    let reply = call(&api, "CreateAgentInstance", body).await;
    assert_ok(&reply);
    let id = AgentId::from_string(reply["Data"]["AgentInstanceId"].as_str().unwrap().to_owned());
    let record = api.supervisor.get(&colloquy_model::AppId::new(APP_ID).unwrap(), &id).await.unwrap();
    assert!((record.spec.llm.params.temperature - 0.1).abs() < 1e-6);
    assert_eq!(record.spec.llm.params.max_tokens, 400, "the template's value stays");
    assert_eq!(record.spec.llm.system_messages[0].content, "Be brief.");
    assert!(!record.spec.interruption.enabled);
    assert_eq!(record.spec.greeting.as_ref().unwrap().text, "Welcome!");
}

#[tokio::test]
async fn create_instance_validation_names_the_field() {
    let api = media_api().await;
    assert_ok(&call(&api, "RegisterAgent", register_body("agent_a")).await);
    let mut body = create_body("agent_a", "room 1!", "agent_1");
    assert_code(&call(&api, "CreateAgentInstance", body.clone()).await, 410_000_003, "RTC.RoomId");
    body = create_body("agent_a", "room_1", "agent_1");
    body.as_object_mut().unwrap().remove("UserId");
    assert_code(&call(&api, "CreateAgentInstance", body).await, 410_000_003, "UserId");
    body = create_body("agent_a", "room_1", "agent_1");
    body["UserId"] = json!("u".repeat(33));
    assert_code(&call(&api, "CreateAgentInstance", body).await, 410_000_003, "UserId");
    body = create_body("agent_a", "room_1", "agent_1");
    body["RTC"]["AgentStreamId"] = json!("stream/1");
    assert_code(&call(&api, "CreateAgentInstance", body).await, 410_000_003, "RTC.AgentStreamId");
    body = create_body("agent_a", "room_1", "agent_1");
    body["MessageHistory"]["WindowSize"] = json!(101);
    assert_code(&call(&api, "CreateAgentInstance", body).await, 410_000_003, "MessageHistory.WindowSize");
    body = create_body("agent_a", "room_1", "agent_1");
    body["MessageHistory"]["Messages"][0]["Role"] = json!("system");
    assert_code(&call(&api, "CreateAgentInstance", body).await, 410_000_003, "MessageHistory.Messages[0].Role");
    body = create_body("agent_a", "room_1", "agent_1");
    body["CallbackConfig"]["ASRResult"] = json!(2);
    assert_code(&call(&api, "CreateAgentInstance", body).await, 410_000_003, "CallbackConfig.ASRResult");
    body = create_body("agent_a", "room_1", "agent_1");
    body["AdvancedConfig"]["InterruptMode"] = json!(3);
    assert_code(&call(&api, "CreateAgentInstance", body).await, 410_000_003, "AdvancedConfig.InterruptMode");
    body = create_body("nobody", "room_1", "agent_1");
    assert_code(&call(&api, "CreateAgentInstance", body).await, 410_001_009, "nobody");
    body = create_body("agent_a", "room_1", "agent_1");
    body["LLM"] = json!({"TopP": 0});
    assert_code(&call(&api, "CreateAgentInstance", body).await, 410_000_003, "LLM.TopP");
    assert!(api.supervisor.live_counts().values().sum::<usize>() == 0, "nothing started");
}

/// Forty creates at once, in forty rooms: exactly ten get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_keep_the_ten_instance_limit() {
    let api = media_api().await;
    assert_ok(&call(&api, "RegisterAgent", register_body("agent_a")).await);
    let mut creates = tokio::task::JoinSet::new();
    for room in 0..40 {
        let router = api.router.clone();
        let uri = signed_uri("/", "CreateAgentInstance", APP_ID, APP_SECRET, now_secs());
        let body = create_body("agent_a", &format!("race_{room}"), "agent_1").to_string();
        creates.spawn(async move {
            let request = axum::http::Request::post(uri)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap();
            let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
            let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()["Code"].as_u64().unwrap()
        });
    }
    let codes = creates.join_all().await;
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 10, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 410_001_011).count(), 30, "{codes:?}");
    assert_eq!(api.supervisor.live_counts().values().sum::<usize>(), 10);
}

#[tokio::test]
async fn one_instance_per_agent_user_in_a_room_and_ten_per_app() {
    let api = media_api().await;
    assert_ok(&call(&api, "RegisterAgent", register_body("agent_a")).await);
    assert_ok(&call(&api, "CreateAgentInstance", create_body("agent_a", "room_0", "agent_1")).await);
    assert_code(
        &call(&api, "CreateAgentInstance", create_body("agent_a", "room_0", "agent_1")).await,
        410_001_012,
        "AgentUserId",
    );
    for room in 1..10 {
        let reply = call(&api, "CreateAgentInstance", create_body("agent_a", &format!("room_{room}"), "agent_1")).await;
        assert_ok(&reply);
    }
    assert_code(
        &call(&api, "CreateAgentInstance", create_body("agent_a", "room_10", "agent_1")).await,
        410_001_011,
        "10",
    );
    // The other app has its own quota and its own templates.
    assert_code(
        &call_as(
            &api,
            "/",
            OTHER_APP_ID,
            OTHER_APP_SECRET,
            "CreateAgentInstance",
            &create_body("agent_a", "room_10", "agent_1"),
        )
        .await,
        410_001_009,
        "agent_a",
    );
}

#[tokio::test]
async fn apps_see_only_their_own_instances() {
    let api = media_api().await;
    let id = instance(&api, "agent_a", "room_1").await;
    for action in
        ["QueryAgentInstanceStatus", "DeleteAgentInstance", "InterruptAgentInstance", "GetAgentInstanceMsgList"]
    {
        let reply = call_as(&api, "/", OTHER_APP_ID, OTHER_APP_SECRET, action, &json!({"AgentInstanceId": id})).await;
        assert_code(&reply, 410_001_010, "not found");
    }
    let reply =
        call_as(&api, "/", OTHER_APP_ID, OTHER_APP_SECRET, "QueryAgents", &json!({"AgentIds": ["agent_a"]})).await;
    assert_eq!(reply["Data"]["Agents"], json!([]));
    assert_ok(&call(&api, "QueryAgentInstanceStatus", json!({"AgentInstanceId": id})).await);
}

#[tokio::test]
async fn controls_reach_the_media_as_commands() {
    let api = media_api().await;
    let id = instance(&api, "agent_a", "room_1").await;
    let media = api.media.as_ref().unwrap();

    let reply = call(
        &api,
        "SendAgentInstanceTTS",
        json!({"AgentInstanceId": id, "Text": "Hello there", "AddHistory": true, "Priority": "High", "SamePriorityOption": "Enqueue"}),
    )
    .await;
    assert_ok(&reply);
    assert_ok(&call(&api, "SendAgentInstanceTTS", json!({"AgentInstanceId": id, "Text": "default"})).await);
    assert_ok(
        &call(
            &api,
            "SendAgentInstanceTTS",
            json!({"AgentInstanceId": id, "Text": "queued", "Priority": "Medium", "SamePriorityOption": "Enqueue"}),
        )
        .await,
    );
    assert_ok(
        &call(&api, "SendAgentInstanceTTS", json!({"AgentInstanceId": id, "Text": "low", "Priority": "Low"})).await,
    );
    assert_ok(
        &call(
            &api,
            "SendAgentInstanceLLM",
            json!({"AgentInstanceId": id, "Text": "What's the weather?", "AddQuestionToHistory": true}),
        )
        .await,
    );
    assert_ok(&call(&api, "InterruptAgentInstance", json!({"AgentInstanceId": id})).await);
    assert_ok(&call(&api, "ResetAgentInstanceMsgList", json!({"AgentInstanceId": id})).await);
    assert_ok(
        &call(
            &api,
            "UpdateAgentInstance",
            json!({"AgentInstanceId": id, "LLM": {"SystemPrompt": "New prompt", "Temperature": 0.3}, "TTS": {"Params": {"voice": "en_US-joe-medium"}}}),
        )
        .await,
    );

    let speak = |text: &str, priority| {
        Received::Command(AgentCommand::Speak { text: text.to_owned(), priority, interruptible: true })
    };
    let received = media.received(&id);
    assert_eq!(received[0], speak("Hello there", SpeakPriority::Interrupt));
    assert_eq!(received[1], speak("default", SpeakPriority::Interrupt));
    assert_eq!(received[2], speak("queued", SpeakPriority::Append));
    assert_eq!(received[3], speak("low", SpeakPriority::Ignore));
    assert_eq!(received[4], Received::Command(AgentCommand::think("What's the weather?")));
    assert_eq!(received[5], Received::Command(AgentCommand::Interrupt));
    assert_eq!(received[6], Received::Command(AgentCommand::ClearHistory));
    let Received::Update(update) = &received[7] else { panic!("{:?}", received[7]) };
    let messages = update.system_messages.as_ref().unwrap();
    assert_eq!(messages[0].content, "New prompt");
    assert_eq!(messages.len(), 3, "the initial history stays after the system prompt");
    assert!((update.llm_params.unwrap().temperature - 0.3).abs() < 1e-6);
    assert_eq!(update.voice.as_deref(), Some("en_US-joe-medium"));
    assert_eq!(received.len(), 8);

    // Validation.
    assert_code(&call(&api, "SendAgentInstanceTTS", json!({"AgentInstanceId": id})).await, 410_000_003, "Text");
    assert_code(
        &call(&api, "SendAgentInstanceTTS", json!({"AgentInstanceId": id, "Text": "x", "Priority": "Urgent"})).await,
        410_000_003,
        "Priority",
    );
    assert_code(&call(&api, "SendAgentInstanceLLM", json!({"Text": "x"})).await, 410_000_003, "AgentInstanceId");
    assert_code(
        &call(&api, "UpdateAgentInstance", json!({"AgentInstanceId": id, "LLM": {"Model": "other"}})).await,
        410_000_003,
        "LLM.Model",
    );
    // ZEGO's own sample sends the instance's endpoint again with every update: that is no change.
    let unchanged = json!({"AgentInstanceId": id, "LLM": {
        "Url": "https://ark.cn-beijing.volces.com/api/v3/chat/completions", "ApiKey": "zego_test",
        "Model": "doubao-1-5-lite-32k-250115", "Vendor": "OpenAIChat", "SystemPrompt": "Same endpoint"
    }});
    assert_ok(&call(&api, "UpdateAgentInstance", unchanged).await);
    let other_key = json!({"AgentInstanceId": id, "LLM": {"ApiKey": "another"}});
    assert_code(&call(&api, "UpdateAgentInstance", other_key).await, 410_000_003, "LLM.ApiKey");
    assert_code(
        &call(&api, "InterruptAgentInstance", json!({"AgentInstanceId": "nope"})).await,
        410_001_010,
        "not found",
    );
    assert_eq!(media.received(&id).len(), 9, "refused requests reach nothing (the unchanged update did)");
}

#[tokio::test]
async fn control_without_media_is_refused() {
    let api = common::api(dialects()).await;
    let id = instance(&api, "agent_a", "room_1").await;
    assert_code(&call(&api, "InterruptAgentInstance", json!({"AgentInstanceId": id})).await, 410_001_013, "media");
}

#[tokio::test]
async fn message_list_shows_the_history_since_the_last_reset() {
    let api = media_api().await;
    let id = instance(&api, "agent_a", "room_1").await;
    let agent_id = AgentId::from_string(id.clone());
    let entry = |turn, speaker, content: &str, at| HistoryEntry {
        turn_id: turn,
        speaker,
        content: content.to_owned(),
        interrupted: false,
        at: UnixMillis(at),
    };
    let now = colloquy_supervisor::now().0;
    api.store.append_history(&agent_id, &entry(1, Speaker::User, "What time is it?", now - 10)).await.unwrap();
    api.store.append_history(&agent_id, &entry(1, Speaker::Assistant, "Noon.", now - 5)).await.unwrap();

    let reply = call(&api, "GetAgentInstanceMsgList", json!({"AgentInstanceId": id})).await;
    assert_ok(&reply);
    assert_eq!(reply["Data"]["Total"], 4);
    assert_eq!(
        reply["Data"]["MessageList"],
        json!([
            {"Role": "user", "Content": "Hello"},
            {"Role": "assistant", "Content": "Hi, how can I help?"},
            {"Role": "user", "Content": "What time is it?"},
            {"Role": "assistant", "Content": "Noon."},
        ])
    );

    assert_ok(&call(&api, "ResetAgentInstanceMsgList", json!({"AgentInstanceId": id})).await);
    let reply = call(&api, "GetAgentInstanceMsgList", json!({"AgentInstanceId": id})).await;
    assert_eq!(reply["Data"], json!({"Total": 0, "MessageList": []}));

    let later = colloquy_supervisor::now().0 + 5;
    api.store.append_history(&agent_id, &entry(2, Speaker::User, "And now?", later)).await.unwrap();
    let reply = call(&api, "GetAgentInstanceMsgList", json!({"AgentInstanceId": id})).await;
    assert_eq!(reply["Data"]["MessageList"], json!([{"Role": "user", "Content": "And now?"}]));
    assert_eq!(reply["Data"]["Total"], 1);
}

#[tokio::test]
async fn the_zego_path_takes_the_same_actions() {
    let api = media_api().await;
    for path in ["/zego", "/zego/"] {
        let agent = format!("agent{}", path.len());
        let reply = call_as(&api, path, APP_ID, APP_SECRET, "RegisterAgent", &register_body(&agent)).await;
        assert_ok(&reply);
        let body = create_body(&agent, &format!("room{}", path.len()), "agent_1");
        let reply = call_as(&api, path, APP_ID, APP_SECRET, "CreateAgentInstance", &body).await;
        assert_ok(&reply);
        let id = reply["Data"]["AgentInstanceId"].as_str().unwrap().to_owned();
        let reply =
            call_as(&api, path, APP_ID, APP_SECRET, "QueryAgentInstanceStatus", &json!({"AgentInstanceId": id})).await;
        assert_eq!(reply["Data"]["Status"], "IDLE");
        let uri = signed_uri(path, "QueryAgents", APP_ID, "wrong", now_secs());
        let reply = api.send("POST", &uri, None, Some("{}")).await;
        assert_eq!(reply.json["Code"], 100_000_005);
    }
}

#[tokio::test]
async fn the_instance_shows_through_the_native_api() {
    let api = media_api().await;
    let id = instance(&api, "agent_a", "room_1").await;
    let reply = api.send("GET", &format!("/v1/agents/{id}"), Some(&common::basic(APP_KEY, APP_SECRET)), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["agent_id"], id.as_str());
    assert_eq!(reply.json["status"], "RUNNING");
    assert_eq!(reply.json["channel"], "room_1");
    // Another app's credentials do not see it.
    let reply = api
        .send("GET", &format!("/v1/agents/{id}"), Some(&common::basic(common::OTHER_APP_KEY, OTHER_APP_SECRET)), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

/// sha1 over the sorted secret, timestamp and nonce, computed here with the sha1 crate.
fn callback_signature(secret: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [secret, timestamp, nonce];
    parts.sort();
    hex::encode(sha1::Sha1::digest(parts.concat().as_bytes()))
}

#[tokio::test]
async fn callbacks_are_signed_and_follow_the_callback_config() {
    // A known vector, computed with python3's hashlib.
    assert_eq!(
        callback_signature("cbsecret", "1741221508000", "abcdd22113"),
        "36d68cc7c8b70e97251f945694a81ca1a972e186"
    );
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let api = common::api(Options { media: true, webhook_url: Some(url), ..dialects() }).await;
    let id = instance(&api, "agent_a", "room_1").await;
    let media = api.media.as_ref().unwrap();
    let created = receiver.accepted(1).await;

    media.emit(&id, ConversationEvent::UserSpeech { turn: 1, speaking: true });
    media.emit(&id, ConversationEvent::UserTranscript { turn: 1, text: "Hello agent".to_owned() });
    // AgentSpeakAction is off in this instance's CallbackConfig: not sent.
    media.emit(&id, ConversationEvent::AgentSpeech { turn: 1, speaking: true });
    media.emit(&id, ConversationEvent::AgentReply { turn: 1, text: "Hello user".to_owned(), interrupted: true });
    media.emit(&id, ConversationEvent::Interrupted { turn: 1, cause: InterruptCause::ApiSpeak });
    media.emit(
        &id,
        ConversationEvent::Error { turn: 2, stage: "llm", message: "HTTP 401: Incorrect API key provided".to_owned() },
    );
    receiver.accepted(created.len() + 5).await;
    assert_ok(&call(&api, "DeleteAgentInstance", json!({"AgentInstanceId": id})).await);
    let all = receiver.accepted(created.len() + 6).await;

    let mut events = Vec::new();
    let mut last_sequence = 0;
    for (_, body) in &all {
        let json: Value = serde_json::from_str(body).unwrap();
        let timestamp = json["Timestamp"].as_i64().unwrap().to_string();
        let nonce = json["Nonce"].as_str().unwrap();
        assert_eq!(json["Signature"], callback_signature(common::WEBHOOK_SECRET, &timestamp, nonce), "{json}");
        assert_eq!(json["AppId"], 1_234_567_890u64);
        assert_eq!(json["AgentInstanceId"], id.as_str());
        assert_eq!(json["RoomId"], "room_1");
        assert_eq!(json["AgentUserId"], "agent_1");
        let sequence = json["Sequence"].as_i64().unwrap();
        assert!(sequence > last_sequence, "Sequence increases: {json}");
        last_sequence = sequence;
        events.push((json["Event"].as_str().unwrap().to_owned(), json["Data"].clone()));
    }
    let names: Vec<_> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "AgentInstanceCreated",
            "UserSpeakAction",
            "ASRResult",
            "LLMResult",
            "Interrupted",
            "Exception",
            "AgentInstanceDeleted"
        ]
    );
    assert!(events[0].1["CreatedTimestamp"].is_i64());
    assert_eq!(events[1].1, json!({"UserId": "user_1", "Action": "SPEAK_BEGIN"}));
    assert_eq!(events[2].1, json!({"UserId": "user_1", "Round": 1, "Text": "Hello agent"}));
    assert_eq!(events[3].1, json!({"Round": 1, "Text": "Hello user"}));
    assert_eq!(events[4].1, json!({"Round": 1, "Reason": 3}));
    assert_eq!(events[5].1["Code"], 2203, "ZEGO's code for an LLM authentication failure");
    assert!(events[5].1["Message"].as_str().unwrap().contains("Incorrect API key"));
    assert_eq!(events[6].1["Code"], 0);
    assert!(events[6].1["DeletedTimestamp"].is_i64());
    assert!(events[6].1["LatencyData"].is_object());
}

#[tokio::test]
async fn deleted_callback_averages_the_turns() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let api = common::api(Options { media: true, webhook_url: Some(url), ..dialects() }).await;
    let id = instance(&api, "agent_a", "room_1").await;
    let agent_id = AgentId::from_string(id.clone());
    for (turn, ttft, ttfb, e2e) in [(1, 100, 50, 800), (2, 300, 150, 1200)] {
        let record = TurnRecord {
            turn_id: turn,
            start: TurnStart::VoiceInput,
            end: TurnEnd::Ok,
            started_at: UnixMillis(1),
            ended_at: UnixMillis(2),
            metrics: TurnMetrics {
                llm_ttft_ms: Some(ttft),
                tts_ttfb_ms: Some(ttfb),
                e2e_ms: Some(e2e),
                ..TurnMetrics::default()
            },
            detail: Default::default(),
        };
        api.store.record_turn(&agent_id, &record).await.unwrap();
    }
    assert_ok(&call(&api, "DeleteAgentInstance", json!({"AgentInstanceId": id})).await);
    let all = receiver.accepted(2).await;
    let deleted: Value = serde_json::from_str(&all[1].1).unwrap();
    assert_eq!(deleted["Event"], "AgentInstanceDeleted");
    assert_eq!(
        deleted["Data"]["LatencyData"],
        json!({"LLMTTFT": 200, "TTSAudioFirstFrameTime": 100, "TotalCost": 1000})
    );
}

#[tokio::test]
async fn the_rate_limit_answers_in_the_envelope() {
    let api =
        common::api(Options { rate_limit: colloquy_http::auth::RateLimit { per_second: 1, burst: 1 }, ..dialects() })
            .await;
    assert_ok(&call(&api, "ListAgents", json!({})).await);
    let uri = signed_uri("/", "ListAgents", APP_ID, APP_SECRET, now_secs());
    let reply = api.send("POST", &uri, None, Some("{}")).await;
    assert_code(&reply.json, 410_000_006, "requests per second");
    assert_eq!(reply.headers["retry-after"], "1", "a throttled answer says when to come back");
}

/// ZEGO's signature covers neither the Action nor the body: a captured URL, replayed as another
/// action on a victim's instance, must not work. Each SignatureNonce is taken once (kept in the
/// records, so across restarts: colloquy-store's nonce test reopens the database).
#[tokio::test]
async fn a_signed_url_is_taken_once_even_as_another_action() {
    let api = media_api().await;
    let instance = instance(&api, "replayed", "room_r").await;

    // What an onlooker captures: a status query of the victim's instance.
    let captured = signed_uri("/", "QueryAgentInstanceStatus", APP_ID, APP_SECRET, now_secs());
    let body = json!({ "AgentInstanceId": instance }).to_string();
    let reply = api.send("POST", &captured, None, Some(&body)).await;
    assert_ok(&reply.json);
    let as_delete = captured.replace("Action=QueryAgentInstanceStatus", "Action=DeleteAgentInstance");
    for replay in [captured.clone(), as_delete] {
        let reply = api.send("POST", &replay, None, Some(&body)).await;
        check_envelope(&reply.json);
        assert_code(&reply.json, 100_000_005, "already used");
    }
    // The victim's instance still runs.
    let status = call(&api, "QueryAgentInstanceStatus", json!({ "AgentInstanceId": instance })).await;
    assert_ok(&status);
    assert_eq!(status["Data"]["Status"], "IDLE");
}

/// The test server's options, with the vendor dialects mounted, and substitution on for the tests
/// that name vendors this server does not have.
fn dialects() -> Options {
    Options {
        dialects: std::sync::Arc::new(colloquy_dialects::VendorDialects::new()),
        substitute_unsupported_vendors: true,
        ..Options::default()
    }
}

/// The template's ByteDance voice runs as ZEGO's sample writes it (its `app` and `audio` objects are
/// Volcano Engine's own), the token kept apart as a secret; the hot words cannot run here and the
/// instance says so in its record (`GET /v1/agents/{id}` with the app's credentials).
#[tokio::test]
async fn the_samples_bytedance_voice_runs_and_what_cannot_is_reported() {
    let api = media_api().await;
    let id = instance(&api, "warned", "room_w").await;
    let record =
        api.supervisor.get(&colloquy_model::AppId::new(APP_ID).unwrap(), &AgentId::from_string(id)).await.unwrap();
    let colloquy_model::TtsProvider::Vendor(choice) = &record.spec.tts.provider else {
        panic!("{:?}", record.spec.tts)
    };
    assert_eq!(choice.vendor, "bytedance");
    assert_eq!(choice.secrets["app.token"].expose(), "zego_test");
    assert_eq!(record.spec.tts.voice, "zh_female_wanwanxiaohe_moon_bigtts");
    let fields: Vec<&str> = record.spec.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields, ["ASR.HotWord"], "{:?}", record.spec.warnings);
}

/// ZEGO has no key, only an AppId and a ServerSecret: an app configured without a key serves ZEGO,
/// and no Basic credentials (an empty user with its secret) reach it through another dialect.
#[tokio::test]
async fn an_app_without_a_key_serves_zego() {
    let api = media_api().await;
    let reply = call_as(&api, "/", common::KEYLESS_APP_ID, common::KEYLESS_APP_SECRET, "ListAgents", &json!({})).await;
    assert_ok(&reply);
    let basic = common::basic("", common::KEYLESS_APP_SECRET);
    let agora = format!("/api/conversational-ai-agent/v2/projects/{}/agents", common::KEYLESS_APP_ID);
    assert_eq!(api.send("GET", &agora, Some(&basic), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.send("GET", "/v1/agents", Some(&basic), None).await.status, StatusCode::UNAUTHORIZED);
}

/// An `AgentId` never registered through the API starts the app's configured agent of that id;
/// a registered one wins; an id neither registered nor configured is ZEGO's agent-not-found.
#[tokio::test]
async fn an_unregistered_agent_id_falls_back_to_the_configured_agent() {
    let api = common::api(Options { agents: vec![common::support_agent()], media: true, ..dialects() }).await;
    let app = colloquy_model::AppId::new(APP_ID).unwrap();
    let reply = call(&api, "CreateAgentInstance", create_body("support", "room_c", "agent_1")).await;
    assert_ok(&reply);
    let id = AgentId::from_string(reply["Data"]["AgentInstanceId"].as_str().unwrap().to_owned());
    let spec = api.supervisor.get(&app, &id).await.unwrap().spec;
    match &spec.llm.provider {
        colloquy_model::LlmProvider::OpenAiCompatible(endpoint) => assert_eq!(endpoint.model, "acme-chat"),
        other => panic!("the configured LLM, not {other:?}"),
    }
    assert_eq!(spec.llm.system_messages[0].content, "You are Ada, Acme's support agent.");
    assert_eq!(spec.greeting.as_ref().map(|g| g.text.as_str()), Some("Welcome to Acme."));
    assert_eq!(spec.idle_timeout, colloquy_model::IdleTimeout::AfterSecs(90));
    assert_eq!(spec.max_history, 10, "the request's MessageHistory.WindowSize");
    assert_eq!(spec.callbacks.as_ref().map(|c| c.url.as_str()), Some("http://127.0.0.1:9/support-hook"));

    // Registered through the API, the registered template is used.
    assert_ok(&call(&api, "RegisterAgent", register_body("support")).await);
    let reply = call(&api, "CreateAgentInstance", create_body("support", "room_d", "agent_1")).await;
    assert_ok(&reply);
    let id = AgentId::from_string(reply["Data"]["AgentInstanceId"].as_str().unwrap().to_owned());
    let spec = api.supervisor.get(&app, &id).await.unwrap().spec;
    assert_eq!(spec.llm.system_messages[0].content, "You are a helpful assistant.");

    let reply = call(&api, "CreateAgentInstance", create_body("sales", "room_e", "agent_1")).await;
    assert_code(&reply, 410_001_009, "sales");
}

/// Without substitution, a voice vendor this server does not have is refused when the agent is
/// registered, naming the vendors there are; a registry vendor with its own params runs.
#[tokio::test]
async fn a_vendor_that_is_not_implemented_is_refused_at_registration() {
    let api = common::api(Options { substitute_unsupported_vendors: false, media: true, ..dialects() }).await;
    let mut body = register_body("agent_b");
    body["TTS"] = json!({"Vendor": "XunFei", "Params": {"appid": "a", "api_key": "k"}});
    let reply = call(&api, "RegisterAgent", body).await;
    assert_code(&reply, 410_000_003, "TTS.Vendor");
    let message = reply["Message"].as_str().unwrap();
    assert!(message.contains("\"XunFei\""), "{message}");
    assert!(message.contains("elevenlabs") && message.contains("bytedance"), "{message}");

    let mut body = register_body("agent_e");
    body["TTS"] = json!({"Vendor": "ElevenLabs", "Params": {"key": "xi-secret", "voice_id": "v1"}});
    body["ASR"] =
        json!({"Vendor": "Deepgram", "Params": {"key": "dg-secret", "model": "nova-3"}, "VADSilenceSegmentation": 800});
    assert_ok(&call(&api, "RegisterAgent", body.clone()).await);
    body["TTS"]["Params"]["voiceid"] = json!("x");
    let reply = call(&api, "RegisterAgent", body).await;
    assert_code(&reply, 410_000_003, "TTS.Params.voiceid");
}
