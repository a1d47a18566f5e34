//! Over real UDP on loopback: a STUN binding request from a new address finds a live session by
//! its ICE ufrag (which anyone on the path can read), but moves the session there only when it is
//! signed with the session's ICE password; and a session may use only so many addresses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use colloquy_rtc::audio::FRAME_SAMPLES;
use colloquy_rtc::server::{ChannelServer, Listen, RtcConfig};
use colloquy_rtc::stun;
use colloquy_rtc::token::Grant;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

/// A person's WebRTC client (str0m) in its own task, counting the media packets it gets.
struct Person {
    /// `server_ufrag:client_ufrag`, as its STUN requests say.
    username: String,
    /// The server's ICE password for this person.
    password: String,
    connected: Arc<AtomicU64>,
    media: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

fn sdp_attribute(sdp: &str, name: &str) -> String {
    let prefix = format!("a={name}:");
    sdp.lines().find_map(|l| l.trim_end().strip_prefix(prefix.as_str()).map(str::to_owned)).expect(name)
}

async fn join_person(server: &ChannelServer, uid: &str) -> Person {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let offer = offer.to_sdp_string();
    let expires_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
    let grant = Grant { app: "app".into(), channel: "room".into(), uid: uid.into(), expires_at };
    let (_, answer) = server.join(grant, offer.clone()).await.unwrap();
    let username = format!("{}:{}", sdp_attribute(&answer, "ice-ufrag"), sdp_attribute(&offer, "ice-ufrag"));
    let password = sdp_attribute(&answer, "ice-pwd");
    rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();
    let (connected, media) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let counters = (Arc::clone(&connected), Arc::clone(&media));
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let timeout = loop {
                match rtc.poll_output().unwrap() {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        let _ = socket.try_send_to(&t.contents, t.destination);
                    }
                    Output::Event(Event::Connected) => counters.0.store(1, Ordering::Relaxed),
                    Output::Event(Event::MediaData(_)) => {
                        counters.1.fetch_add(1, Ordering::Relaxed);
                    }
                    Output::Event(_) => {}
                }
            };
            tokio::select! {
                received = socket.recv_from(&mut buf) => {
                    let (len, source) = received.unwrap();
                    if let Ok(contents) = buf[..len].try_into() {
                        let receive = Receive { proto: Protocol::Udp, source, destination: local, contents };
                        let _ = rtc.handle_input(Input::Receive(Instant::now(), receive));
                    }
                }
                () = tokio::time::sleep_until(timeout.into()) => {
                    let _ = rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
        }
    });
    Person { username, password, connected, media, task }
}

/// Waits until `check` holds, for 10 s at most.
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What arrives at `socket` within `window`: (STUN binding success responses, RTP/SRTP packets).
async fn heard_at(socket: &UdpSocket, window: Duration) -> (u32, u32) {
    let (mut stun_responses, mut media) = (0, 0);
    let mut buf = vec![0u8; 2048];
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Ok((len, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        match buf[..len] {
            [0x01, 0x01, ..] => stun_responses += 1,
            [128..=191, ..] => media += 1,
            _ => {}
        }
    }
    (stun_responses, media)
}

/// An agent that speaks a tone into the channel every 20 ms, for as long as the test runs.
async fn speaking_agent(server: &ChannelServer) -> tokio::task::JoinHandle<()> {
    let seat = server.join_agent("app", "room", "agent", Listen::Everyone).await.unwrap();
    tokio::spawn(async move {
        let _events = seat.events;
        let tone: Vec<i16> = (0..FRAME_SAMPLES).map(|i| (8000.0 * (i as f32 * 0.0576).sin()) as i16).collect();
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        loop {
            ticker.tick().await;
            seat.handle.publish(tone.clone()).await;
        }
    })
}

fn config(max_peer_addresses: usize) -> RtcConfig {
    let mut config = RtcConfig::with_defaults("127.0.0.1:0".parse().unwrap());
    config.max_peer_addresses = max_peer_addresses;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_stun_request_does_not_move_a_live_session_and_a_signed_one_does() {
    let server = ChannelServer::start(config(RtcConfig::DEFAULT_MAX_PEER_ADDRESSES)).await.unwrap();
    let server_addr: SocketAddr = server.local_addr();
    let agent = speaking_agent(&server).await;
    let person = join_person(&server, "person").await;
    until("the person connects and hears the agent", || {
        person.connected.load(Ordering::Relaxed) == 1 && person.media.load(Ordering::Relaxed) > 10
    })
    .await;

    // Someone else, at a new address, who read the session's ufrags on the path.
    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let unauthenticated_before = server.stats().datagrams_unauthenticated.load(Ordering::Relaxed);
    let spoofs = [
        stun::binding_request(&person.username, None, [1; 12], true),
        stun::binding_request(&person.username, Some(b"a guessed password"), [2; 12], true),
        stun::binding_request(&person.username, Some(person.username.as_bytes()), [3; 12], true),
    ];
    for spoof in &spoofs {
        for _ in 0..5 {
            attacker.send_to(spoof, server_addr).await.unwrap();
        }
    }
    let heard_before = person.media.load(Ordering::Relaxed);
    let (responses, media) = heard_at(&attacker, Duration::from_millis(1500)).await;
    assert_eq!((responses, media), (0, 0), "a spoofed request got an answer or moved the media");
    assert_eq!(
        server.stats().datagrams_unauthenticated.load(Ordering::Relaxed) - unauthenticated_before,
        15,
        "every spoofed request is counted as unauthenticated"
    );
    assert!(person.media.load(Ordering::Relaxed) > heard_before + 20, "the person still hears the agent");

    // The same request signed with the session's ICE password (what the person's own client
    // holds) moves the session: the server answers there, and the nomination takes the media.
    let signed = stun::binding_request(&person.username, Some(person.password.as_bytes()), [4; 12], true);
    attacker.send_to(&signed, server_addr).await.unwrap();
    let (responses, media) = heard_at(&attacker, Duration::from_millis(1000)).await;
    assert_eq!(responses, 1, "the signed request is answered at its address");
    assert!(media > 10, "the media follows the signed nomination ({media} packets)");

    person.task.abort();
    agent.abort();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_uses_at_most_max_peer_addresses_and_a_known_one_may_come_back() {
    let server = ChannelServer::start(config(4)).await.unwrap();
    let server_addr = server.local_addr();
    let person = join_person(&server, "person").await;
    until("the person connects", || person.connected.load(Ordering::Relaxed) == 1).await;

    // The person's own address is the first; three more signed addresses are taken, the rest not.
    let mut sockets = Vec::new();
    let mut answered = 0;
    for i in 0..10u8 {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let request = stun::binding_request(&person.username, Some(person.password.as_bytes()), [10 + i; 12], false);
        socket.send_to(&request, server_addr).await.unwrap();
        answered += heard_at(&socket, Duration::from_millis(300)).await.0;
        sockets.push(socket);
    }
    assert_eq!(answered, 3, "three new addresses besides the person's own");
    assert_eq!(server.stats().datagrams_too_many_addresses.load(Ordering::Relaxed), 7);

    // An address the session has used already may come back.
    let again = stun::binding_request(&person.username, Some(person.password.as_bytes()), [30; 12], false);
    sockets[0].send_to(&again, server_addr).await.unwrap();
    assert_eq!(heard_at(&sockets[0], Duration::from_millis(500)).await.0, 1, "a known address is answered");
    // And the person's client, whose consent checks come from its first address, stays connected.
    let participants = server.participants("app", "room").await;
    assert!(participants.iter().all(|p| p.connected), "{participants:?}");

    person.task.abort();
    server.shutdown().await;
}
