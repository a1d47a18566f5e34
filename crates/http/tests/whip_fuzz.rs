//! Random offers and headers thrown at `POST /rtc/whip` with a real channel server behind it: every
//! answer is a 201 or a 4xx with the envelope, never a panic or a 5xx.

mod common;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::Request;
use colloquy_rtc::server::{ChannelServer, RtcConfig};
use colloquy_rtc::token::TokenSigner;
use common::{Options, SECRET, api};
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower::ServiceExt;

struct Shared {
    runtime: tokio::runtime::Runtime,
    api: common::Api,
}

fn shared() -> &'static Shared {
    static SHARED: LazyLock<Shared> = LazyLock::new(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let api = runtime.block_on(async {
            let mut config = RtcConfig::with_defaults("127.0.0.1:0".parse().unwrap());
            config.max_channels = 100_000;
            let server = ChannelServer::start(config).await.unwrap();
            api(Options { channel_server: Some(server), ..Options::default() }).await
        });
        Shared { runtime, api }
    });
    &SHARED
}

fn valid_offer() -> String {
    let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host("127.0.0.1:40000".parse().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(str0m::media::MediaKind::Audio, str0m::media::Direction::SendRecv, None, None, None);
    change.add_channel("colloquy".into());
    change.apply().unwrap().0.to_sdp_string()
}

fn token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let uid = format!("u{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let expires = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    TokenSigner::new(SECRET.as_bytes()).issue("native", &format!("c{uid}"), &uid, expires)
}

fn offer_strategy() -> impl Strategy<Value = String> {
    let valid = valid_offer();
    let lines: Vec<String> = valid.lines().map(str::to_owned).collect();
    prop_oneof![
        Just(valid.clone()),
        "\\PC{0,400}",
        // Drop, duplicate or garble lines of a real offer.
        (
            prop::collection::vec(any::<prop::sample::Index>(), 1..6),
            prop::collection::vec("[ -~]{0,40}", 1..6),
            0..3usize
        )
            .prop_map(move |(picks, junk, mode)| {
                let mut lines = lines.clone();
                for (pick, junk) in picks.iter().zip(junk) {
                    let at = pick.index(lines.len());
                    match mode {
                        0 => {
                            lines.remove(at);
                        }
                        1 => {
                            let line = lines[at].clone();
                            lines.insert(at, line);
                        }
                        _ => lines[at] = junk,
                    }
                    if lines.is_empty() {
                        break;
                    }
                }
                lines.join("\r\n") + "\r\n"
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn whip_answers_every_offer_and_header_with_201_or_a_4xx(
        offer in offer_strategy(),
        content_type in prop_oneof![Just("application/sdp".to_owned()), Just("application/SDP; charset=utf-8".to_owned()), "[ -~]{0,30}"],
        auth in prop_oneof![Just(None), Just(Some("valid".to_owned())), "[ -~]{0,60}".prop_map(Some)],
        query in prop_oneof![Just(String::new()), "\\?[a-z=&%0-9]{0,20}"],
    ) {
        let shared = shared();
        let mut request = Request::post(format!("/rtc/whip{query}")).header("content-type", content_type);
        match auth.as_deref() {
            Some("valid") => request = request.header("authorization", format!("Bearer {}", token())),
            Some(other) => request = request.header("authorization", other),
            None => {}
        }
        let Ok(request) = request.body(Body::from(offer.clone())) else { return Ok(()) };
        let (status, body) = shared.runtime.block_on(async {
            let response = shared.api.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            (status, response.into_body().collect().await.unwrap().to_bytes())
        });
        prop_assert!(status.as_u16() == 201 || status.is_client_error(), "{status} for {offer:?}");
        if status.is_client_error() {
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            prop_assert!(json["error"]["code"].is_string(), "{status}: {}", String::from_utf8_lossy(&body));
        } else {
            prop_assert!(String::from_utf8_lossy(&body).starts_with("v=0"));
        }
    }
}

/// A correctly signed token whose channel or uid `POST /v1/tokens` would refuse is refused by WHIP
/// too, naming which: one validator for both.
#[test]
fn whip_refuses_signed_tokens_that_post_tokens_would_not_issue() {
    let shared = shared();
    let expires = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let signer = TokenSigner::new(SECRET.as_bytes());
    let long = "c".repeat(65);
    for (channel, uid, names) in [
        (long.as_str(), "u1", "channel"),
        ("a room", "u2", "channel"),
        ("room", "\u{e9}\0", "uid"),
        ("room", "a b", "uid"),
    ] {
        let token = signer.issue("native", channel, uid, expires);
        let request = Request::post("/rtc/whip")
            .header("content-type", "application/sdp")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(valid_offer()))
            .unwrap();
        let (status, body) = shared.runtime.block_on(async {
            let response = shared.api.router.clone().oneshot(request).await.unwrap();
            (response.status(), response.into_body().collect().await.unwrap().to_bytes())
        });
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let message = json["error"]["message"].as_str().unwrap();
        assert_eq!(status.as_u16(), 401, "{channel:?}/{uid:?}: {message}");
        assert!(message.contains(&format!("the token's {names}")), "{channel:?}/{uid:?}: {message}");
    }
}
