//! The native API in process: every route's happy path, auth, validation, limits, metrics, OpenAPI.

mod common;

use axum::http::StatusCode;
use colloquy_http::auth::RateLimit;
use common::{KEY, Options, SECRET, api, assert_error, basic};
use serde_json::json;

#[tokio::test]
async fn an_agent_lives_through_every_route() {
    let api = api(Options::default()).await;
    let started = api.post("/v1/agents", r#"{"name":"support","channel":"room-1"}"#).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    assert_eq!(started.json["status"], "RUNNING");
    let id = started.json["agent_id"].as_str().unwrap().to_owned();
    // Defaults are filled in and shown back.
    let config = &started.json["config"];
    assert_eq!(config["idle_timeout"], 30);
    assert_eq!(config["llm"]["vendor"], "local");
    assert_eq!(config["asr"]["model"], "whisper-tiny.en");
    assert_eq!(config["tts"]["voice"], "en_US-joe-medium");
    assert_eq!(config["turn_detection"]["silence_duration_ms"], 640);
    assert_eq!(config["interruption"]["mode"], "start_of_speech");
    assert_eq!(config["max_history"], 32);
    assert_eq!(config["remote_uids"], json!(["*"]));

    let got = api.get(&format!("/v1/agents/{id}")).await;
    assert_eq!((got.status, got.json["name"].clone()), (StatusCode::OK, json!("support")));

    let updated = api
        .post(
            &format!("/v1/agents/{id}/update"),
            r#"{"llm":{"system_messages":[{"role":"system","content":"Be brief."}],"params":{"temperature":0.2}},"tts":{"speed":1.25}}"#,
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.json["config"]["llm"]["system_messages"][0]["content"], "Be brief.");
    let temperature = updated.json["config"]["llm"]["params"]["temperature"].as_f64().unwrap();
    assert!((temperature - 0.2).abs() < 1e-6);
    // Parameters not sent keep their value.
    assert_eq!(updated.json["config"]["llm"]["params"]["max_tokens"], 256);
    assert_eq!(updated.json["config"]["tts"]["speed"], 1.25);

    for command in ["speak", "think"] {
        let reply = api.post(&format!("/v1/agents/{id}/{command}"), r#"{"text":"hello"}"#).await;
        assert_error(&reply, StatusCode::CONFLICT, "no_media_session", None);
        assert_eq!(reply.json["error"]["message"], "agent has no media session");
    }
    let reply = api.send("POST", &format!("/v1/agents/{id}/interrupt"), Some(&basic(KEY, SECRET)), None).await;
    assert_error(&reply, StatusCode::CONFLICT, "no_media_session", None);

    let history = api.get(&format!("/v1/agents/{id}/history")).await;
    assert_eq!((history.status, history.json["history"].clone()), (StatusCode::OK, json!([])));
    let turns = api.get(&format!("/v1/agents/{id}/turns")).await;
    assert_eq!((turns.status, turns.json["turns"].clone()), (StatusCode::OK, json!([])));

    let left = api.post(&format!("/v1/agents/{id}/leave"), "").await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.text);
    assert_eq!((left.json["status"].clone(), left.json["reason"]["code"].clone()), (json!("STOPPED"), json!("left")));
    assert!(left.json["stopped_at"].is_i64());
    // Leaving again is harmless; commands now say the agent is not running.
    assert_eq!(api.post(&format!("/v1/agents/{id}/leave"), "").await.json["status"], "STOPPED");
    let reply = api.post(&format!("/v1/agents/{id}/speak"), r#"{"text":"hello"}"#).await;
    assert_error(&reply, StatusCode::CONFLICT, "agent_not_running", None);
    let reply = api.post(&format!("/v1/agents/{id}/update"), r#"{"tts":{"speed":1.0}}"#).await;
    assert_error(&reply, StatusCode::CONFLICT, "agent_not_running", None);
}

#[tokio::test]
async fn requests_without_the_right_credentials_are_refused() {
    let api = api(Options::default()).await;
    let cases = [
        None,
        Some(basic(KEY, "wrong")),
        Some(basic("nobody", SECRET)),
        Some("Bearer abc".to_owned()),
        Some("Basic not-base64!".to_owned()),
    ];
    for auth in cases {
        let reply = api.send("GET", "/v1/agents", auth.as_deref(), None).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
        assert_eq!(reply.headers["www-authenticate"], "Basic realm=\"colloquy\"");
    }
    // Health, metrics and the OpenAPI document need no credentials.
    for path in ["/healthz", "/metrics", "/openapi.json"] {
        assert_eq!(api.send("GET", path, None, None).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn each_app_sees_only_its_own_agents() {
    let api = api(Options::default()).await;
    let id = api.start("bot", "room").await;
    let other = basic("other-key", "other-secret");
    let reply = api.send("GET", &format!("/v1/agents/{id}"), Some(&other), None).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found", None);
    let list = api.send("GET", "/v1/agents", Some(&other), None).await;
    assert_eq!(list.json["agents"], json!([]));
    // The other app may use the same name.
    let reply = api.send("POST", "/v1/agents", Some(&other), Some(r#"{"name":"bot","channel":"room"}"#)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// Each case: a body for `POST /v1/agents`, and the error code and field it must answer.
#[tokio::test]
async fn validation_errors_name_the_field() {
    let api = api(Options::default()).await;
    let cases: &[(&str, &str, Option<&str>)] = &[
        (r#"{"channel":"c"}"#, "missing_field", Some("name")),
        (r#"{"name":"n"}"#, "missing_field", Some("channel")),
        (r#"{"name":"a b","channel":"c"}"#, "invalid_field", Some("name")),
        (r#"{"name":"","channel":"c"}"#, "invalid_field", Some("name")),
        (r#"{"name":"n","channel":"c","colour":"red"}"#, "unknown_field", Some("colour")),
        (r#"{"name":"n","channel":"c","llm":{"temprature":1}}"#, "unknown_field", Some("llm.temprature")),
        (r#"{"name":"n","channel":"c","llm":{"vendor":"acme"}}"#, "invalid_field", Some("llm.vendor")),
        (r#"{"name":"n","channel":"c","asr":{"vendor":"acme"}}"#, "invalid_field", Some("asr.vendor")),
        (r#"{"name":"n","channel":"c","asr":{"vendor":"deepgram"}}"#, "missing_field", Some("asr.params.key")),
        (
            r#"{"name":"n","channel":"c","asr":{"vendor":"deepgram","params":{"key":"k","url":"https://x"}}}"#,
            "invalid_field",
            Some("asr.params.url"),
        ),
        (
            r#"{"name":"n","channel":"c","asr":{"vendor":"deepgram","model":"nova-3","params":{"key":"k"}}}"#,
            "invalid_field",
            Some("asr.model"),
        ),
        (
            r#"{"name":"n","channel":"c","asr":{"vendor":"deepgram","api_key":"k","params":{"key":"k"}}}"#,
            "invalid_field",
            Some("asr.api_key"),
        ),
        (r#"{"name":"n","channel":"c","asr":{"params":{"key":"k"}}}"#, "invalid_field", Some("asr.params")),
        (
            r#"{"name":"n","channel":"c","tts":{"vendor":"elevenlabs","voice":"v","params":{"key":"k","voice_id":"v"}}}"#,
            "invalid_field",
            Some("tts.voice"),
        ),
        (
            r#"{"name":"n","channel":"c","tts":{"fallback":[{"vendor":"local","speed":1.2}]}}"#,
            "invalid_field",
            Some("tts.fallback[0].speed"),
        ),
        (
            r#"{"name":"n","channel":"c","tts":{"fallback":[{"vendor":"humeai"}]}}"#,
            "invalid_field",
            Some("tts.fallback[0].vendor"),
        ),
        (
            r#"{"name":"n","channel":"c","asr":{"fallback":[{"fallback":[]}]}}"#,
            "invalid_field",
            Some("asr.fallback[0].fallback"),
        ),
        (
            r#"{"name":"n","channel":"c","asr":{"fallback":[{"language":"de"}]}}"#,
            "invalid_field",
            Some("asr.fallback[0].language"),
        ),
        (
            r#"{"name":"n","channel":"c","llm":{"params":{"temperature":2.5}}}"#,
            "invalid_field",
            Some("llm.params.temperature"),
        ),
        (
            r#"{"name":"n","channel":"c","llm":{"params":{"temperature":"hot"}}}"#,
            "invalid_field",
            Some("llm.params.temperature"),
        ),
        (r#"{"name":"n","channel":"c","llm":{"params":{"top_p":0}}}"#, "invalid_field", Some("llm.params.top_p")),
        (
            r#"{"name":"n","channel":"c","llm":{"params":{"max_tokens":0}}}"#,
            "invalid_field",
            Some("llm.params.max_tokens"),
        ),
        (r#"{"name":"n","channel":"c","llm":{"url":"http://x"}}"#, "invalid_field", Some("llm.url")),
        (r#"{"name":"n","channel":"c","llm":{"vendor":"openai","url":"ftp://x"}}"#, "invalid_field", Some("llm.url")),
        (
            r#"{"name":"n","channel":"c","llm":{"vendor":"openai","headers":{"bad header":"x"}}}"#,
            "invalid_field",
            Some("llm.headers.bad header"),
        ),
        (
            r#"{"name":"n","channel":"c","llm":{"vendor":"openai","timeout_ms":5}}"#,
            "invalid_field",
            Some("llm.timeout_ms"),
        ),
        (
            r#"{"name":"n","channel":"c","llm":{"system_messages":[{"role":"robot","content":"x"}]}}"#,
            "invalid_field",
            Some("llm.system_messages[0].role"),
        ),
        (
            r#"{"name":"n","channel":"c","llm":{"system_messages":[{"role":"system","content":" "}]}}"#,
            "invalid_field",
            Some("llm.system_messages[0].content"),
        ),
        (r#"{"name":"n","channel":"c","asr":{"model":"whisper-huge"}}"#, "invalid_field", Some("asr.model")),
        (r#"{"name":"n","channel":"c","asr":{"language":"de"}}"#, "invalid_field", Some("asr.language")),
        (r#"{"name":"n","channel":"c","tts":{"voice":"nobody"}}"#, "invalid_field", Some("tts.voice")),
        (r#"{"name":"n","channel":"c","tts":{"speed":3}}"#, "invalid_field", Some("tts.speed")),
        (r#"{"name":"n","channel":"c","tts":{"model":"tts-1"}}"#, "invalid_field", Some("tts.model")),
        (r#"{"name":"n","channel":"c","idle_timeout":-1}"#, "invalid_field", Some("idle_timeout")),
        (r#"{"name":"n","channel":"c","idle_timeout":259201}"#, "invalid_field", Some("idle_timeout")),
        (r#"{"name":"n","channel":"c","remote_uids":[]}"#, "invalid_field", Some("remote_uids")),
        (r#"{"name":"n","channel":"c","remote_uids":["*","u"]}"#, "invalid_field", Some("remote_uids")),
        (r#"{"name":"n","channel":"c","remote_uids":["ok","no way"]}"#, "invalid_field", Some("remote_uids[1]")),
        (
            r#"{"name":"n","channel":"c","turn_detection":{"vad_threshold":1}}"#,
            "invalid_field",
            Some("turn_detection.vad_threshold"),
        ),
        (
            r#"{"name":"n","channel":"c","turn_detection":{"silence_duration_ms":50}}"#,
            "invalid_field",
            Some("turn_detection.silence_duration_ms"),
        ),
        (
            r#"{"name":"n","channel":"c","turn_detection":{"silence_duration_ms":2000,"max_wait_ms":1000}}"#,
            "invalid_field",
            Some("turn_detection.max_wait_ms"),
        ),
        (
            r#"{"name":"n","channel":"c","interruption":{"mode":"keywords"}}"#,
            "missing_field",
            Some("interruption.keywords"),
        ),
        (
            r#"{"name":"n","channel":"c","interruption":{"keywords":["stop"]}}"#,
            "invalid_field",
            Some("interruption.keywords"),
        ),
        (
            r#"{"name":"n","channel":"c","interruption":{"mode":"whenever"}}"#,
            "invalid_field",
            Some("interruption.mode"),
        ),
        (
            r#"{"name":"n","channel":"c","interruption":{"min_speech_ms":9000}}"#,
            "invalid_field",
            Some("interruption.min_speech_ms"),
        ),
        (r#"{"name":"n","channel":"c","greeting":{"interruptible":false}}"#, "missing_field", Some("greeting.text")),
        (r#"{"name":"n","channel":"c","greeting":"hello"}"#, "invalid_field", Some("greeting")),
        (r#"{"name":"n","channel":"c","max_history":5000}"#, "invalid_field", Some("max_history")),
        (
            r#"{"name":"n","channel":"c","silence_prompt":{"timeout_ms":10,"content":"Still there?"}}"#,
            "invalid_field",
            Some("silence_prompt.timeout_ms"),
        ),
        (
            r#"{"name":"n","channel":"c","silence_prompt":{"timeout_ms":5000,"action":"shout","content":"Hi"}}"#,
            "invalid_field",
            Some("silence_prompt.action"),
        ),
        (
            r#"{"name":"n","channel":"c","callbacks":{"url":"http://127.0.0.1:9/hook","secret":""}}"#,
            "invalid_field",
            Some("callbacks.secret"),
        ),
        (r#"{"name":"n","channel":"c","callbacks":{"secret":"s"}}"#, "missing_field", Some("callbacks.url")),
        (r#"{"name":"n","channel":"c","callbacks":{"url":"nope"}}"#, "invalid_field", Some("callbacks.url")),
        (r#"{"name":"n","channel":"c""#, "invalid_json", None),
        (r#"{"name":"n","channel":"c"} trailing"#, "invalid_json", None),
        (r#"[1,2]"#, "invalid_json", None),
        (r#""#, "invalid_json", None),
    ];
    for (body, code, field) in cases {
        let reply = api.post("/v1/agents", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body} → {}", reply.text);
        assert_eq!(
            (reply.json["error"]["code"].as_str(), reply.json["error"]["field"].as_str()),
            (Some(*code), *field),
            "{body} → {}",
            reply.text
        );
    }
    // Nothing was started by any of them.
    assert!(api.supervisor.live_counts().is_empty());
}

#[tokio::test]
async fn a_full_configuration_is_accepted_and_shown_with_secrets_redacted() {
    let api = api(Options::default()).await;
    let body = json!({
        "name": "full", "channel": "room", "agent_uid": "bot-1", "remote_uids": ["alice", "bob"], "idle_timeout": 0,
        "llm": {"vendor": "openai", "url": "http://127.0.0.1:8000/v1", "api_key": "sk-123", "model": "llama",
                "headers": {"X-Team": "voice"}, "timeout_ms": 5000, "max_retries": 1,
                "system_messages": [{"role": "system", "content": "You are terse."}],
                "params": {"temperature": 0.3, "top_p": 0.9, "max_tokens": 128}},
        "asr": {"vendor": "openai", "model": "whisper-large", "language": "de", "api_key": "sk-asr"},
        "tts": {"vendor": "openai", "voice": "nova", "speed": 1.1},
        "turn_detection": {"vad_threshold": 0.6, "min_speech_ms": 200, "prefix_padding_ms": 500,
                           "silence_duration_ms": 500, "max_wait_ms": 2000},
        "interruption": {"enabled": true, "mode": "keywords", "keywords": ["stop", "wait"], "min_speech_ms": 300},
        "greeting": {"text": "Hi there!", "interruptible": false},
        "failure_message": "Sorry, say that again?",
        "max_history": 8,
        "silence_prompt": {"timeout_ms": 8000, "action": "think", "content": "Ask if they are still there."}
    });
    let reply = api.post("/v1/agents", &body.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let config = &reply.json["config"];
    assert_eq!(config["llm"]["api_key"], "<redacted>");
    assert_eq!(config["asr"]["api_key"], "<redacted>");
    assert!(config["tts"].get("api_key").is_none());
    assert_eq!(config["llm"]["headers"]["X-Team"], "voice");
    assert_eq!(config["remote_uids"], json!(["alice", "bob"]));
    assert_eq!(config["interruption"]["keywords"], json!(["stop", "wait"]));
    assert_eq!(config["greeting"], json!({"text": "Hi there!", "interruptible": false}));
    assert_eq!(
        config["silence_prompt"],
        json!({"timeout_ms": 8000, "action": "think", "content": "Ask if they are still there."})
    );
    assert_eq!(config["tts"]["model"], "tts-1");
    assert_eq!(config["asr"]["url"], "https://api.openai.com/v1");
    assert!(!reply.text.contains("sk-123"), "a secret leaked: {}", reply.text);
    // And the records never held the secret either.
    let id = reply.json["agent_id"].as_str().unwrap();
    let record = api
        .supervisor
        .store()
        .agent(&colloquy_model::AppId::native(), &colloquy_model::AgentId::from_string(id.into()))
        .await
        .unwrap()
        .unwrap();
    assert!(!format!("{:?}", record.spec).contains("sk-123"));
}

#[tokio::test]
async fn a_running_name_conflicts_until_the_agent_leaves() {
    let api = api(Options::default()).await;
    let id = api.start("bot", "room").await;
    let reply = api.post("/v1/agents", r#"{"name":"bot","channel":"elsewhere"}"#).await;
    assert_error(&reply, StatusCode::CONFLICT, "name_conflict", Some("name"));
    api.post(&format!("/v1/agents/{id}/leave"), "").await;
    api.start("bot", "room").await;
}

#[tokio::test]
async fn unknown_agents_and_routes_are_404_and_wrong_methods_405() {
    let api = api(Options::default()).await;
    for path in ["/v1/agents/nope", "/v1/agents/nope/history", "/v1/agents/nope/turns"] {
        assert_error(&api.get(path).await, StatusCode::NOT_FOUND, "not_found", None);
    }
    for command in ["leave", "speak", "think", "update", "interrupt"] {
        let body = if command == "update" { r#"{"tts":{"speed":1}}"# } else { r#"{"text":"x"}"# };
        let body = if command == "leave" || command == "interrupt" { "" } else { body };
        let reply = api.post(&format!("/v1/agents/nope/{command}"), body).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "not_found", None);
    }
    assert_error(&api.get("/v1/nothing").await, StatusCode::NOT_FOUND, "not_found", None);
    assert_error(&api.get("/nothing").await, StatusCode::NOT_FOUND, "not_found", None);
    let reply = api.send("DELETE", "/v1/agents", Some(&basic(KEY, SECRET)), None).await;
    assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None);
}

#[tokio::test]
async fn command_bodies_are_checked_before_anything_else() {
    let api = api(Options::default()).await;
    let id = api.start("bot", "room").await;
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("speak", r#"{}"#, "missing_field", Some("text")),
        ("speak", r#"{"text":""}"#, "invalid_field", Some("text")),
        ("speak", r#"{"text":"hi","priority":"URGENT"}"#, "invalid_field", Some("priority")),
        ("speak", r#"{"text":"hi","volume":3}"#, "unknown_field", Some("volume")),
        ("think", r#"{"text":"   "}"#, "invalid_field", Some("text")),
        ("interrupt", r#"{"now":true}"#, "unknown_field", Some("now")),
        ("update", r#"{}"#, "missing_field", None),
        ("update", r#"{"tts":{"voice":"nobody"}}"#, "invalid_field", Some("tts.voice")),
        ("update", r#"{"llm":{"params":{"temperature":-1}}}"#, "invalid_field", Some("llm.params.temperature")),
        ("update", r#"{"asr":{}}"#, "unknown_field", Some("asr")),
    ];
    for (command, body, code, field) in cases {
        let reply = api.post(&format!("/v1/agents/{id}/{command}"), body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{command} {body} → {}", reply.text);
        assert_eq!(
            (reply.json["error"]["code"].as_str(), reply.json["error"]["field"].as_str()),
            (Some(*code), *field),
            "{command} {body} → {}",
            reply.text
        );
    }
    let reply = api.send("POST", &format!("/v1/agents/{id}/speak"), Some(&basic(KEY, SECRET)), None).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_json", None);
}

#[tokio::test]
async fn bodies_must_be_json_and_small() {
    let api = api(Options::default()).await;
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/agents")
        .header("authorization", basic(KEY, SECRET))
        .header("content-type", "text/plain")
        .body(axum::body::Body::from(r#"{"name":"n","channel":"c"}"#))
        .unwrap();
    let response = tower::ServiceExt::oneshot(api.router.clone(), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(r#"{{"name":"n","channel":"c","failure_message":"{}"}}"#, "x".repeat(100_000));
    let reply = api.post("/v1/agents", &huge).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None);
}

/// `Expect: 100-continue` with a 50 MB `Content-Length`, over a real socket: the answer is an
/// immediate 413, not `100 Continue`, and the body is never asked for.
#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = api(Options::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = api.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    for path in ["/v1/agents", "/", "/api/conversational-ai-agent/v2/projects/1234567890/join", "/rtc/whip"] {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\ncontent-type: application/json\r\n\
             content-length: 50000000\r\nexpect: 100-continue\r\n\r\n",
            basic(KEY, SECRET)
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut answer))
            .await
            .expect("an answer without the body")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(!answer.contains("100 Continue"), "{path}: {answer}");
        assert!(answer.contains("payload_too_large") && answer.contains("50000000"), "{path}: {answer}");
    }
}

#[tokio::test]
async fn lists_page_through_every_agent_with_filters() {
    let api = api(Options::default()).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(api.start(&format!("bot{i}"), if i < 3 { "a" } else { "b" }).await);
    }
    api.post(&format!("/v1/agents/{}/leave", ids[0]), "").await;

    let mut seen = Vec::new();
    let mut path = "/v1/agents?limit=2".to_owned();
    loop {
        let page = api.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let agents = page.json["agents"].as_array().unwrap();
        assert!(agents.len() <= 2);
        seen.extend(agents.iter().map(|a| a["agent_id"].as_str().unwrap().to_owned()));
        match page.json["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/agents?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let newest_first: Vec<_> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let page = api.get("/v1/agents?channel=a&status=RUNNING").await;
    let names: Vec<_> = page.json["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bot2", "bot1"]);
    let page = api.get("/v1/agents?status=stopped,FAILED").await;
    assert_eq!(page.json["agents"].as_array().unwrap().len(), 1);

    assert_error(&api.get("/v1/agents?limit=0").await, StatusCode::BAD_REQUEST, "invalid_field", Some("limit"));
    assert_error(&api.get("/v1/agents?limit=101").await, StatusCode::BAD_REQUEST, "invalid_field", Some("limit"));
    assert_error(&api.get("/v1/agents?limit=ten").await, StatusCode::BAD_REQUEST, "invalid_field", Some("limit"));
    assert_error(&api.get("/v1/agents?status=DONE").await, StatusCode::BAD_REQUEST, "invalid_field", Some("status"));
    assert_error(&api.get("/v1/agents?cursor=forged").await, StatusCode::BAD_REQUEST, "invalid_field", Some("cursor"));
    assert_error(&api.get("/v1/agents?page=2").await, StatusCode::BAD_REQUEST, "unknown_field", Some("page"));
}

#[tokio::test]
async fn the_agent_quota_is_422_and_the_rate_limit_429() {
    let api = common::api(Options { max_agents: 1, ..Options::default() }).await;
    api.start("one", "room").await;
    let reply = api.post("/v1/agents", r#"{"name":"two","channel":"room"}"#).await;
    assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded", None);
    assert!(reply.json["error"]["message"].as_str().unwrap().contains("maximum of 1"));

    let limited =
        common::api(Options { rate_limit: RateLimit { per_second: 1, burst: 2 }, ..Options::default() }).await;
    assert_eq!(limited.get("/v1/agents").await.status, StatusCode::OK);
    assert_eq!(limited.get("/v1/agents").await.status, StatusCode::OK);
    let reply = limited.get("/v1/agents").await;
    assert_error(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
    assert_eq!(reply.headers["retry-after"], "1");
    // Another credential has its own budget.
    let other = limited.send("GET", "/v1/agents", Some(&basic("other-key", "other-secret")), None).await;
    assert_eq!(other.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_agents_by_status_and_requests_by_route() {
    let api = api(Options::default()).await;
    let id = api.start("a", "room").await;
    api.start("b", "room").await;
    api.post(&format!("/v1/agents/{id}/leave"), "").await;
    api.get("/v1/agents/nope").await;
    let text = api.send("GET", "/metrics", None, None).await.text;
    for line in [
        "colloquy_agents{status=\"RUNNING\"} 1",
        "colloquy_agents{status=\"STARTING\"} 0",
        "colloquy_agents_ended_total{status=\"STOPPED\",reason=\"left\"} 1",
        "colloquy_http_requests_total{route=\"/v1/agents\",method=\"POST\",status=\"200\"} 2",
        "colloquy_http_requests_total{route=\"/v1/agents/{id}\",method=\"GET\",status=\"404\"} 1",
        "# TYPE colloquy_http_request_duration_seconds histogram",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).all(|l| l.starts_with("colloquy_")),
        "{text}"
    );
}

#[tokio::test]
async fn openapi_documents_every_v1_route_and_its_schemas() {
    let api = api(Options::default()).await;
    let doc = api.send("GET", "/openapi.json", None, None).await.json;
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    let mut expected = vec![
        "POST /v1/agents",
        "GET /v1/agents",
        "GET /v1/agents/{id}",
        "POST /v1/agents/{id}/leave",
        "POST /v1/agents/{id}/update",
        "POST /v1/agents/{id}/speak",
        "POST /v1/agents/{id}/interrupt",
        "POST /v1/agents/{id}/think",
        "GET /v1/agents/{id}/history",
        "GET /v1/agents/{id}/turns",
        "GET /healthz",
        "POST /v1/tokens",
        "GET /v1/channels/{channel}",
        "GET /v1/nodes",
        "POST /rtc/whip",
        "PATCH /rtc/whip/{resource}",
        "DELETE /rtc/whip/{resource}",
    ];
    expected.sort();
    assert_eq!(documented, expected);
    // Each documented /v1 route exists: without credentials it is 401, not 404.
    for route in expected.iter().filter(|r| r.contains("/v1/") || r.starts_with("POST /rtc")) {
        let (method, path) = route.split_once(' ').unwrap();
        let reply = api.send(method, &path.replace("{id}", "x").replace("{channel}", "x"), None, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{route}");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in
        ["AgentConfig", "Agent", "AgentList", "ErrorEnvelope", "LlmConfig", "TurnDetectionConfig", "Turns", "History"]
    {
        assert!(schemas.contains_key(schema), "schema {schema} missing");
    }
    assert_eq!(doc["components"]["securitySchemes"]["basic"]["scheme"], "basic");
    let required = schemas["AgentConfig"]["required"].as_array().unwrap();
    assert_eq!(required, &vec![json!("name"), json!("channel")]);
}

#[tokio::test]
async fn whip_answers_cors_preflights_for_browsers_on_other_origins() {
    let api = api(Options::default()).await;
    let request = axum::http::Request::builder()
        .method("OPTIONS")
        .uri("/rtc/whip")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(api.router.clone(), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST") && methods.contains("DELETE") && methods.contains("PATCH"), "{methods}");
    let allowed = headers["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
    // The native API is not opened to other origins.
    let request = axum::http::Request::builder()
        .method("OPTIONS")
        .uri("/v1/agents")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(api.router.clone(), request).await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_refused_rtc_token_challenges_for_a_bearer_token_so_browsers_do_not_prompt_for_a_password() {
    let api = api(Options::default()).await;
    for authorization in [None, Some("Bearer v1.forged")] {
        let mut request = axum::http::Request::builder()
            .method("POST")
            .uri("/rtc/whip?channel=room")
            .header("content-type", "application/sdp");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let request = request.body(axum::body::Body::from("v=0\r\n")).unwrap();
        let response = tower::ServiceExt::oneshot(api.router.clone(), request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"colloquy\"", "{authorization:?}");
    }
}

#[tokio::test]
async fn metrics_show_turn_latency_by_stage_turn_endings_and_late_frames() {
    let api = api(Options::default()).await;
    let stats = api.supervisor.turn_stats();
    stats.observe(&colloquy_model::TurnMetrics { e2e_ms: Some(640), llm_ttft_ms: Some(80), ..Default::default() });
    stats.turn_ended(colloquy_model::TurnEnd::Ok);
    stats.frame_sent(std::time::Duration::from_millis(2));
    stats.frame_sent(std::time::Duration::from_millis(30));
    let text = api.send("GET", "/metrics", None, None).await.text;
    for line in [
        "# TYPE colloquy_turn_latency_seconds histogram",
        "colloquy_turn_latency_seconds_bucket{le=\"0.5\",stage=\"e2e\"} 0",
        "colloquy_turn_latency_seconds_bucket{le=\"0.75\",stage=\"e2e\"} 1",
        "colloquy_turn_latency_seconds_count{stage=\"e2e\"} 1",
        "colloquy_turn_latency_seconds_sum{stage=\"e2e\"} 0.64",
        "colloquy_turn_latency_seconds_bucket{le=\"0.1\",stage=\"llm_ttft\"} 1",
        "colloquy_turn_latency_seconds_count{stage=\"asr_ttlw\"} 0",
        "colloquy_turns_total{end=\"ok\"} 1",
        "colloquy_turns_total{end=\"interrupted\"} 0",
        "colloquy_playout_frames_total 2",
        "colloquy_playout_frames_late_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn a_whip_join_naming_a_channel_refuses_a_token_for_another_channel() {
    let api = api(Options::default()).await;
    let token = api.post("/v1/tokens", r#"{"channel":"room-a","uid":"alice"}"#).await.json["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/rtc/whip?channel=room-b")
        .header("content-type", "application/sdp")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::from("v=0\r\n"))
        .unwrap();
    let response = tower::ServiceExt::oneshot(api.router.clone(), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("room-a"), "{body:?}");
}

/// A local model this node does not have is a 400 naming the ones it has, not a start that fails.
#[tokio::test]
async fn an_unknown_local_model_is_refused_naming_the_models_there_are() {
    let api = api(Options::default()).await;
    let body = json!({"name": "a", "channel": "c", "llm": {"vendor": "local", "model": "llama-70b"}}).to_string();
    let reply = api.post("/v1/agents", &body).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_field", Some("llm.model"));
    let message = reply.json["error"]["message"].as_str().unwrap();
    assert!(message.contains(colloquy_model::LlmProvider::DEFAULT_LOCAL_MODEL), "{message}");
}

/// Speech vendors and their fallbacks are shown back with every key redacted, the vendor's voice in
/// its params, and the records never hold a key.
#[tokio::test]
async fn vendors_and_fallbacks_are_shown_with_their_keys_redacted() {
    let api = api(Options::default()).await;
    let body = json!({
        "name": "vendors", "channel": "room",
        "asr": {"vendor": "deepgram", "language": "en-US", "params": {"key": "dg-1", "model": "nova-3"},
                "fallback": [{"vendor": "local"}]},
        "tts": {"vendor": "elevenlabs", "speed": 1.1, "params": {"key": "xi-1", "voice_id": "v1"},
                "fallback": [{"vendor": "openai", "api_key": "sk-tts", "voice": "nova"}, {"vendor": "local"}]}
    });
    let reply = api.post("/v1/agents", &body.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    for secret in ["dg-1", "xi-1", "sk-tts"] {
        assert!(!reply.text.contains(secret), "{secret} leaked: {}", reply.text);
    }
    let config = &reply.json["config"];
    assert_eq!(config["asr"]["vendor"], "deepgram");
    assert_eq!(config["asr"]["params"], json!({"key": "<redacted>", "model": "nova-3"}));
    assert_eq!(config["asr"]["fallback"][0]["vendor"], "local");
    assert_eq!(config["tts"]["params"], json!({"key": "<redacted>", "voice_id": "v1"}));
    assert!(config["tts"].get("voice").is_none(), "{config}");
    assert_eq!(config["tts"]["fallback"][0]["api_key"], "<redacted>");
    assert_eq!(config["tts"]["fallback"][0]["voice"], "nova");
    assert_eq!(config["tts"]["fallback"][1]["voice"], "en_US-joe-medium");
    let id = reply.json["agent_id"].as_str().unwrap();
    let record = api
        .supervisor
        .store()
        .agent(&colloquy_model::AppId::native(), &colloquy_model::AgentId::from_string(id.into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.spec.tts.voice, "v1", "the vendor's voice is the agent's voice");
    let colloquy_model::TtsProvider::Vendor(choice) = &record.spec.tts.provider else {
        panic!("{:?}", record.spec.tts)
    };
    assert_eq!(choice.secrets["key"].expose(), "<redacted>", "the record keeps no key");
}

/// An app's `vendor_keys` give its requests the vendor's key when they send none; one they send
/// wins.
#[tokio::test]
async fn an_apps_vendor_key_fills_a_request_without_one() {
    let keys = [("deepgram".to_owned(), colloquy_model::Secret::new("dg-app"))].into();
    let api = api(Options { vendor_keys: keys, ..Options::default() }).await;
    let auth = common::basic(common::APP_KEY, common::APP_SECRET);
    let key_of = |reply: &common::Reply| reply.json["agent_id"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for (name, params) in [("app-key", json!({"model": "nova-3"})), ("own-key", json!({"key": "dg-own"}))] {
        let body = json!({"name": name, "channel": "c", "asr": {"vendor": "deepgram", "params": params}}).to_string();
        let reply = api.send("POST", "/v1/agents", Some(&auth), Some(&body)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json["config"]["asr"]["params"]["key"], "<redacted>", "{}", reply.text);
        let app = colloquy_model::AppId::new(common::APP_ID).unwrap();
        let record = api.supervisor.get(&app, &colloquy_model::AgentId::from_string(key_of(&reply))).await.unwrap();
        let colloquy_model::AsrProvider::Vendor(choice) = &record.spec.asr.provider else { panic!() };
        keys.push(choice.secrets["key"].expose().to_owned());
    }
    assert_eq!(keys, ["dg-app", "dg-own"]);
    // The native credentials are an app of their own, without those keys.
    let body = json!({"name": "n", "channel": "c", "asr": {"vendor": "deepgram"}}).to_string();
    let reply = api.post("/v1/agents", &body).await;
    assert_eq!(
        (reply.status, reply.json["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("asr.params.key"))
    );
}

#[tokio::test]
async fn a_node_alone_lists_itself_to_the_server_s_credentials_only() {
    let api = api(Options::default()).await;
    api.start("one", "room-1").await;
    api.start("two", "room-1").await;
    let reply = api.get("/v1/nodes").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["cluster"], false);
    let node = &reply.json["nodes"][0];
    assert_eq!(
        (node["agents"].as_u64(), node["max_agents"].as_u64(), node["channels"].as_u64()),
        (Some(2), Some(100), Some(1))
    );
    assert_eq!(node["this_node"], true);
    let app = api.send("GET", "/v1/nodes", Some(&basic(common::APP_KEY, common::APP_SECRET)), None).await;
    assert_error(&app, StatusCode::FORBIDDEN, "forbidden", None);
    let nobody = api.send("GET", "/v1/nodes", None, None).await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
}
