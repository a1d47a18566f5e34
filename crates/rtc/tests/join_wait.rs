//! `RtcConfig::max_join_wait` (`[rtc] max_join_wait_ms`): a join that waited longer than it for
//! the channel server's task is refused as busy, at once, and takes nothing.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use colloquy_rtc::server::{ChannelServer, JoinError, RtcConfig};
use colloquy_rtc::token::Grant;
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Rtc};

fn offer() -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host("127.0.0.1:40000".parse().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    change.apply().unwrap().0.to_sdp_string()
}

fn grant(uid: &str) -> Grant {
    let expires_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
    Grant { app: "app".into(), channel: "room".into(), uid: uid.into(), expires_at }
}

#[tokio::test]
async fn a_join_that_waited_longer_than_max_join_wait_is_refused_as_busy() {
    // No wait is short enough for a zero limit: every join is refused, and nobody is in the room.
    let mut config = RtcConfig::with_defaults("127.0.0.1:0".parse().unwrap());
    config.max_join_wait = Duration::ZERO;
    let strict = ChannelServer::start(config.clone()).await.unwrap();
    match strict.join(grant("person"), offer()).await {
        Err(JoinError::Busy { why }) => assert!(why.contains("ms behind"), "{why}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(strict.participants("app", "room").await.is_empty());
    // The default takes the same join.
    config.max_join_wait = RtcConfig::DEFAULT_MAX_JOIN_WAIT;
    let default = ChannelServer::start(config).await.unwrap();
    assert!(default.join(grant("person"), offer()).await.is_ok());
    assert_eq!(default.participants("app", "room").await.len(), 1);
}
