//! The playground in process: the page and its assets, the session endpoint's validation, its cap,
//! its token, and 404 when the playground is off. (The page itself is tested in a real browser by
//! `scripts/test-browser`.)

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use colloquy_http::playground::{IDLE_TIMEOUT_SECS, MAX_LIVE_SESSIONS};
use colloquy_rtc::token::TokenSigner;
use common::{Options, SECRET, api, assert_error};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn enabled() -> Options {
    Options { playground: true, ..Options::default() }
}

async fn start(api: &common::Api, body: &str) -> common::Reply {
    api.send("POST", "/playground/session", None, Some(body)).await
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_without_credentials() {
    // The page is there whether the playground is on or off; only sessions need it on.
    for playground in [false, true] {
        let api = api(Options { playground, ..Options::default() }).await;
        let page = api.send("GET", "/", None, None).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));
        assert!(
            page.text.contains(r#"<button id="talk" type="button" class="primary">Talk</button>"#),
            "{}",
            page.text
        );
        for control in ["system-prompt", "voice", "interruption", "mute", "hangup", "transcript", "waterfall", "level"]
        {
            assert!(page.text.contains(&format!(r#"id="{control}""#)), "no #{control}");
        }
        assert!(page.text.contains(r#"aria-live="polite""#));
        // The defaults are filled in: the default prompt, the local voice.
        assert!(page.text.contains(colloquy_model::Llm::DEFAULT_SYSTEM_PROMPT));
        assert!(page.text.contains(r#"<option value="en_US-joe-medium">"#));
        assert!(!page.text.contains("{{"), "a placeholder is left in the page");

        for (path, content_type, needle) in [
            ("/playground/app.js", "text/javascript; charset=utf-8", "/playground/session"),
            ("/playground/style.css", "text/css; charset=utf-8", "@media (max-width"),
            // The library the page runs on (clients/js), its committed bundle.
            ("/playground/colloquy-client.js", "text/javascript; charset=utf-8", "rtc/whip"),
        ] {
            let asset = api.send("GET", path, None, None).await;
            assert_eq!(
                (asset.status, asset.headers[header::CONTENT_TYPE].to_str().unwrap()),
                (StatusCode::OK, content_type)
            );
            assert!(asset.text.contains(needle), "{path}");
        }
    }
}

#[tokio::test]
async fn sessions_are_404_when_the_playground_is_off() {
    let api = api(Options::default()).await;
    // Whatever the body: the route is off before anything else.
    for body in ["{}", r#"{"voice":"nobody"}"#, "{"] {
        let reply = start(&api, body).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "not_found", None);
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(message.contains("[playground] enabled = true"), "{}", reply.text);
    }
    let reply = api.send("DELETE", "/playground/session/0123456789abcdef0123456789abcdef", None, None).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found", None);
    assert!(api.supervisor.live_counts().is_empty());
}

#[tokio::test]
async fn a_session_starts_an_agent_with_the_settings_and_a_token_for_its_channel() {
    let api = api(enabled()).await;
    let reply = start(
        &api,
        r#"{"system_prompt":"You are a pirate.","voice":"en_US-joe-medium","interruption_mode":"keywords","keywords":["halt"]}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let session = &reply.json;
    let channel = session["channel"].as_str().unwrap();
    assert!(channel.starts_with("play-"), "{channel}");
    assert_eq!(session["uid"], "you");
    assert_eq!(session["whip_url"], format!("/rtc/whip?channel={channel}"));
    // The token lets `you` into that channel, signed with the server's secret.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let grant =
        TokenSigner::new(SECRET.as_bytes()).verify_for(session["token"].as_str().unwrap(), channel, now).unwrap();
    assert_eq!((grant.uid.as_str(), grant.expires_at), ("you", session["expires_at"].as_u64().unwrap()));
    assert!(grant.expires_at > now + 60);
    // A fresh token for the same person, for the page to renew the call with.
    let session_path = format!("/playground/session/{}", session["session"].as_str().unwrap());
    let renewed = api.send("POST", &format!("{session_path}/token"), None, None).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text);
    let fresh = TokenSigner::new(SECRET.as_bytes()).verify_for(renewed.json["token"].as_str().unwrap(), channel, now);
    let fresh = fresh.unwrap();
    assert_eq!((fresh.uid.as_str(), fresh.expires_at), ("you", renewed.json["expires_at"].as_u64().unwrap()));
    assert!(fresh.expires_at >= grant.expires_at);
    let reply = api.send("POST", "/playground/session/0123456789abcdef0123456789abcdef/token", None, None).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found", None);

    // The agent runs in the native app, with the settings and the playground's defaults.
    let id = session["agent_id"].as_str().unwrap();
    let agent = api.get(&format!("/v1/agents/{id}")).await;
    assert_eq!((agent.status, agent.json["status"].as_str()), (StatusCode::OK, Some("RUNNING")), "{}", agent.text);
    let config = &agent.json["config"];
    assert_eq!(config["channel"], channel);
    assert_eq!(config["llm"]["system_messages"][0]["content"], "You are a pirate.");
    assert_eq!(config["interruption"]["keywords"], serde_json::json!(["halt"]));
    assert_eq!(config["idle_timeout"], IDLE_TIMEOUT_SECS);
    assert!(config["greeting"]["text"].as_str().is_some_and(|t| !t.is_empty()));

    // Ending the session makes the agent leave; the session is then gone.
    let path = format!("/playground/session/{}", session["session"].as_str().unwrap());
    let ended = api.send("DELETE", &path, None, None).await;
    assert_eq!((ended.status, ended.json["status"].as_str()), (StatusCode::OK, Some("STOPPED")), "{}", ended.text);
    let agent = api.get(&format!("/v1/agents/{id}")).await;
    assert_eq!((agent.json["status"].as_str(), agent.json["reason"]["code"].as_str()), (Some("STOPPED"), Some("left")));
    assert_error(&api.send("DELETE", &path, None, None).await, StatusCode::NOT_FOUND, "not_found", None);
    let reply = api.send("POST", &format!("{session_path}/token"), None, None).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found", None);
    // Agents started through the API are not playground sessions.
    let other = api.start("not-mine", "room").await;
    let reply = api.send("DELETE", &format!("/playground/session/{other}"), None, None).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn every_setting_is_optional() {
    let api = api(enabled()).await;
    for body in ["{}", ""] {
        let reply = start(&api, body).await;
        assert_eq!(reply.status, StatusCode::OK, "{body:?}: {}", reply.text);
        let agent = api.get(&format!("/v1/agents/{}", reply.json["agent_id"].as_str().unwrap())).await;
        let config = &agent.json["config"];
        assert_eq!(config["llm"]["system_messages"][0]["content"], colloquy_model::Llm::DEFAULT_SYSTEM_PROMPT);
        assert_eq!(
            (config["tts"]["voice"].as_str(), config["interruption"]["mode"].as_str()),
            (Some("en_US-joe-medium"), Some("start_of_speech"))
        );
        assert_eq!(config["interruption"]["enabled"], true);
    }
    let reply = start(&api, r#"{"interruption_mode":"off"}"#).await;
    let agent = api.get(&format!("/v1/agents/{}", reply.json["agent_id"].as_str().unwrap())).await;
    assert_eq!(agent.json["config"]["interruption"]["enabled"], false);
}

/// Each case: a body, and the error code and field it must answer, in the playground's own names.
#[tokio::test]
async fn validation_errors_name_the_playgrounds_field() {
    let api = api(enabled()).await;
    let long = "x".repeat(5000);
    let cases: &[(&str, &str, Option<&str>)] = &[
        (r#"{"colour":"red"}"#, "unknown_field", Some("colour")),
        (r#"{"system_prompt":""}"#, "invalid_field", Some("system_prompt")),
        (r#"{"system_prompt":"   "}"#, "invalid_field", Some("system_prompt")),
        (&format!(r#"{{"system_prompt":"{long}"}}"#), "invalid_field", Some("system_prompt")),
        (r#"{"system_prompt":7}"#, "invalid_field", Some("system_prompt")),
        (r#"{"voice":"nobody"}"#, "invalid_field", Some("voice")),
        (r#"{"interruption_mode":"sometimes"}"#, "invalid_field", Some("interruption_mode")),
        (r#"{"keywords":["stop"]}"#, "invalid_field", Some("keywords")),
        (r#"{"interruption_mode":"off","keywords":["stop"]}"#, "invalid_field", Some("keywords")),
        (r#"{"interruption_mode":"keywords","keywords":[]}"#, "missing_field", Some("keywords")),
        (r#"{"interruption_mode":"keywords","keywords":["ok",""]}"#, "invalid_field", Some("keywords[1]")),
        ("[]", "invalid_json", None),
        ("{", "invalid_json", None),
    ];
    for (body, code, field) in cases {
        let reply = start(&api, body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, code, *field);
        // The message speaks of the playground's fields, not the native API's.
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("llm.") && !message.contains("tts.") && !message.contains("interruption."),
            "{message}"
        );
    }
    assert!(api.supervisor.live_counts().is_empty(), "a refused request started an agent");
}

#[tokio::test]
async fn sessions_must_be_sent_as_json() {
    let api = api(enabled()).await;
    for content_type in [None, Some("text/plain")] {
        let mut request = Request::builder().method("POST").uri("/playground/session");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = api.router.clone().oneshot(request.body(Body::from("{}")).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "unsupported_media_type");
    }
    // No CORS for other origins: the answer carries no Access-Control-Allow-Origin.
    let request = Request::builder()
        .method("OPTIONS")
        .uri("/playground/session")
        .header(header::ORIGIN, "https://elsewhere.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert!(response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert!(api.supervisor.live_counts().is_empty());
}

#[tokio::test]
async fn live_sessions_are_capped() {
    let api = api(enabled()).await;
    let mut sessions = Vec::new();
    for _ in 0..MAX_LIVE_SESSIONS {
        let reply = start(&api, "{}").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        sessions.push(reply.json["session"].as_str().unwrap().to_owned());
    }
    let reply = start(&api, "{}").await;
    assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded", None);
    // An agent that left through the API frees its place as well as one whose session ended.
    let ended = api.send("DELETE", &format!("/playground/session/{}", sessions[0]), None, None).await;
    assert_eq!(ended.status, StatusCode::OK);
    let reply = start(&api, "{}").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.json["agent_id"].as_str().unwrap().to_owned();
    assert_error(&start(&api, "{}").await, StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded", None);
    assert_eq!(api.post(&format!("/v1/agents/{id}/leave"), "").await.status, StatusCode::OK);
    assert_eq!(start(&api, "{}").await.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_methods_are_405_with_the_envelope() {
    let api = api(enabled()).await;
    let reply = api.send("GET", "/playground/session", None, None).await;
    assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None);
}
