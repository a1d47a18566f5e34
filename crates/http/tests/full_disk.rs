//! A full disk through the router: the records' file is capped (`max_page_count`), so writes fail
//! with SQLITE_FULL as on a full file system. An answer never claims what was not recorded: a
//! start or a leave that cannot be written is 503 `records_unavailable` with `Retry-After`, and
//! nothing is done; once there is room again, the same requests work.

mod common;

use axum::http::StatusCode;
use colloquy_model::{AppId, UnixMillis};
use common::{Options, api, assert_error};

#[tokio::test]
async fn a_full_disk_answers_503_records_unavailable_and_does_nothing_until_there_is_room() {
    let api = api(Options { max_page_count: Some(64), ..Options::default() }).await;
    let running = api.start("before", "room").await;

    // Fill the file with templates until a write fails.
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

    let refused = api.post("/v1/agents", r#"{"name":"after","channel":"room","idle_timeout":0}"#).await;
    assert_error(&refused, StatusCode::SERVICE_UNAVAILABLE, "records_unavailable", None);
    assert_eq!(refused.headers["retry-after"], "5");
    let left = api.post(&format!("/v1/agents/{running}/leave"), "").await;
    assert_error(&left, StatusCode::SERVICE_UNAVAILABLE, "records_unavailable", None);

    // Nothing was done: reads still work, and say so.
    let listed = api.get("/v1/agents").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let names: Vec<_> = listed.json["agents"].as_array().unwrap().iter().map(|a| a["name"].clone()).collect();
    assert_eq!(names, ["before"], "{}", listed.text);
    let got = api.get(&format!("/v1/agents/{running}")).await;
    assert_eq!(got.json["status"], "RUNNING", "{}", got.text);

    // Room again: the same requests are carried out.
    for i in 0..fillers {
        api.store.delete_template(&app, "filler", &format!("t{i}")).await.unwrap();
    }
    let started = api.post("/v1/agents", r#"{"name":"after","channel":"room","idle_timeout":0}"#).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let left = api.post(&format!("/v1/agents/{running}/leave"), "").await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.text);
    let got = api.get(&format!("/v1/agents/{running}")).await;
    assert_eq!(got.json["status"], "STOPPED", "{}", got.text);
}
