//! The Agora Conversational AI Engine v2 dialect: `/api/conversational-ai-agent/v2/projects/{appid}/…`
//! with Basic or AccessToken2 auth, `{detail, reason}` errors, and NCS webhooks.

#[path = "../../http/tests/common/mod.rs"]
mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use colloquy_model::{
    AgentCommand, AgentId, ConversationEvent, HistoryEntry, InterruptCause, LlmParams, PromptMessage, PromptRole,
    SpeakPriority, Speaker, SpecUpdate, ThinkAction, ThinkHandling, TurnDetail, TurnEnd, TurnMetrics, TurnRecord,
    TurnStart, UnixMillis,
};
use common::{
    APP_ID, APP_KEY, APP_SECRET, Api, OTHER_APP_ID, OTHER_APP_KEY, OTHER_APP_SECRET, Options, Received, Receiver,
    WEBHOOK_SECRET, basic,
};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

// AccessToken2s made once with a python3 script following AgoraIO/Tools `AccessToken2.py`
// (hashlib/hmac/zlib, outside this repository; `Service.pack`, `ServiceRtc.pack`, `ServiceRtm.pack`):
// app id "1234567890", certificate "app-secret-1", issue_ts 1700000000, and unless said otherwise
// expire 4294967295 - 1700000000 (valid until the year 2106). "Publisher" is what Agora's
// `RtcTokenBuilder2` gives `Role_Publisher`: join channel, publish audio, video and data, each for
// as long as the token (privilege expire 0).

/// A publisher token for channel "room-1", uid "1001".
const VALID_TOKEN: &str = "007eJxTYKi9qPvx3htxr+atk1YULu3dvNMynNks7vHTt+vfnep4O42Xi8HQyNjE1MzcwtKA4WNw6n++NbM21luyMjIwMrAAMQgwgUlmMMkCJtkYivLzc3UNWRgMDQwMAc6qHQw=";
/// A publisher token for channel "room-1" and uid 0 (any uid), then an RTM service for "1001".
const ANY_UID_TOKEN: &str = "007eJxTYFA7xlcxOXabXRhT4r3WpskPfNU+bMjwvrz3zBovAc1+LwEuBkMjYxNTM3MLSwOGj8Gp//nWzDretZKBiYGRgQWIQYAJTDKDSRYwycZQlJ+fq2vIAFbHCJUxNDAwBADWLxnL";
/// What an end user's app holds: channel "lobby", uid "42", join privilege only.
const LOBBY_JOIN_ONLY: &str = "007eJxTYJhnlHuwdrGyUNGmoz+nRYfZOXOVm6cemqTttOVdXs20XfO5GAyNjE1MzcwtLA0YPgan/udbM6tPNJiRkQECQYCVISc/KamSicHECADJmBkK";
/// A publisher token for channel "lobby", uid "42".
const LOBBY_PUBLISHER: &str = "007eJxTYGDf8vqC7ukjpxTMmBV7uG4I9VtunzHlR8JFg3838jYsbJPhYjA0MjYxNTO3sDRg+Bic+p9vzazQBX8YGRkYGViAGASYwCQzmGQBk6wMOflJSZVMDCZGANDBGuw=";
/// A token with no service at all (the script without `build()`'s check that there is one).
const NO_SERVICE: &str =
    "007eJwBPADD/yAAbB9wHTpGRu4S1j9bPULOUuARH/wK8aJCkdB3Gt6XhEAKADEyMzQ1Njc4OTAA8VNl/w6smhwrpgIAAJvDFSY=";
/// Only an RTM service, for user "42".
const RTM_ONLY: &str =
    "007eJxTYDjl2hvC13XU3jN7372uVom2A5z8ZzJm8RtplP4+lf5PT4iLwdDI2MTUzNzC0oDhY3Dqf741sx5v9WdmZGBiYARCEGBiMDECAAmMFwI=";
/// Channel "room-1", uid "1001", join and publish audio for 3600 s after issue: long over.
const PRIVILEGE_EXPIRED: &str = "007eJxTYNj/zH2ZsvAtpa2yfw7lyIfb97SyrW6fvMEq8H2S9WE5O04uBkMjYxNTM3MLSwOGj8Gp//nWzFrl8JOZkYGRgQmIBfgYgDSIZGMoys/P1TVkYTA0MDAEAIxaGYQ=";
/// Channel "room-1", uid "42", join privilege, token expire 3600: it expired in November 2023.
const EXPIRED_TOKEN: &str = "007eJxTYJhlqfWP9fv8t5prMm/e298ed+dgWXTmj6SZ/F8/LmubfGAOF4OhkbGJqZm5haUBw8fgVAE+Bga/xD0MjFAI4rMxFOXn5+oaMjGYGAEAlEMbCw==";

fn path(appid: &str, rest: &str) -> String {
    format!("/api/conversational-ai-agent/v2/projects/{appid}{rest}")
}

