//! A full disk through the router: the records' file is capped (`max_page_count`), so writes fail
//! with SQLITE_FULL as on a full file system. An answer never claims what was not recorded: a
//! start that cannot be written is 503 `records_unavailable` with `Retry-After`, and nothing is
//! done; once there is room again, the same request works.

mod common;

use axum::http::StatusCode;
use colloquy_model::{AppId, UnixMillis};
use common::{Options, api, assert_error};

#[tokio::test]
async fn a_full_disk_answers_503_records_unavailable_and_does_nothing_until_there_is_room() {
    let api = api(Options { max_page_count: Some(64), max_agents: 100_000, ..Options::default() }).await;
    let running = api.start("before", "room").await;

    // Fill the file with templates until a write fails, then start agents until one is refused.
    let app = AppId::native();
    let mut fillers = 0;
    while api
        .store
        .insert_template(&app, "filler", &format!("t{fillers}"), &"x".repeat(3000), UnixMillis(1))
        .await
        .is_ok()
    {
        fillers += 1;
        assert!(fillers < 10_000, "the cap never filled");
    }
    let start = |i: usize| format!(r#"{{"name":"a{i}","channel":"c{i}","idle_timeout":0}}"#);
    let mut refused_at = None;
    for i in 0..1000 {
        let reply = api.post("/v1/agents", &start(i)).await;
        if reply.status != StatusCode::OK {
            assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "records_unavailable", None);
            assert_eq!(reply.headers["retry-after"], "5");
            refused_at = Some(i);
            break;
        }
    }
    let i = refused_at.expect("a start was refused once the file was full");

    // Nothing was done: reads still work, and show no such agent; the running one runs on.
    let listed = api.get(&format!("/v1/agents?channel=c{i}")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.json["agents"], serde_json::json!([]), "{}", listed.text);
    let got = api.get(&format!("/v1/agents/{running}")).await;
    assert_eq!(got.json["status"], "RUNNING", "{}", got.text);

    // Room again: the same request is carried out.
    for t in 0..fillers {
        api.store.delete_template(&app, "filler", &format!("t{t}")).await.unwrap();
    }
    let started = api.post("/v1/agents", &start(i)).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let listed = api.get(&format!("/v1/agents?channel=c{i}")).await;
    assert_eq!(listed.json["agents"].as_array().map(Vec::len), Some(1), "{}", listed.text);
}
