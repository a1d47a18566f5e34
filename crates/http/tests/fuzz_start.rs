//! Random and mutated JSON thrown at `POST /v1/agents`: every answer is a 2xx or a 4xx with the
//! envelope, never a panic or a 5xx.

mod common;

use axum::http::StatusCode;
use common::{Options, api};
use proptest::prelude::*;
use std::sync::LazyLock;

use serde_json::{Value, json};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["local", "openai", "*", "", "RUNNING", "keywords", "http://127.0.0.1:1/v1"])
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names: mostly real ones, so mutations reach deep into the validation.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "name", "channel", "agent_uid", "remote_uids", "idle_timeout", "llm", "asr", "tts", "turn_detection",
            "interruption", "greeting", "failure_message", "max_history", "callbacks", "vendor", "model", "url",
            "api_key", "headers", "timeout_ms", "max_retries", "system_messages", "params", "temperature", "top_p",
            "max_tokens", "language", "voice", "speed", "vad_threshold", "min_speech_ms", "prefix_padding_ms",
            "silence_duration_ms", "max_wait_ms", "enabled", "mode", "keywords", "when_disabled", "text",
            "interruptible", "role", "content", "secret",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z_]{1,10}",
    ]
}

fn valid_body() -> Value {
    json!({
        "name": "n", "channel": "c", "agent_uid": "a", "remote_uids": ["u"], "idle_timeout": 0,
        "llm": {"vendor": "openai", "url": "http://127.0.0.1:1/v1", "model": "m", "params": {"temperature": 1.0},
                "system_messages": [{"role": "system", "content": "x"}]},
        "asr": {"vendor": "local", "model": "whisper-base", "language": "fr"},
        "tts": {"vendor": "local", "voice": "en_US-joe-medium", "speed": 1.0},
        "turn_detection": {"vad_threshold": 0.5, "silence_duration_ms": 640, "max_wait_ms": 3000},
        "interruption": {"mode": "keywords", "keywords": ["stop"]},
        "greeting": {"text": "hi", "interruptible": true},
        "failure_message": "oops", "max_history": 10
    })
}

/// Replaces the value at a random path of `body` (or, on an object, adds a key there).
fn mutate(node: &mut Value, path: &[usize], replacement: Value, key: Option<String>) {
    let Some((&step, rest)) = path.split_first() else {
        return replace(node, replacement, key);
    };
    match node {
        Value::Object(map) if !map.is_empty() => {
            let len = map.len();
            let child = map.values_mut().nth(step % len).unwrap();
            mutate(child, rest, replacement, key)
        }
        Value::Array(items) if !items.is_empty() => {
            let len = items.len();
            mutate(&mut items[step % len], rest, replacement, key)
        }
        _ => replace(node, replacement, key),
    }
}

fn replace(node: &mut Value, replacement: Value, key: Option<String>) {
    match (node, key) {
        (Value::Object(map), Some(key)) => {
            map.insert(key, replacement);
        }
        (node, _) => *node = replacement,
    }
}

fn check(runtime: &tokio::runtime::Runtime, api: &common::Api, body: &str) -> Result<(), TestCaseError> {
    let reply = runtime.block_on(api.post("/v1/agents", body));
    let status = reply.status;
    prop_assert!(status.is_success() || status.is_client_error(), "{status} for {body}: {}", reply.text);
    if status.is_success() {
        prop_assert!(reply.json["agent_id"].is_string(), "{}", reply.text);
    } else {
        prop_assert!(reply.json["error"]["code"].is_string(), "{}", reply.text);
        prop_assert!(reply.json["error"]["message"].is_string(), "{}", reply.text);
        if status == StatusCode::BAD_REQUEST && reply.json["error"]["code"] != "invalid_json" {
            prop_assert!(
                reply.json["error"]["field"].is_string() || reply.json["error"]["code"] == "missing_field",
                "{}",
                reply.text
            );
        }
    }
    Ok(())
}

/// One API for every case: a fresh database per case would spend the test's time on migrations.
fn shared() -> &'static (tokio::runtime::Runtime, common::Api) {
    static SHARED: LazyLock<(tokio::runtime::Runtime, common::Api)> = LazyLock::new(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let api = runtime.block_on(api(Options { max_agents: 100_000, ..Options::default() }));
        (runtime, api)
    });
    &SHARED
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_json_never_breaks_the_api(value in any_json()) {
        let (runtime, api) = shared();
        check(runtime, api, &value.to_string())?;
    }

    #[test]
    fn mutated_valid_bodies_never_break_the_api(
        path in prop::collection::vec(any::<usize>(), 0..4),
        replacement in any_json(),
        key in prop::option::of(field_name()),
        name in "[a-z]{1,8}",
    ) {
        let (runtime, api) = shared();
        let mut body = valid_body();
        body["name"] = Value::String(name);
        mutate(&mut body, &path, replacement, key);
        check(runtime, api, &body.to_string())?;
    }

    #[test]
    fn arbitrary_bytes_never_break_the_api(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let (runtime, api) = shared();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        check(runtime, api, &body)?;
    }
}

#[test]
fn the_unmutated_body_is_accepted() {
    let (runtime, api) = shared();
    // Its own name: the fuzz cases share this server, and a mutated body that is still valid
    // leaves an agent named "n" running, which a start of the same name would conflict with.
    let mut body = valid_body();
    body["name"] = json!("unmutated");
    let reply = runtime.block_on(api.post("/v1/agents", &body.to_string()));
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}
