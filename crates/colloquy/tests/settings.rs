//! Settings of the config file that change what a running server does: each is checked against
//! a real `colloquy serve` with the setting, in a way the default would answer differently.

mod common;

use common::start_with;

/// `[brake] free_failures = 1`: the second failure with one credential from one address closes
/// the pair, so the third request is refused with 429 and `Retry-After` before its credentials
/// are checked. By default (5 free failures) it would be a plain 401.
#[tokio::test]
async fn the_brake_settings_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), true, Some("[brake]\nfree_failures = 1\nmax_block_ms = 60000\n"));
    let http = reqwest::Client::new();
    let attempt = || async {
        let response =
            http.get(format!("{}/v1/agents", server.base)).basic_auth(common::KEY, Some("wrong")).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), retry_after)
    };
    assert_eq!(attempt().await, (401, None));
    assert_eq!(attempt().await, (401, None));
    assert_eq!(attempt().await, (429, Some("1".to_owned())));
    // The right credential from the same address is closed too (the pair is the address and the key).
    let (status, _) = server.get("/v1/agents").await;
    assert_eq!(status, 429);
}