fn auth() -> String {
    basic(APP_KEY, APP_SECRET)
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The join example of Agora's REST docs (`POST /join`), with `name` and the channel given.
fn docs_join(name: &str, channel: &str) -> Value {
    json!({
        "name": name,
        "properties": {
            "channel": channel,
            "token": "007eJxTYxxxxxxxxxxxxxxxxxxxxxx",
            "agent_rtc_uid": "1001",
            "remote_rtc_uids": ["1002"],
            "idle_timeout": 120,
            "llm": {
                "url": "https://api.openai.com/v1/chat/completions",
                "api_key": "<your_llm_key>",
                "system_messages": [{"role": "system", "content": "You are a helpful chatbot."}],
                "greeting_message": "Hello, how can I help you?",
                "failure_message": "Sorry, I don't know how to answer this question.",
                "max_history": 10,
                "params": {"model": "gpt-4o-mini"}
            },
            "asr": {"language": "en-US"},
            "tts": {
                "vendor": "microsoft",
                "params": {"key": "<your_tts_api_key>", "region": "eastus", "voice_name": "en-US-AndrewMultilingualNeural"}
            }
        }
    })
}

/// A join with only what this server needs, listening to everyone, never idling out.
fn small_join(name: &str) -> Value {
    json!({"name": name, "properties": {"channel": "room-1", "remote_rtc_uids": ["*"], "idle_timeout": 0}})
}

async fn join(api: &Api, body: &Value) -> String {
    let reply = api.send("POST", &path(APP_ID, "/join"), Some(&auth()), Some(&body.to_string())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json["agent_id"].as_str().unwrap().to_owned()
}

/// Asserts an Agora error answer: status, reason, and a detail that mentions `mentions`.
#[track_caller]
fn assert_agora_error(reply: &common::Reply, status: StatusCode, reason: &str, mentions: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json["reason"], reason, "{}", reply.text);
    let detail = reply.json["detail"].as_str().unwrap_or_default();
    assert!(!detail.is_empty() && detail.contains(mentions), "detail {detail:?} should mention {mentions:?}");
    assert_eq!(reply.json.as_object().unwrap().len(), 2, "only detail and reason: {}", reply.text);
}

#[tokio::test]
async fn join_with_the_docs_example_answers_the_documented_shapes() {
    let api = common::api(dialects()).await;
    let before = now_secs();
    let reply = api
        .send(
            "POST",
            &path(APP_ID, "/join"),
            Some(&auth()),
            Some(&docs_join("unique_name", "channel_name").to_string()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // {agent_id, create_ts, status}
    let keys: Vec<_> = reply.json.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["agent_id", "create_ts", "status"]);
    assert_eq!(reply.json["status"], "RUNNING");
    let create_ts = reply.json["create_ts"].as_i64().unwrap();
    assert!((before..=now_secs()).contains(&create_ts), "create_ts is in seconds: {create_ts}");
    let id = reply.json["agent_id"].as_str().unwrap().to_owned();

    // GET /agents/{id}: {message, start_ts, stop_ts, name, status, agent_id}
    let reply = api.send("GET", &path(APP_ID, &format!("/agents/{id}")), Some(&auth()), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["agent_id"], id.as_str());
    assert_eq!(reply.json["name"], "unique_name");
    assert_eq!(reply.json["status"], "RUNNING");
    assert_eq!(reply.json["start_ts"], create_ts);
    assert!(reply.json["message"].is_string());

    // What the spec became.
    let record = api
        .supervisor
        .get(&colloquy_model::AppId::new(APP_ID).unwrap(), &AgentId::from_string(id.clone()))
        .await
        .unwrap();
    let spec = &record.spec;
    assert_eq!(spec.channel.as_str(), "channel_name");
    assert_eq!(spec.agent_uid.as_str(), "1001");
    assert_eq!(spec.remote_uids, colloquy_model::RemoteUids::Only(vec![colloquy_model::Uid::new("1002").unwrap()]));
    assert_eq!(spec.idle_timeout, colloquy_model::IdleTimeout::AfterSecs(120));
    assert_eq!(spec.max_history, 10);
    assert_eq!(spec.greeting.as_ref().unwrap().text, "Hello, how can I help you?");
    assert_eq!(spec.failure_message.as_deref(), Some("Sorry, I don't know how to answer this question."));
    assert_eq!(spec.llm.system_messages[0].content, "You are a helpful chatbot.");
    match &spec.llm.provider {
        colloquy_model::LlmProvider::OpenAiCompatible(endpoint) => {
            assert_eq!(endpoint.url, "https://api.openai.com/v1");
            assert_eq!(endpoint.model, "gpt-4o-mini");
        }
        other => panic!("expected the OpenAI endpoint, got {other:?}"),
    }
    assert_eq!(spec.asr.language, "en-US");
    // The example's Azure voice, with its key, region and voice name.
    match &spec.tts.provider {
        colloquy_model::TtsProvider::Vendor(choice) => {
            assert_eq!(choice.vendor, "microsoft");
            assert_eq!(choice.params["region"], "eastus");
            assert_eq!(choice.secrets["key"].expose(), "<your_tts_api_key>");
        }
        other => panic!("expected the microsoft voice, got {other:?}"),
    }
    assert_eq!(spec.tts.voice, "en-US-AndrewMultilingualNeural");

    // Cross-dialect: the native API shows the same agent, status and channel, as this app.
    let native = api.send("GET", &format!("/v1/agents/{id}"), Some(&basic(APP_KEY, APP_SECRET)), None).await;
    assert_eq!(native.status, StatusCode::OK, "{}", native.text);
    assert_eq!(native.json["status"], "RUNNING");
    assert_eq!(native.json["channel"], "channel_name");
    assert_eq!(native.json["name"], "unique_name");

    // GET /agents: {data:{count, list:[{start_ts,status,agent_id}]}, meta:{cursor,total}, status:"ok"}
    let reply = api.send("GET", &path(APP_ID, "/agents?channel=channel_name"), Some(&auth()), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["status"], "ok");
    assert_eq!(reply.json["data"]["count"], 1);
    assert_eq!(reply.json["data"]["list"][0], json!({"start_ts": create_ts, "status": "RUNNING", "agent_id": id}));
    assert_eq!(reply.json["meta"]["cursor"], "");
    assert_eq!(reply.json["meta"]["total"], 1);

    // leave: 200 with `{}` (Agora's quickstart parses it); then STOPPED with stop_ts, the same
    // through the native API.
    let reply = api.send("POST", &path(APP_ID, &format!("/agents/{id}/leave")), Some(&auth()), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.text, "{}");
    let reply = api.send("GET", &path(APP_ID, &format!("/agents/{id}")), Some(&auth()), None).await;
    assert_eq!(reply.json["status"], "STOPPED");
    assert!(reply.json["stop_ts"].as_i64().unwrap() >= create_ts);
    let native = api.send("GET", &format!("/v1/agents/{id}"), Some(&basic(APP_KEY, APP_SECRET)), None).await;
    assert_eq!(native.json["status"], "STOPPED");
    // Leaving again: the agent has exited, 404 as Agora.
    let reply = api.send("POST", &path(APP_ID, &format!("/agents/{id}/leave")), Some(&auth()), None).await;
    assert_agora_error(&reply, StatusCode::NOT_FOUND, "TaskNotFound", "agent");
    // The default list shows RUNNING agents only; state=4 shows the stopped one.
    let reply = api.send("GET", &path(APP_ID, "/agents"), Some(&auth()), None).await;
    assert_eq!(reply.json["data"]["count"], 0, "{}", reply.text);
    let reply = api.send("GET", &path(APP_ID, "/agents?state=2,4"), Some(&auth()), None).await;
    assert_eq!(reply.json["data"]["list"][0]["status"], "STOPPED", "{}", reply.text);
}

#[tokio::test]
async fn list_filters_by_time_and_pages_with_a_cursor() {
    let api = common::api(dialects()).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(join(&api, &small_join(&format!("agent-{i}"))).await);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let query =
            if cursor.is_empty() { "/agents?limit=2".to_owned() } else { format!("/agents?limit=2&cursor={cursor}") };
        let reply = api.send("GET", &path(APP_ID, &query), Some(&auth()), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        for item in reply.json["data"]["list"].as_array().unwrap() {
            seen.push(item["agent_id"].as_str().unwrap().to_owned());
        }
        // `meta.total` is every agent that matches, not the page's length (Agora's definition).
        assert_eq!(reply.json["meta"]["total"], 5, "{}", reply.text);
        cursor = reply.json["meta"]["cursor"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    // A window in the past holds none of them; one around now holds all.
    let old = now_secs() - 100_000;
    let reply = api
        .send("GET", &path(APP_ID, &format!("/agents?from_time={old}&to_time={}", old + 10)), Some(&auth()), None)
        .await;
    assert_eq!(reply.json["data"]["count"], 0, "{}", reply.text);
    assert_eq!(reply.json["meta"]["total"], 0, "{}", reply.text);
    let reply = api
        .send(
            "GET",
            &path(APP_ID, &format!("/agents?from_time={}&to_time={}", now_secs() - 60, now_secs() + 60)),
            Some(&auth()),
            None,
        )
        .await;
    assert_eq!(reply.json["data"]["count"], 5, "{}", reply.text);
    // Validation.
    for (query, mentions) in
        [("limit=0", "limit"), ("state=9", "state"), ("cursor=forged", "cursor"), ("limit=x", "limit")]
    {
        let reply = api.send("GET", &path(APP_ID, &format!("/agents?{query}")), Some(&auth()), None).await;
        assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidFieldValue", mentions);
    }
}

/// Every endpoint, as (method, path suffix, body).
fn endpoints(id: &str) -> Vec<(&'static str, String, Option<String>)> {
    vec![
        ("POST", "/join".into(), Some(small_join("x").to_string())),
        ("GET", "/agents".into(), None),
        ("GET", format!("/agents/{id}"), None),
        ("POST", format!("/agents/{id}/update"), Some(r#"{"properties":{"token":"t"}}"#.into())),
        ("POST", format!("/agents/{id}/speak"), Some(r#"{"text":"hi"}"#.into())),
        ("POST", format!("/agents/{id}/interrupt"), Some("{}".into())),
        ("POST", format!("/agents/{id}/think"), Some(r#"{"text":"hi"}"#.into())),
        ("GET", format!("/agents/{id}/history"), None),
        ("GET", format!("/agents/{id}/turns"), None),
        ("POST", format!("/agents/{id}/leave"), None),
    ]
}

#[tokio::test]
async fn every_endpoint_refuses_wrong_credentials() {
    let api = common::api(dialects()).await;
    let id = join(&api, &small_join("guarded")).await;
    let wrong_secret = basic(APP_KEY, "nope");
    let other_app = basic(OTHER_APP_KEY, OTHER_APP_SECRET);
    let native = basic(common::KEY, common::SECRET);
    let cases: [(&str, Option<&str>, &str); 7] = [
        (APP_ID, Some(&wrong_secret), "wrong"),
        (APP_ID, Some(&other_app), "wrong"),
        (APP_ID, Some(&native), "wrong"),
        ("55555", Some(&auth()), "appid"),
        (APP_ID, None, "Authorization"),
        (APP_ID, Some("Bearer abc"), "Authorization"),
        (APP_ID, Some(&format!("agora token={EXPIRED_TOKEN}")), "expired"),
    ];
    for (method, suffix, body) in endpoints(&id) {
        for (appid, credentials, mentions) in cases {
            let reply = api.send(method, &path(appid, &suffix), credentials, body.as_deref()).await;
            assert_agora_error(&reply, StatusCode::UNAUTHORIZED, "InvalidPermission", mentions);
        }
        // A token of the app, but signed for another app id (the other app's path).
        let reply = api
            .send(method, &path(OTHER_APP_ID, &suffix), Some(&format!("agora token={VALID_TOKEN}")), body.as_deref())
            .await;
        assert_agora_error(&reply, StatusCode::UNAUTHORIZED, "InvalidPermission", "another app id");
    }
    // The agent is untouched.
    let record =
        api.supervisor.get(&colloquy_model::AppId::new(APP_ID).unwrap(), &AgentId::from_string(id)).await.unwrap();
    assert_eq!(record.state.status(), colloquy_model::AgentStatus::Running);
}

#[tokio::test]
async fn an_access_token2_made_by_agoras_algorithm_authenticates() {
    let api = common::api(dialects()).await;
    let token = format!("agora token={VALID_TOKEN}");
    let mut body = small_join("by-token");
    body["properties"]["agent_rtc_uid"] = json!("1001");
    let reply = api.send("POST", &path(APP_ID, "/join"), Some(&token), Some(&body.to_string())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.json["agent_id"].as_str().unwrap();
    let reply = api.send("GET", &path(APP_ID, &format!("/agents/{id}")), Some(&token), None).await;
    assert_eq!(reply.json["status"], "RUNNING", "{}", reply.text);
    // One changed character of the token breaks it.
    let mut forged = VALID_TOKEN.to_owned();
    forged.replace_range(20..21, if &VALID_TOKEN[20..21] == "A" { "B" } else { "A" });
    let reply =
        api.send("GET", &path(APP_ID, &format!("/agents/{id}")), Some(&format!("agora token={forged}")), None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
}

/// A join in `channel` as `uid`.
fn join_as(name: &str, channel: &str, uid: &str) -> String {
    json!({"name": name, "properties": {"channel": channel, "agent_rtc_uid": uid, "remote_rtc_uids": ["*"], "idle_timeout": 0}})
        .to_string()
}

#[tokio::test]
async fn an_rtc_token_reaches_only_the_agents_of_its_channel_and_uid() {
    let api = common::api(dialects()).await;
    let boardroom = join(&api, &serde_json::from_str(&join_as("board", "boardroom", "2001")).unwrap()).await;
    let lobby_43 = join(&api, &serde_json::from_str(&join_as("lobby-43", "lobby", "43")).unwrap()).await;
    let as_token = |token: &str| format!("agora token={token}");

    // Tokens that grant no REST access at all: every endpoint answers 401, naming why.
    for (token, mentions) in [
        (LOBBY_JOIN_ONLY, "publishing audio"),
        (NO_SERVICE, "no RTC service"),
        (RTM_ONLY, "no RTC service"),
        (PRIVILEGE_EXPIRED, "joining the channel"),
    ] {
        for (method, suffix, body) in endpoints(&boardroom) {
            let reply = api.send(method, &path(APP_ID, &suffix), Some(&as_token(token)), body.as_deref()).await;
            assert_agora_error(&reply, StatusCode::UNAUTHORIZED, "InvalidPermission", mentions);
        }
    }

    // A publisher token for lobby/42 starts an agent there, as uid 42 only.
    let lobby = as_token(LOBBY_PUBLISHER);
    let reply = api.send("POST", &path(APP_ID, "/join"), Some(&lobby), Some(&join_as("mine", "lobby", "42"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let mine = reply.json["agent_id"].as_str().unwrap().to_owned();
    for (channel, uid) in [("boardroom", "42"), ("lobby", "44"), ("lobby", "0")] {
        let reply = api.send("POST", &path(APP_ID, "/join"), Some(&lobby), Some(&join_as("x", channel, uid))).await;
        assert_agora_error(&reply, StatusCode::FORBIDDEN, "InvalidPermission", "\"lobby\" uid \"42\"");
    }
    // It lists its own agent only, and no other channel.
    let reply = api.send("GET", &path(APP_ID, "/agents"), Some(&lobby), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let listed: Vec<&str> =
        reply.json["data"]["list"].as_array().unwrap().iter().map(|a| a["agent_id"].as_str().unwrap()).collect();
    assert_eq!(listed, [mine.as_str()]);
    let reply = api.send("GET", &path(APP_ID, "/agents?channel=boardroom"), Some(&lobby), None).await;
    assert_agora_error(&reply, StatusCode::FORBIDDEN, "InvalidPermission", "boardroom");
    // Every endpoint about the boardroom agent, and about lobby's other uid, is refused.
    for other in [&boardroom, &lobby_43] {
        for (method, suffix, body) in
            endpoints(other).into_iter().filter(|(_, suffix, _)| suffix != "/join" && suffix != "/agents")
        {
            let reply = api.send(method, &path(APP_ID, &suffix), Some(&lobby), body.as_deref()).await;
            assert_agora_error(&reply, StatusCode::FORBIDDEN, "InvalidPermission", "lobby");
        }
    }
    let reply = api.send("GET", &path(APP_ID, &format!("/agents/{mine}")), Some(&lobby), None).await;
    assert_eq!(reply.json["status"], "RUNNING", "{}", reply.text);
    let reply = api.send("POST", &path(APP_ID, &format!("/agents/{mine}/leave")), Some(&lobby), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // A uid-0 token reaches every uid of its channel, and only its channel.
    let room = join(&api, &serde_json::from_str(&join_as("room", "room-1", "7")).unwrap()).await;
    let any = as_token(ANY_UID_TOKEN);
    let reply = api.send("GET", &path(APP_ID, &format!("/agents/{room}")), Some(&any), None).await;
    assert_eq!(reply.json["status"], "RUNNING", "{}", reply.text);
    let reply = api.send("GET", &path(APP_ID, &format!("/agents/{boardroom}")), Some(&any), None).await;
    assert_agora_error(&reply, StatusCode::FORBIDDEN, "InvalidPermission", "room-1");

    // The agents the tokens could not reach are untouched.
    let app = colloquy_model::AppId::new(APP_ID).unwrap();
    for id in [&boardroom, &lobby_43] {
        let record = api.supervisor.get(&app, &AgentId::from_string(id.clone())).await.unwrap();
        assert_eq!(record.state.status(), colloquy_model::AgentStatus::Running);
    }
}

#[tokio::test]
async fn join_validation_names_the_field() {
    let api = common::api(dialects()).await;
    let send = |body: String| {
        let api = &api;
        async move { api.send("POST", &path(APP_ID, "/join"), Some(&auth()), Some(&body)).await }
    };
    let reply = send(json!({"name": "a", "properties": {"token": "t"}}).to_string()).await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "MissingRequiredField", "properties.channel");
    let reply = send(json!({"properties": {"channel": "c"}}).to_string()).await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "MissingRequiredField", "name");
    for idle in [json!(-1), json!(259_201), json!("soon")] {
        let reply = send(json!({"name": "a", "properties": {"channel": "c", "idle_timeout": idle}}).to_string()).await;
        assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidFieldValue", "properties.idle_timeout");
    }
    let reply = send(json!({"name": "a", "properties": {"channel": "bad channel!"}}).to_string()).await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidFieldValue", "channel");
    let reply = send(json!({"name": "a", "properties": {"channel": "c", "mllm": {"enable": true}}}).to_string()).await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidFieldValue", "properties.mllm.enable");
    let reply = send(
        json!({"name": "a", "properties": {"channel": "c", "llm": {"url": "https://x.test/v1/chat/completions", "params": {"model": "m", "temperature": 9}}}})
            .to_string(),
    )
    .await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidFieldValue", "properties.llm.params.temperature");
    let reply = send("{not json".into()).await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidRequestBody", "JSON");
    let reply = send(String::new()).await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidRequestBody", "empty");
}

#[tokio::test]
async fn a_second_join_with_a_running_name_conflicts() {
    let api = common::api(dialects()).await;
    let id = join(&api, &small_join("twin")).await;
    let reply = api.send("POST", &path(APP_ID, "/join"), Some(&auth()), Some(&small_join("twin").to_string())).await;
    assert_agora_error(&reply, StatusCode::CONFLICT, "TaskConflict", "twin");
    // Another app may use the name.
    let reply = api
        .send(
            "POST",
            &path(OTHER_APP_ID, "/join"),
            Some(&basic(OTHER_APP_KEY, OTHER_APP_SECRET)),
            Some(&small_join("twin").to_string()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // Once the first left, the name is free again.
    api.send("POST", &path(APP_ID, &format!("/agents/{id}/leave")), Some(&auth()), None).await;
    join(&api, &small_join("twin")).await;
}

#[tokio::test]
async fn the_node_limit_is_a_quota_error() {
    let api = common::api(Options { max_agents: 1, ..dialects() }).await;
    join(&api, &small_join("one")).await;
    let reply = api.send("POST", &path(APP_ID, "/join"), Some(&auth()), Some(&small_join("two").to_string())).await;
    assert_agora_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ResourceQuotaLimitExceeded", "maximum");
}

#[tokio::test]
async fn rate_limit_answers_429() {
    let api =
        common::api(Options { rate_limit: colloquy_http::auth::RateLimit { per_second: 1, burst: 1 }, ..dialects() })
            .await;
    let first = api.send("GET", &path(APP_ID, "/agents"), Some(&auth()), None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let second = api.send("GET", &path(APP_ID, "/agents"), Some(&auth()), None).await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS, "{}", second.text);
    assert_eq!(second.json["reason"], "TooManyRequests");
    assert!(second.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn other_apps_cannot_see_or_steer_the_agent() {
    let api = common::api(Options { media: true, ..dialects() }).await;
    let id = join(&api, &small_join("private")).await;
    let other = basic(OTHER_APP_KEY, OTHER_APP_SECRET);
    for (method, suffix, body) in endpoints(&id).into_iter().skip(2) {
        let reply = api.send(method, &path(OTHER_APP_ID, &suffix), Some(&other), body.as_deref()).await;
        assert_agora_error(&reply, StatusCode::NOT_FOUND, "TaskNotFound", "agent");
    }
    let reply = api.send("GET", &path(OTHER_APP_ID, "/agents?state=0,1,2,3,4,5,6"), Some(&other), None).await;
    assert_eq!(reply.json["data"]["count"], 0, "{}", reply.text);
    assert!(api.media.as_ref().unwrap().received(&id).is_empty());
    let reply = api.send("GET", &path(APP_ID, &format!("/agents/{id}")), Some(&auth()), None).await;
    assert_eq!(reply.json["status"], "RUNNING");
}

#[tokio::test]
async fn speak_interrupt_think_and_update_reach_the_agent() {
    let api = common::api(Options { media: true, ..dialects() }).await;
    let id = join(&api, &small_join("talker")).await;
    let media = api.media.as_ref().unwrap();
    let post = |suffix: &str, body: &str| {
        let (api, url, body) = (&api, path(APP_ID, &format!("/agents/{id}{suffix}")), body.to_owned());
        async move { api.send("POST", &url, Some(&auth()), Some(&body)).await }
    };
    let before = now_secs();
    // The docs' speak example.
    let reply = post(
        "/speak",
        r#"{"text":"Sorry, I didn't catch that. Could you repeat?","priority":"INTERRUPT","interruptable":false}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let keys: Vec<_> = reply.json.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["agent_id", "channel", "start_ts"]);
    assert_eq!(reply.json["agent_id"], id.as_str());
    assert_eq!(reply.json["channel"], "room-1");
    assert!(reply.json["start_ts"].as_i64().unwrap() >= before);
    let reply = post("/speak", r#"{"text":"Later.","priority":"APPEND"}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = post("/interrupt", "{}").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["channel"], "room-1");
    let reply = post("/think", r#"{"text":"The user just opened the pricing page.","on_listening_action":"interrupt","metadata":{"page":"pricing"}}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["agent_id"], id.as_str());
    // update: llm.params replaces the whole object; the token alone changes nothing.
    let reply = post(
        "/update",
        r#"{"properties":{"token":"007new","llm":{"system_messages":[{"role":"system","content":"Be brief."}],"params":{"model":"gpt-4o","max_tokens":1024}}}}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["agent_id"], id.as_str());
    assert_eq!(reply.json["status"], "RUNNING");
    assert!(reply.json["create_ts"].is_i64());
    let reply = post("/update", r#"{"properties":{"token":"007newer"}}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    assert_eq!(
        media.received(&id),
        [
            Received::Command(AgentCommand::Speak {
                text: "Sorry, I didn't catch that. Could you repeat?".into(),
                priority: SpeakPriority::Interrupt,
                interruptible: false,
            }),
            Received::Command(AgentCommand::Speak {
                text: "Later.".into(),
                priority: SpeakPriority::Append,
                interruptible: true
            }),
            Received::Command(AgentCommand::Interrupt),
            Received::Command(AgentCommand::Think {
                text: "The user just opened the pricing page.".into(),
                // Agora's defaults, but for the listening action the request gave.
                handling: ThinkHandling {
                    listening: ThinkAction::Interrupt,
                    thinking: ThinkAction::Interrupt,
                    speaking: ThinkAction::Ignore,
                    interruptible: true,
                },
            }),
            Received::Update(SpecUpdate {
                system_messages: Some(vec![PromptMessage { role: PromptRole::System, content: "Be brief.".into() }]),
                llm_params: Some(LlmParams { max_tokens: 1024, ..LlmParams::DEFAULT }),
                voice: None,
                speed: None,
                interruption: None,
                warnings: Vec::new(),
            }),
        ]
    );

    // Validation of each command.
    for (suffix, body, status, reason, mentions) in [
        ("/speak", r#"{"priority":"APPEND"}"#, StatusCode::BAD_REQUEST, "MissingRequiredField", "text"),
        ("/speak", r#"{"text":"hi","priority":"SHOUT"}"#, StatusCode::BAD_REQUEST, "InvalidFieldValue", "priority"),
        ("/think", r#"{}"#, StatusCode::BAD_REQUEST, "MissingRequiredField", "text"),
        (
            "/think",
            r#"{"text":"x","on_speaking_action":"inject"}"#, // inject is for listening only
            StatusCode::BAD_REQUEST,
            "InvalidFieldValue",
            "on_speaking_action",
        ),
        ("/interrupt", "[1]", StatusCode::BAD_REQUEST, "InvalidRequestBody", "object"),
        ("/update", r#"{"properties":{}}"#, StatusCode::BAD_REQUEST, "MissingRequiredField", "properties"),
        (
            "/update",
            r#"{"properties":{"llm":{"params":{"top_p":0}}}}"#,
            StatusCode::BAD_REQUEST,
            "InvalidFieldValue",
            "properties.llm.params.top_p",
        ),
        (
            "/update",
            r#"{"properties":{"mllm":{"params":{}}}}"#,
            StatusCode::BAD_REQUEST,
            "InvalidFieldValue",
            "properties.mllm",
        ),
    ] {
        let reply = post(suffix, body).await;
        assert_agora_error(&reply, status, reason, mentions);
    }
    let long = json!({"text": "a".repeat(513)}).to_string();
    assert_agora_error(&post("/speak", &long).await, StatusCode::BAD_REQUEST, "InvalidFieldValue", "512");
    assert_eq!(media.received(&id).len(), 5, "refused commands reach nobody");

    // After leave, commands find no agent.
    api.send("POST", &path(APP_ID, &format!("/agents/{id}/leave")), Some(&auth()), None).await;
    for suffix in ["/speak", "/think"] {
        assert_agora_error(&post(suffix, r#"{"text":"hi"}"#).await, StatusCode::NOT_FOUND, "TaskNotFound", "exited");
    }
    assert_agora_error(&post("/interrupt", "{}").await, StatusCode::NOT_FOUND, "TaskNotFound", "exited");
    assert_agora_error(
        &post("/update", r#"{"properties":{"token":"t"}}"#).await,
        StatusCode::NOT_FOUND,
        "TaskNotFound",
        "agent",
    );
    // Unknown ids.
    let reply = api.send("GET", &path(APP_ID, "/agents/nope"), Some(&auth()), None).await;
    assert_agora_error(&reply, StatusCode::NOT_FOUND, "TaskNotFound", "agent");
}

#[tokio::test]
async fn without_media_commands_are_unavailable() {
    let api = common::api(dialects()).await;
    let id = join(&api, &small_join("mute")).await;
    let reply =
        api.send("POST", &path(APP_ID, &format!("/agents/{id}/speak")), Some(&auth()), Some(r#"{"text":"hi"}"#)).await;
    assert_agora_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "media");
}

fn entry(turn_id: u64, speaker: Speaker, content: &str, at: i64) -> HistoryEntry {
    HistoryEntry { turn_id, speaker, content: content.into(), interrupted: false, at: UnixMillis(at) }
}

fn turn(turn_id: u64, start: TurnStart, end: TurnEnd) -> TurnRecord {
    TurnRecord {
        turn_id,
        start,
        end,
        started_at: UnixMillis(1_700_000_000_000 + turn_id as i64 * 1000),
        ended_at: UnixMillis(1_700_000_000_500 + turn_id as i64 * 1000),
        metrics: TurnMetrics {
            eou_delay_ms: Some(90),
            asr_ttlw_ms: Some(110),
            llm_ttft_ms: Some(321),
            llm_ttfs_ms: Some(400),
            tts_ttfb_ms: Some(123),
            engine_overhead_ms: Some(5),
            e2e_ms: Some(900),
            tool_ms: None,
        },
        detail: Default::default(),
    }
}

#[tokio::test]
async fn history_and_turns_answer_the_documented_shapes() {
    let api = common::api(dialects()).await;
    let id = join(&api, &small_join("memory")).await;
    let agent = AgentId::from_string(id.clone());
    api.store.append_history(&agent, &entry(1, Speaker::User, "What time is it?", 1)).await.unwrap();
    api.store.append_history(&agent, &entry(1, Speaker::Assistant, "Noon.", 2)).await.unwrap();
    for t in 1..=3 {
        let mut record = turn(t, if t == 1 { TurnStart::Greeting } else { TurnStart::VoiceInput }, TurnEnd::Ok);
        if t == 1 {
            record.detail.greeting_nth = Some(1);
        }
        if t == 3 {
            // The user's speech (1.2 s) had cut the agent off after 300 ms; then the user cut
            // this answer off in turn, 2 s into it.
            record.end = TurnEnd::Interrupted;
            record.detail = TurnDetail {
                speech_duration_ms: Some(1200),
                playback_ms: Some(2000),
                greeting_nth: None,
                interrupted_by: Some(InterruptCause::UserSpeech),
                interrupt_duration_ms: Some(300),
            };
        }
        api.store.record_turn(&agent, &record).await.unwrap();
    }
    let reply = api.send("GET", &path(APP_ID, &format!("/agents/{id}/history")), Some(&auth()), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["agent_id"], id.as_str());
    assert_eq!(reply.json["status"], "RUNNING");
    assert!(reply.json["start_ts"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        reply.json["contents"],
        json!([{"role": "user", "content": "What time is it?"}, {"role": "assistant", "content": "Noon."}])
    );

    let reply = api
        .send("GET", &path(APP_ID, &format!("/agents/{id}/turns?page_index=2&page_size=2")), Some(&auth()), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["agent_id"], id.as_str());
    assert_eq!(reply.json["name"], "memory");
    assert_eq!(reply.json["channel"], "room-1");
    assert_eq!(reply.json["total_turn_count"], 3);
    assert_eq!(reply.json["pagination"], json!({"page_index": 2, "total_pages": 2, "is_last_page": true}));
    assert_eq!(
        reply.json["turns"],
        json!([{
            "agent_id": id, "channel": "room-1", "turn_id": 3,
            "start": {"start_at": 1_700_000_003_000i64, "type": "voice_input",
                      "metadata": {"speech_duration_ms": 1200, "interrupt_duration_ms": 300}},
            "end": {"end_at": 1_700_000_003_500i64, "type": "interrupted",
                    "metadata": {"playback_duration_ms": 2000, "caused_by": "start_of_speech"}},
            "metrics": {"e2e_latency_ms": 900, "segmented_latency_ms": [
                {"name": "algorithm_processing", "latency": 90}, {"name": "asr_ttlw", "latency": 110},
                {"name": "llm_ttft", "latency": 321}, {"name": "llm_ftfs", "latency": 400}, {"name": "tts_ttfb", "latency": 123}
            ]}
        }])
    );
    let reply = api.send("GET", &path(APP_ID, &format!("/agents/{id}/turns")), Some(&auth()), None).await;
    assert_eq!(reply.json["turns"][0]["start"]["type"], "greeting");
    assert_eq!(reply.json["turns"][0]["start"]["metadata"], json!({"greeting_nth": 1}));
    assert_eq!(reply.json["pagination"]["is_last_page"], true);
    for query in ["page_size=0", "page_index=0", "page_size=abc"] {
        let reply = api.send("GET", &path(APP_ID, &format!("/agents/{id}/turns?{query}")), Some(&auth()), None).await;
        assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidFieldValue", query.split('=').next().unwrap());
    }
}

/// Checks both signatures with the hmac, sha1 and sha2 crates, independently of the server's signer.
#[track_caller]
fn assert_signed(headers: &axum::http::HeaderMap, body: &str) {
    let mut sha1 = hmac::Hmac::<sha1::Sha1>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    sha1.update(body.as_bytes());
    let mut sha256 = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    sha256.update(body.as_bytes());
    assert_eq!(headers["agora-signature"].to_str().unwrap(), hex::encode(sha1.finalize().into_bytes()));
    assert_eq!(headers["agora-signature-v2"].to_str().unwrap(), hex::encode(sha256.finalize().into_bytes()));
    assert_eq!(headers["content-type"], "application/json");
}

#[test]
fn the_signature_check_itself_matches_a_known_vector() {
    // Computed with python3: hmac.new(b"webhook-secret-1", b'{"a":1}', hashlib.sha1 / sha256).hexdigest()
    let body = r#"{"a":1}"#;
    let mut sha1 = hmac::Hmac::<sha1::Sha1>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    sha1.update(body.as_bytes());
    let mut sha256 = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    sha256.update(body.as_bytes());
    assert_eq!(hex::encode(sha1.finalize().into_bytes()), SHA1_VECTOR);
    assert_eq!(hex::encode(sha256.finalize().into_bytes()), SHA256_VECTOR);
}

const SHA1_VECTOR: &str = "3e830d7a23c7e74110b454c5816c358e912c98a4";
const SHA256_VECTOR: &str = "7a1060318b76756954bef5a8a8e1b847cce6bd7492bc1060d107ddd7e0dc2ab0";

#[tokio::test]
async fn webhooks_are_agoras_ncs_notifications_signed_twice() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let api = common::api(Options { media: true, webhook_url: Some(url), ..dialects() }).await;
    let mut body = small_join("hooked");
    body["properties"]["labels"] = json!({"tenant": "acme", "ticket": "42"});
    let id = join(&api, &body).await;
    let agent = AgentId::from_string(id.clone());
    let media = api.media.as_ref().unwrap();

    let started = receiver.accepted(1).await;
    media.emit(&id, ConversationEvent::Error { turn: 2, stage: "llm", message: "the LLM answered 500".into() });
    let ended = turn(2, TurnStart::VoiceInput, TurnEnd::Error);
    api.store.record_turn(&agent, &ended).await.unwrap();
    media.emit(&id, ConversationEvent::TurnEnded(ended));
    // Events without an Agora form send nothing.
    media.emit(&id, ConversationEvent::UserSpeech { turn: 3, speaking: true });
    receiver.accepted(3).await;
    api.store.append_history(&agent, &entry(2, Speaker::User, "Hello?", 10)).await.unwrap();
    api.store.append_history(&agent, &entry(2, Speaker::Assistant, "Hi!", 11)).await.unwrap();
    let reply = api.send("POST", &path(APP_ID, &format!("/agents/{id}/leave")), Some(&auth()), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let all = receiver.accepted(6).await;
    assert_eq!(all.len(), 6, "{all:?}");
    assert_eq!(started[0].1, all[0].1);

    let mut notices = Vec::new();
    let mut by_type = std::collections::BTreeMap::new();
    for (headers, body) in &all {
        assert_signed(headers, body);
        let json: Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["productId"], 17);
        assert_eq!(json["sid"], id.as_str());
        assert!(json["notifyMs"].as_i64().unwrap() > 1_700_000_000_000);
        assert_eq!(json["payload"]["labels"], json!({"tenant": "acme", "ticket": "42"}));
        assert_eq!(json["payload"]["agent_id"], id.as_str());
        assert_eq!(json["payload"]["channel"], "room-1");
        notices.push(json["noticeId"].as_str().unwrap().to_owned());
        by_type.insert(json["eventType"].as_u64().unwrap(), json["payload"].clone());
    }
    let types: Vec<u64> =
        all.iter().map(|(_, b)| serde_json::from_str::<Value>(b).unwrap()["eventType"].as_u64().unwrap()).collect();
    assert_eq!(types, [101, 110, 111, 102, 103, 112]);
    notices.sort();
    notices.dedup();
    assert_eq!(notices.len(), 6, "each event has its own noticeId");

    assert_eq!(by_type[&101]["name"], "hooked");
    assert!(by_type[&101]["start_ts"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(by_type[&110]["turn_id"], 2);
    assert_eq!(by_type[&110]["errors"][0]["module"], "llm");
    assert_eq!(by_type[&110]["errors"][0]["message"], "the LLM answered 500");
    assert_eq!(
        by_type[&111]["metrics"],
        json!([{"turn_id": 2, "asr_ttlw": 110, "llm_ttfb": 321, "llm_ttfs": 400, "tts_ttfb": 123}])
    );
    assert_eq!(by_type[&102]["status"], "STOPPED");
    assert_eq!(by_type[&102]["message"], "OK");
    assert!(by_type[&102]["stop_ts"].as_i64().unwrap() >= by_type[&102]["start_ts"].as_i64().unwrap());
    assert_eq!(
        by_type[&103]["contents"],
        json!([{"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "Hi!"}])
    );
    assert_eq!(by_type[&112]["total_turn_count"], 1);
    assert_eq!(by_type[&112]["is_truncated"], false);
    assert_eq!(by_type[&112]["turns"][0]["turn_id"], 2);
    assert_eq!(by_type[&112]["turns"][0]["end"]["type"], "error");
    assert_eq!(by_type[&112]["turns"][0]["metrics"]["segmented_latency_ms"]["llm_ttft"], 321);
}

#[tokio::test]
async fn a_refused_delivery_is_retried_with_the_same_notice_id() {
    let receiver = Receiver::default();
    *receiver.refuse_first.lock().unwrap() = 2;
    let url = receiver.start().await;
    let api = common::api(Options { webhook_url: Some(url), ..dialects() }).await;
    join(&api, &small_join("retried")).await;
    let accepted = receiver.accepted(1).await;
    let requests = receiver.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    for (headers, body) in &requests {
        assert_eq!(body, &accepted[0].1, "the same body, so the same noticeId");
        assert_signed(headers, body);
    }
}

/// The test server's options, with the vendor dialects mounted.
fn dialects() -> Options {
    Options { dialects: std::sync::Arc::new(colloquy_dialects::VendorDialects::new()), ..Options::default() }
}

/// Agora's SDKs with `Area.CN` put `/cn` before the path: the same API answers there.
#[tokio::test]
async fn the_cn_area_prefix_serves_the_same_api() {
    let api = common::api(dialects()).await;
    let cn = |rest: &str| format!("/cn{}", path(APP_ID, rest));
    let reply = api.send("POST", &cn("/join"), Some(&auth()), Some(&small_join("cn-agent").to_string())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.json["agent_id"].as_str().unwrap().to_owned();
    let query = api.send("GET", &cn(&format!("/agents/{id}")), Some(&auth()), None).await;
    assert_eq!(query.status, StatusCode::OK, "{}", query.text);
    assert_eq!(query.json["agent_id"], id.as_str());
    let unauthorized = api.send("GET", &cn(&format!("/agents/{id}")), None, None).await;
    assert_agora_error(&unauthorized, StatusCode::UNAUTHORIZED, "InvalidPermission", "Authorization");
}

/// Azure OpenAI's chat-completions URL, query and all, with its `api-key` header style (what
/// Agora's docs show for `vendor: "azure"`), is called as given.
#[tokio::test]
async fn an_azure_openai_url_is_taken_as_given() {
    let api = common::api(dialects()).await;
    let url = "https://voice.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21";
    let body = json!({"name": "azure", "properties": {
        "channel": "room-1", "remote_rtc_uids": ["*"], "idle_timeout": 0,
        "llm": {"vendor": "azure", "url": url, "api_key": "azure-key", "system_messages": []}
    }});
    let id = join(&api, &body).await;
    let record =
        api.supervisor.get(&colloquy_model::AppId::new(APP_ID).unwrap(), &AgentId::from_string(id)).await.unwrap();
    let colloquy_model::LlmProvider::OpenAiCompatible(endpoint) = &record.spec.llm.provider else {
        panic!("{:?}", record.spec.llm.provider)
    };
    assert_eq!(endpoint.url, "https://voice.openai.azure.com/openai/deployments/gpt-4o-mini?api-version=2024-10-21");
    assert_eq!(endpoint.model, "gpt-4o-mini", "the deployment names the model");
    assert_eq!(endpoint.key_header, colloquy_model::KeyHeader::ApiKey);
    assert_eq!(endpoint.api_key.as_ref().unwrap().expose(), "azure-key");

    let bad = json!({"name": "x", "properties": {"channel": "room-1", "llm": {"url": "https://example.com/v1/complete?x=1", "params": {"model": "m"}}}});
    let reply = api.send("POST", &path(APP_ID, "/join"), Some(&auth()), Some(&bad.to_string())).await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidFieldValue", "llm.url");
}

/// What a join sets but this server does not honour is reported with the agent, not only logged:
/// a voice this server does not implement (Hume AI, with substitution on), and a property Agora
/// does not define.
#[tokio::test]
async fn settings_not_honoured_are_reported_with_the_agent() {
    let api = common::api(Options { substitute_unsupported_vendors: true, ..dialects() }).await;
    let mut body = docs_join("warned", "room-1");
    body["properties"]["made_up"] = json!(true);
    body["properties"]["tts"] = json!({"vendor": "humeai", "params": {"api_key": "k", "voice_id": "v"}});
    let id = join(&api, &body).await;
    let native = api.send("GET", &format!("/v1/agents/{id}"), Some(&basic(APP_KEY, APP_SECRET)), None).await;
    assert_eq!(native.status, StatusCode::OK, "{}", native.text);
    let warnings = native.json["warnings"].as_array().unwrap();
    let fields: Vec<&str> = warnings.iter().map(|w| w["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"properties.tts.vendor"), "{fields:?}");
    assert!(fields.contains(&"properties.made_up"), "{fields:?}");
    assert!(warnings.iter().all(|w| !w["message"].as_str().unwrap().is_empty()), "{warnings:?}");
    // An update's too: a parameter the LLM is not given.
    let update = json!({"properties": {"llm": {"params": {"max_tokens": 64, "frequency_penalty": 1}}}}).to_string();
    let reply = api.send("POST", &path(APP_ID, &format!("/agents/{id}/update")), Some(&auth()), Some(&update)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let native = api.send("GET", &format!("/v1/agents/{id}"), Some(&basic(APP_KEY, APP_SECRET)), None).await;
    let warnings = native.json["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w["field"] == "properties.llm.params.frequency_penalty"), "{warnings:?}");
    assert!(warnings.iter().any(|w| w["field"] == "properties.tts.vendor"), "the join's stay: {warnings:?}");
    // A join without such settings has none.
    let plain = join(&api, &small_join("plain")).await;
    let native = api.send("GET", &format!("/v1/agents/{plain}"), Some(&basic(APP_KEY, APP_SECRET)), None).await;
    assert_eq!(native.json["warnings"], json!([]), "{}", native.text);
}

/// `vendor: "local"` with a `params.model` that is no model here (Agora's SDK builders always send
/// one) runs the default local model, with a warning; `local://NAME` naming no model here is a
/// 400 naming the models there are, not a start that fails with a retryable 503.
#[tokio::test]
async fn local_model_names_are_checked_at_the_edge() {
    let api = common::api(dialects()).await;
    let local = |llm: Value| json!({"name": "local", "properties": {"channel": "room-1", "llm": llm}});
    let id = join(&api, &local(json!({"vendor": "local", "params": {"model": "gpt-4o-mini"}}))).await;
    let record =
        api.supervisor.get(&colloquy_model::AppId::new(APP_ID).unwrap(), &AgentId::from_string(id)).await.unwrap();
    let default = colloquy_model::LlmProvider::DEFAULT_LOCAL_MODEL;
    assert_eq!(record.spec.llm.provider, colloquy_model::LlmProvider::Local { model: default.to_owned() });
    assert!(
        record.spec.warnings.iter().any(|w| w.field == "properties.llm.params.model"),
        "{:?}",
        record.spec.warnings
    );

    let body = local(json!({"url": "local://llama-70b"})).to_string();
    let reply = api.send("POST", &path(APP_ID, "/join"), Some(&auth()), Some(&body)).await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidFieldValue", default);
    assert!(reply.json["detail"].as_str().unwrap().contains("llama-70b"), "{}", reply.text);
    assert_eq!(api.supervisor.live_counts().values().sum::<usize>(), 1, "the refused join started nothing");
}

/// A vendor that is not implemented is refused at the join, in Agora's envelope, naming it and the
/// vendors there are; nothing starts.
#[tokio::test]
async fn a_vendor_that_is_not_implemented_is_refused_unless_the_app_allows_substitution() {
    let api = common::api(dialects()).await;
    let mut body = docs_join("refused", "room-1");
    body["properties"]["tts"] = json!({"vendor": "humeai", "params": {"api_key": "k", "voice_id": "v"}});
    let reply = api.send("POST", &path(APP_ID, "/join"), Some(&auth()), Some(&body.to_string())).await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidFieldValue", "properties.tts.vendor");
    let detail = reply.json["detail"].as_str().unwrap();
    assert!(detail.contains("\"humeai\"") && detail.contains("elevenlabs") && detail.contains("microsoft"), "{detail}");
    let list = api.send("GET", &path(APP_ID, "/agents"), Some(&auth()), None).await;
    assert_eq!(list.json["data"]["count"], 0, "{}", list.text);
    let mut asr = small_join("asr");
    asr["properties"]["asr"] = json!({"vendor": "speechmatics", "params": {"key": "k"}});
    let reply = api.send("POST", &path(APP_ID, "/join"), Some(&auth()), Some(&asr.to_string())).await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidFieldValue", "properties.asr.vendor");
    // Agora's own recognizer means our default, without a word.
    asr["properties"]["asr"] = json!({"vendor": "ares", "language": "en-US"});
    let id = join(&api, &asr).await;
    let native = api.send("GET", &format!("/v1/agents/{id}"), Some(&basic(APP_KEY, APP_SECRET)), None).await;
    assert_eq!(native.json["warnings"], json!([]), "{}", native.text);
    assert_eq!(native.json["config"]["asr"]["vendor"], "local", "{}", native.text);
}

/// Deepgram and ElevenLabs with Agora's documented params run as those vendors; the keys are
/// never shown back, and a param the vendor does not take is named.
#[tokio::test]
async fn deepgram_and_elevenlabs_params_reach_the_vendors_as_agora_documents_them() {
    let api = common::api(dialects()).await;
    let mut body = small_join("vendors");
    body["properties"]["asr"] = json!({"language": "en-US", "vendor": "deepgram", "params": {
        "url": "wss://api.deepgram.com/v1/listen", "key": "dg-secret", "model": "nova-2", "language": "en"}});
    body["properties"]["tts"] = json!({"vendor": "elevenlabs", "params": {
        "key": "xi-secret", "model_id": "eleven_flash_v2_5", "voice_id": "pNInz6obpgDQGcFmaJgB", "sample_rate": 24000,
        "base_url": "wss://api.elevenlabs.io/v1", "stability": 0.5}});
    let id = join(&api, &body).await;
    let record = api
        .supervisor
        .get(&colloquy_model::AppId::new(APP_ID).unwrap(), &AgentId::from_string(id.clone()))
        .await
        .unwrap();
    match (&record.spec.asr.provider, &record.spec.tts.provider) {
        (colloquy_model::AsrProvider::Vendor(asr), colloquy_model::TtsProvider::Vendor(tts)) => {
            assert_eq!((asr.vendor.as_str(), asr.params["model"].as_str()), ("deepgram", Some("nova-2")));
            assert_eq!(asr.secrets["key"].expose(), "dg-secret");
            assert_eq!((tts.vendor.as_str(), tts.secrets["key"].expose()), ("elevenlabs", "xi-secret"));
        }
        other => panic!("expected both vendors, got {other:?}"),
    }
    assert_eq!(record.spec.tts.voice, "pNInz6obpgDQGcFmaJgB");
    let native = api.send("GET", &format!("/v1/agents/{id}"), Some(&basic(APP_KEY, APP_SECRET)), None).await;
    assert!(!native.text.contains("dg-secret") && !native.text.contains("xi-secret"), "{}", native.text);
    assert_eq!(native.json["config"]["tts"]["params"]["key"], "<redacted>", "{}", native.text);
    assert_eq!(native.json["config"]["asr"]["params"]["model"], "nova-2", "{}", native.text);
    assert_eq!(native.json["warnings"], json!([]), "{}", native.text);

    let mut bad = small_join("bad");
    bad["properties"]["tts"] =
        json!({"vendor": "elevenlabs", "params": {"key": "k", "voice_id": "v", "sample_rate": 12345}});
    let reply = api.send("POST", &path(APP_ID, "/join"), Some(&auth()), Some(&bad.to_string())).await;
    assert_agora_error(&reply, StatusCode::BAD_REQUEST, "InvalidFieldValue", "properties.tts.params.sample_rate");
    bad["properties"]["tts"] = json!({"vendor": "elevenlabs", "params": {"voice_id": "v"}});
    let reply = api.send("POST", &path(APP_ID, "/join"), Some(&auth()), Some(&bad.to_string())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert!(reply.json["detail"].as_str().unwrap().contains("properties.tts.params.key"), "{}", reply.text);
}
