//! The channel server: every participant of every channel on one UDP socket, driven by one task.
//!
//! People join through WHIP with an SDP offer and get an ICE-lite str0m `Rtc` each. Their Opus audio
//! is forwarded to the other people in the channel as it came (no decoding, no mixing), and decoded
//! to 48 kHz PCM only for the in-process agents that listen to them. Agents publish PCM, which is
//! encoded to Opus once and forwarded like anyone's audio.
//!
//! Downlink audio uses the offer's audio m-lines as slots: the first (send-receive) line carries one
//! remote source, and every extra receive-only audio line one more. A browser talking to one agent
//! needs one line; a client that wants to hear N others offers N lines.
//!
//! Incoming datagrams reach their participant through two maps: the 5-tuple source address, learnt
//! from the first STUN request, and the ICE username fragment in STUN requests. There is no scan.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::audio::{FRAME_SAMPLES, OpusDecoder, OpusEncoder};
use crate::stun;
use crate::token::Grant;

/// How the channel server is set up.
#[derive(Clone, Debug)]
pub struct RtcConfig {
    /// The UDP address to bind.
    pub udp: SocketAddr,
    /// The address put in host candidates; default the bind address.
    pub public_ip: Option<IpAddr>,
    /// The most participants (people and agents) in one channel.
    pub max_participants_per_channel: usize,
    /// The most channels on this node.
    pub max_channels: usize,
    /// How long a participant may take from its offer to a working connection.
    pub connect_timeout: Duration,
    /// People at most between their offer and a working connection. Their DTLS handshakes are the
    /// costly part of a join; a join beyond this is refused at once ([`JoinError::Busy`]) rather
    /// than accepted and left to time out.
    pub max_connecting: usize,
    /// The longest a join may wait for the channel server's task before it is refused as
    /// [`JoinError::Busy`]: a task that far behind is overloaded.
    pub max_join_wait: Duration,
    /// How long a connected peer may stay silent (no packet at all) before it counts as gone.
    pub inactivity_timeout: Duration,
    /// The most source addresses one person's session may use over its life, the first
    /// included. A signed STUN request from a new address moves the session there, and ICE keeps
    /// a candidate for every address it was moved to: this bounds what a person holding a token
    /// can make the server keep. Requests from further addresses are dropped and counted.
    pub max_peer_addresses: usize,
}

impl RtcConfig {
    pub const DEFAULT_MAX_PARTICIPANTS_PER_CHANNEL: usize = 16;
    pub const DEFAULT_MAX_CHANNELS: usize = 1000;
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
    /// A safety cap, not a throttle: `colloquy bench joins` connects 400 people arriving at once
    /// on 2 cores in about 3 s without it binding; an overloaded task is caught by the join wait.
    pub const DEFAULT_MAX_CONNECTING: usize = 1024;
    pub const DEFAULT_MAX_JOIN_WAIT: Duration = Duration::from_millis(1000);
    pub const DEFAULT_INACTIVITY_TIMEOUT: Duration = Duration::from_secs(10);
    /// Host, server-reflexive and relayed candidates on a few interfaces, and a few NAT
    /// rebindings or network changes during a call.
    pub const DEFAULT_MAX_PEER_ADDRESSES: usize = 32;

    pub fn with_defaults(udp: SocketAddr) -> RtcConfig {
        RtcConfig {
            udp,
            public_ip: None,
            max_participants_per_channel: Self::DEFAULT_MAX_PARTICIPANTS_PER_CHANNEL,
            max_channels: Self::DEFAULT_MAX_CHANNELS,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            max_connecting: Self::DEFAULT_MAX_CONNECTING,
            max_join_wait: Self::DEFAULT_MAX_JOIN_WAIT,
            inactivity_timeout: Self::DEFAULT_INACTIVITY_TIMEOUT,
            max_peer_addresses: Self::DEFAULT_MAX_PEER_ADDRESSES,
        }
    }
}

/// A channel: a name within one app. App A's `room-1` and app B's `room-1` are two channels
/// whose participants never meet.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    pub app: String,
    pub name: String,
}

impl ChannelKey {
    pub fn new(app: &str, name: &str) -> ChannelKey {
        ChannelKey { app: app.to_owned(), name: name.to_owned() }
    }
}

impl std::fmt::Display for ChannelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

/// A participant's id on this node, unique for the process's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// Why a join was refused.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the SDP offer was refused: {0}")]
    BadOffer(String),
    #[error("channel {channel:?} is full ({max} participants)")]
    ChannelFull { channel: String, max: usize },
    #[error("this node carries its maximum of {max} channels")]
    TooManyChannels { max: usize },
    #[error("uid {uid:?} is already in channel {channel:?}")]
    UidTaken { channel: String, uid: String },
    #[error("this node cannot take a join now ({why}); retry in a second")]
    Busy { why: String },
    #[error("the channel server is shutting down")]
    ShuttingDown,
}

/// Why a participant left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// It asked to (WHIP DELETE, or the agent left).
    Left,
    /// Its token expired.
    TokenExpired,
    /// It never completed its connection.
    ConnectTimeout,
    /// Its packets stopped coming, or ICE/DTLS failed.
    Vanished,
    /// The node shut down.
    Shutdown,
}

impl LeaveReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::TokenExpired => "token_expired",
            LeaveReason::ConnectTimeout => "connect_timeout",
            LeaveReason::Vanished => "vanished",
            LeaveReason::Shutdown => "shutdown",
        }
    }
}

/// What an in-process participant (an agent) hears of its channel.
#[derive(Clone, Debug, PartialEq)]
pub enum ChannelEvent {
    /// Someone is in the channel: sent for those present when the agent joins, then for each arrival.
    Joined {
        uid: String,
        /// Another in-process agent rather than a person.
        agent: bool,
    },
    Left {
        uid: String,
        agent: bool,
        reason: LeaveReason,
    },
    /// 20 ms of 48 kHz mono PCM from one listened-to participant.
    Audio {
        from: String,
        pcm: Vec<i16>,
    },
    /// A data-channel message from a participant.
    Data {
        from: String,
        text: String,
    },
}

/// Whom an agent listens to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// Every participant who is not an agent.
    Everyone,
    Only(Vec<String>),
}

impl Listen {
    fn includes(&self, uid: &str) -> bool {
        match self {
            Listen::Everyone => true,
            Listen::Only(uids) => uids.iter().any(|u| u == uid),
        }
    }
}

/// An agent's seat in a channel: its events, and the handle to speak and send.
#[derive(Debug)]
pub struct AgentSeat {
    pub id: ParticipantId,
    pub events: mpsc::Receiver<ChannelEvent>,
    pub handle: AgentHandle,
}

/// Speaks and sends for an in-process participant. Dropping every handle does not leave; call
/// [`AgentHandle::leave`].
#[derive(Clone, Debug)]
pub struct AgentHandle {
    id: ParticipantId,
    commands: mpsc::Sender<Command>,
}

impl AgentHandle {
    /// Publishes 20 ms (960 samples) of 48 kHz mono PCM. The server encodes it to Opus once and
    /// forwards it to everyone in the channel.
    pub async fn publish(&self, pcm: Vec<i16>) {
        let _ = self.commands.send(Command::AgentAudio { id: self.id, pcm }).await;
    }

    /// Sends a data-channel message to one participant, or to every person in the channel.
    pub async fn send_data(&self, to: Option<String>, text: String) {
        let _ = self.commands.send(Command::AgentData { id: self.id, to, text }).await;
    }

    pub async fn leave(&self) {
        let _ = self.commands.send(Command::Leave { id: self.id, done: None }).await;
    }
}

/// Figures of the server, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct RtcStats {
    pub datagrams_in: AtomicU64,
    /// Datagrams for no session: neither from a session's address nor a STUN request naming one.
    pub datagrams_unrouted: AtomicU64,
    /// STUN requests from a new address naming a session whose MESSAGE-INTEGRITY failed.
    pub datagrams_unauthenticated: AtomicU64,
    /// Signed STUN requests from a new address of a session that has used its
    /// `max_peer_addresses` already.
    pub datagrams_too_many_addresses: AtomicU64,
    pub media_forwarded: AtomicU64,
    pub participants: AtomicU64,
}

enum Command {
    Join {
        grant: Grant,
        offer: String,
        /// When the join was asked for: one that waited too long for the task is refused.
        asked_at: Instant,
        done: oneshot::Sender<Result<(ParticipantId, String), JoinError>>,
    },
    JoinAgent {
        channel: ChannelKey,
        uid: String,
        listen: Listen,
        done: oneshot::Sender<Result<AgentSeat, JoinError>>,
    },
    Renew {
        id: ParticipantId,
        expires_at: u64,
        done: oneshot::Sender<bool>,
    },
    Leave {
        id: ParticipantId,
        done: Option<oneshot::Sender<bool>>,
    },
    AgentAudio {
        id: ParticipantId,
        pcm: Vec<i16>,
    },
    AgentData {
        id: ParticipantId,
        to: Option<String>,
        text: String,
    },
    List {
        channel: ChannelKey,
        done: oneshot::Sender<Vec<ParticipantInfo>>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// A participant as `GET /v1/channels/{channel}` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub uid: String,
    /// An in-process agent rather than a person on WebRTC.
    pub agent: bool,
    /// For people: the WebRTC connection is up.
    pub connected: bool,
    /// Seconds since it joined.
    pub joined_secs: u64,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// A handle to the running channel server; cheap to clone.
#[derive(Clone, Debug)]
pub struct ChannelServer {
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddr,
    stats: Arc<RtcStats>,
}

impl ChannelServer {
    /// Binds the UDP socket and starts the server's task.
    pub async fn start(config: RtcConfig) -> std::io::Result<ChannelServer> {
        let socket = UdpSocket::bind(config.udp).await?;
        let local_addr = socket.local_addr()?;
        let public = SocketAddr::new(config.public_ip.unwrap_or(local_addr.ip()), local_addr.port());
        let (commands_tx, commands_rx) = mpsc::channel(4096);
        let stats = Arc::new(RtcStats::default());
        let sfu = Sfu {
            config,
            socket,
            public,
            commands: commands_tx.clone(),
            participants: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            channels: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_id: 1,
            stats: Arc::clone(&stats),
            work: VecDeque::new(),
        };
        tokio::spawn(sfu.run(commands_rx));
        tracing::info!(%local_addr, candidate = %public, "channel server listening");
        Ok(ChannelServer { commands: commands_tx, local_addr, stats })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> &RtcStats {
        &self.stats
    }

    /// A person joins with a WHIP offer; answers their id and the SDP answer.
    pub async fn join(&self, grant: Grant, offer: String) -> Result<(ParticipantId, String), JoinError> {
        let (done, answer) = oneshot::channel();
        let command = Command::Join { grant, offer, asked_at: Instant::now(), done };
        self.commands.send(command).await.map_err(|_| JoinError::ShuttingDown)?;
        answer.await.map_err(|_| JoinError::ShuttingDown)?
    }

    /// An in-process participant joins `channel` of `app`.
    pub async fn join_agent(
        &self,
        app: &str,
        channel: &str,
        uid: &str,
        listen: Listen,
    ) -> Result<AgentSeat, JoinError> {
        let (done, seat) = oneshot::channel();
        let command = Command::JoinAgent { channel: ChannelKey::new(app, channel), uid: uid.to_owned(), listen, done };
        self.commands.send(command).await.map_err(|_| JoinError::ShuttingDown)?;
        seat.await.map_err(|_| JoinError::ShuttingDown)?
    }

    /// Moves a participant's expiry to `expires_at` (unix seconds); `false` when it is gone.
    pub async fn renew(&self, id: ParticipantId, expires_at: u64) -> bool {
        let (done, renewed) = oneshot::channel();
        if self.commands.send(Command::Renew { id, expires_at, done }).await.is_err() {
            return false;
        }
        renewed.await.unwrap_or(false)
    }

    /// Removes a participant; `false` when it was not there.
    pub async fn leave(&self, id: ParticipantId) -> bool {
        let (done, left) = oneshot::channel();
        if self.commands.send(Command::Leave { id, done: Some(done) }).await.is_err() {
            return false;
        }
        left.await.unwrap_or(false)
    }

    /// Who is in `app`'s `channel` now.
    pub async fn participants(&self, app: &str, channel: &str) -> Vec<ParticipantInfo> {
        let (done, list) = oneshot::channel();
        if self.commands.send(Command::List { channel: ChannelKey::new(app, channel), done }).await.is_err() {
            return Vec::new();
        }
        list.await.unwrap_or_default()
    }

    /// Removes everyone and stops the task.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Shutdown { done }).await.is_ok() {
            let _ = finished.await;
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A downlink slot of a person: one audio m-line that carries one remote source.
#[derive(Debug)]
struct Slot {
    mid: Mid,
    source: Option<ParticipantId>,
    /// Added to the source's RTP time so that the slot's own timeline runs on without a jump when
    /// its source changes; set at the source's first frame.
    offset: Option<i64>,
    /// The slot's last RTP time sent, and when.
    last: Option<(u64, Instant)>,
}

impl Slot {
    fn new(mid: Mid) -> Slot {
        Slot { mid, source: None, offset: None, last: None }
    }

    /// Gives the slot to `source`: its next frame continues the slot's timeline.
    fn assign(&mut self, source: Option<ParticipantId>) {
        self.source = source;
        self.offset = None;
    }

    /// The slot's RTP time for a frame of its source at `time`, arriving at `now`.
    fn rebase(&mut self, time: MediaTime, now: Instant) -> MediaTime {
        let source = (time.numer() * 48_000 / u64::from(time.denom().max(1))) as i64;
        let offset = *self.offset.get_or_insert_with(|| match self.last {
            // Continue from the last frame sent, as far on as the wall clock moved.
            Some((last, at)) => {
                let gap = (now.saturating_duration_since(at).as_secs_f64() * 48_000.0) as i64;
                last as i64 + gap.max(FRAME_SAMPLES as i64) - source
            }
            None => 0,
        });
        let out = (source + offset).max(0) as u64;
        self.last = Some((out, now));
        MediaTime::new(out, Frequency::FORTY_EIGHT_KHZ)
    }
}

#[derive(Debug)]
struct Person {
    rtc: Rtc,
    /// The m-line their microphone comes in on.
    uplink: Option<Mid>,
    slots: Vec<Slot>,
    data: Option<ChannelId>,
    ufrag: String,
    /// Our ICE password for them: what their STUN requests are signed with.
    ice_password: String,
    /// Their current 5-tuple source, once known.
    addr: Option<SocketAddr>,
    /// Every source address the session was moved to, at most `max_peer_addresses`.
    addresses: Vec<SocketAddr>,
    /// Whether the log said once that they went beyond `max_peer_addresses`.
    warned_addresses: bool,
    connected: bool,
    last_packet: Instant,
    /// When str0m next wants time.
    deadline: Instant,
}

#[derive(Debug)]
struct Agent {
    events: mpsc::Sender<ChannelEvent>,
    listen: Listen,
    /// One decoder per person it listens to.
    decoders: HashMap<ParticipantId, OpusDecoder>,
    encoder: OpusEncoder,
    /// RTP time of its next frame, in 48 kHz samples.
    media_time: u64,
}

#[derive(Debug)]
enum Kind {
    Person(Box<Person>),
    Agent(Box<Agent>),
}

#[derive(Debug)]
struct Participant {
    channel: ChannelKey,
    uid: String,
    expires_at: u64,
    joined_at: Instant,
    kind: Kind,
}

/// Work found while handling one input, done before the next: forwarding touches other peers.
enum Work {
    Media { from: ParticipantId, frame: Arc<[u8]>, time: MediaTime, wallclock: Instant },
    Data { from: ParticipantId, text: String },
    Remove { id: ParticipantId, reason: LeaveReason },
}

struct Sfu {
    config: RtcConfig,
    socket: UdpSocket,
    /// The address in our host candidates.
    public: SocketAddr,
    commands: mpsc::Sender<Command>,
    participants: HashMap<ParticipantId, Participant>,
    by_addr: HashMap<SocketAddr, ParticipantId>,
    by_ufrag: HashMap<String, ParticipantId>,
    channels: HashMap<ChannelKey, Vec<ParticipantId>>,
    /// Every person's next str0m deadline, soonest first.
    deadlines: BTreeSet<(Instant, ParticipantId)>,
    next_id: u64,
    stats: Arc<RtcStats>,
    work: VecDeque<Work>,
}

impl Sfu {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        let mut housekeeping = tokio::time::interval(Duration::from_millis(500));
        loop {
            let next =
                self.deadlines.first().map(|(t, _)| *t).unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, source)) => self.on_datagram(&buf[..len], source),
                    Err(e) => tracing::debug!(error = %e, "UDP receive"),
                },
                command = commands.recv() => match command {
                    Some(Command::Shutdown { done }) => {
                        self.remove_all(LeaveReason::Shutdown);
                        let _ = done.send(());
                        return;
                    }
                    Some(command) => self.on_command(command),
                    None => return,
                },
                () = tokio::time::sleep_until(next.into()) => self.on_deadlines(Instant::now()),
                _ = housekeeping.tick() => self.housekeeping(),
            }
            self.do_work();
        }
    }

    fn on_datagram(&mut self, packet: &[u8], source: SocketAddr) {
        self.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
        let (id, new_address) = match self.by_addr.get(&source) {
            Some(id) => (*id, false),
            None => match stun::local_ufrag(packet).and_then(|ufrag| self.by_ufrag.get(ufrag)) {
                Some(id) => (*id, true),
                None => {
                    self.stats.datagrams_unrouted.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
        };
        let Some(Participant { kind: Kind::Person(person), .. }) = self.participants.get_mut(&id) else { return };
        if new_address {
            // A request from a new address finds the session by its ufrag, which anyone on the
            // path can read: only one signed with the session's ICE password may move it there,
            // checked before str0m parses anything. ICE keeps a candidate for every address a
            // session was moved to, so a session may use only so many.
            if !stun::integrity_ok(packet, person.ice_password.as_bytes()) {
                self.stats.datagrams_unauthenticated.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if !person.addresses.contains(&source) {
                if person.addresses.len() >= self.config.max_peer_addresses {
                    self.stats.datagrams_too_many_addresses.fetch_add(1, Ordering::Relaxed);
                    if !person.warned_addresses {
                        person.warned_addresses = true;
                        tracing::warn!(
                            participant = %id,
                            max = self.config.max_peer_addresses,
                            "signed STUN requests came from more addresses than a session may use; the new ones are dropped"
                        );
                    }
                    return;
                }
                person.addresses.push(source);
            }
            if let Some(old) = person.addr.replace(source) {
                self.by_addr.remove(&old);
            }
            self.by_addr.insert(source, id);
        }
        let Ok(contents) = packet.try_into() else {
            // Not STUN, DTLS, RTP or RTCP: garbage, dropped without touching the session.
            return;
        };
        let now = Instant::now();
        // The destination is our candidate's address: behind a NAT (or a relay) the datagram
        // arrives at the bind address, but ICE knows only the advertised one.
        let input = Input::Receive(now, Receive { proto: Protocol::Udp, source, destination: self.public, contents });
        person.last_packet = now;
        if let Err(e) = person.rtc.handle_input(input) {
            tracing::debug!(participant = %id, error = %e, "input refused");
        }
        self.drain(id);
    }

    fn on_deadlines(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(Participant { kind: Kind::Person(person), .. }) = self.participants.get_mut(&id) {
                if let Err(e) = person.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(participant = %id, error = %e, "timeout refused");
                }
                self.drain(id);
            }
        }
    }

    /// Drives a person's `Rtc` until it has nothing more to say: sends its datagrams, turns its
    /// events into work, and files its next deadline.
    fn drain(&mut self, id: ParticipantId) {
        let Some(Participant { kind: Kind::Person(person), .. }) = self.participants.get_mut(&id) else { return };
        self.deadlines.remove(&(person.deadline, id));
        loop {
            if !person.rtc.is_alive() {
                self.work.push_back(Work::Remove { id, reason: LeaveReason::Vanished });
                return;
            }
            match person.rtc.poll_output() {
                Ok(Output::Timeout(deadline)) => {
                    person.deadline = deadline;
                    self.deadlines.insert((deadline, id));
                    return;
                }
                Ok(Output::Transmit(transmit)) => {
                    // A full socket buffer drops the datagram, as a congested network would.
                    let _ = self.socket.try_send_to(&transmit.contents, transmit.destination);
                }
                Ok(Output::Event(event)) => match event {
                    Event::Connected => {
                        person.connected = true;
                        tracing::debug!(participant = %id, "connected");
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.work.push_back(Work::Remove { id, reason: LeaveReason::Vanished });
                    }
                    Event::MediaData(data)
                        if Some(data.mid) == person.uplink && data.params.spec().codec == Codec::Opus =>
                    {
                        self.work.push_back(Work::Media {
                            from: id,
                            frame: data.data,
                            time: data.time,
                            wallclock: data.network_time,
                        });
                    }
                    Event::ChannelOpen(channel, _) => person.data = Some(channel),
                    Event::ChannelData(data) if !data.binary => {
                        if let Ok(text) = String::from_utf8(data.data) {
                            self.work.push_back(Work::Data { from: id, text });
                        }
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!(participant = %id, error = %e, "peer failed");
                    person.rtc.disconnect();
                }
            }
        }
    }

    fn do_work(&mut self) {
        while let Some(work) = self.work.pop_front() {
            match work {
                Work::Media { from, frame, time, wallclock } => self.forward(from, &frame, time, wallclock, true),
                Work::Data { from, text } => self.on_person_data(from, text),
                Work::Remove { id, reason } => self.remove(id, reason),
            }
        }
    }

    /// Sends one Opus frame of `from` to everyone else in its channel: as it is to people, decoded
    /// to agents that listen to `from` (when `decode_for_agents`).
    fn forward(
        &mut self,
        from: ParticipantId,
        frame: &Arc<[u8]>,
        time: MediaTime,
        wallclock: Instant,
        decode_for_agents: bool,
    ) {
        let Some(sender) = self.participants.get(&from) else { return };
        // The member list is copied (forwarding needs `&mut self`); the channel name need not be.
        let Some(members) = self.channels.get(&sender.channel).cloned() else { return };
        let from_uid = sender.uid.clone();
        for member in members.into_iter().filter(|m| *m != from) {
            let Some(participant) = self.participants.get_mut(&member) else { continue };
            match &mut participant.kind {
                Kind::Person(person) => {
                    if !person.connected {
                        continue;
                    }
                    let slot = match person.slots.iter().position(|s| s.source == Some(from)) {
                        Some(slot) => slot,
                        None => match person.slots.iter().position(|s| s.source.is_none()) {
                            Some(free) => {
                                person.slots[free].assign(Some(from));
                                free
                            }
                            None => continue,
                        },
                    };
                    let mid = person.slots[slot].mid;
                    let time = person.slots[slot].rebase(time, wallclock);
                    let Some(writer) = person.rtc.writer(mid) else { continue };
                    let Some(pt) = writer.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt())
                    else {
                        continue;
                    };
                    if writer.write(pt, wallclock, time, Arc::clone(frame)).is_ok() {
                        self.stats.media_forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                    self.drain(member);
                }
                Kind::Agent(agent) => {
                    if !decode_for_agents || !agent.listen.includes(&from_uid) {
                        continue;
                    }
                    let decoder = match agent.decoders.entry(from) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => match OpusDecoder::new() {
                            Ok(decoder) => e.insert(decoder),
                            Err(_) => continue,
                        },
                    };
                    if let Ok(pcm) = decoder.decode(frame) {
                        // A slow agent misses frames rather than holding up the channel.
                        let _ = agent.events.try_send(ChannelEvent::Audio { from: from_uid.clone(), pcm });
                    }
                }
            }
        }
    }

    fn on_person_data(&mut self, from: ParticipantId, text: String) {
        let Some(sender) = self.participants.get(&from) else { return };
        let Some(members) = self.channels.get(&sender.channel).cloned() else { return };
        let uid = sender.uid.clone();
        for member in members {
            if let Some(Participant { kind: Kind::Agent(agent), .. }) = self.participants.get(&member) {
                let _ = agent.events.try_send(ChannelEvent::Data { from: uid.clone(), text: text.clone() });
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Join { grant, offer, asked_at, done } => {
                // The task is behind: a join accepted now would likely time out before connecting.
                let waited = asked_at.elapsed();
                if waited > self.config.max_join_wait {
                    let _ = done.send(Err(JoinError::Busy {
                        why: format!("the channel server is {} ms behind", waited.as_millis()),
                    }));
                    return;
                }
                let _ = done.send(self.join_person(grant, &offer));
            }
            Command::JoinAgent { channel, uid, listen, done } => {
                let _ = done.send(self.join_agent(channel, uid, listen));
            }
            Command::Renew { id, expires_at, done } => {
                let renewed = match self.participants.get_mut(&id) {
                    Some(participant) => {
                        participant.expires_at = expires_at;
                        true
                    }
                    None => false,
                };
                let _ = done.send(renewed);
            }
            Command::Leave { id, done } => {
                let present = self.participants.contains_key(&id);
                self.remove(id, LeaveReason::Left);
                if let Some(done) = done {
                    let _ = done.send(present);
                }
            }
            Command::List { channel, done } => {
                let members = self.channels.get(&channel).into_iter().flatten();
                let list = members
                    .filter_map(|id| self.participants.get(id))
                    .map(|p| ParticipantInfo {
                        uid: p.uid.clone(),
                        agent: matches!(p.kind, Kind::Agent(_)),
                        connected: match &p.kind {
                            Kind::Person(person) => person.connected,
                            Kind::Agent(_) => true,
                        },
                        joined_secs: p.joined_at.elapsed().as_secs(),
                    })
                    .collect();
                let _ = done.send(list);
            }
            Command::AgentAudio { id, pcm } => self.agent_audio(id, &pcm),
            Command::AgentData { id, to, text } => self.agent_data(id, to, text),
            Command::Shutdown { .. } => unreachable!("handled by the loop"),
        }
    }

    /// Checks that `uid` may join `channel`.
    fn admit(&self, channel: &ChannelKey, uid: &str) -> Result<(), JoinError> {
        match self.channels.get(channel) {
            Some(members) => {
                if members.len() >= self.config.max_participants_per_channel {
                    return Err(JoinError::ChannelFull {
                        channel: channel.name.clone(),
                        max: self.config.max_participants_per_channel,
                    });
                }
                if members.iter().any(|m| self.participants.get(m).is_some_and(|p| p.uid == uid)) {
                    return Err(JoinError::UidTaken { channel: channel.name.clone(), uid: uid.to_owned() });
                }
                Ok(())
            }
            None if self.channels.len() >= self.config.max_channels => {
                Err(JoinError::TooManyChannels { max: self.config.max_channels })
            }
            None => Ok(()),
        }
    }

    fn join_person(&mut self, grant: Grant, offer: &str) -> Result<(ParticipantId, String), JoinError> {
        let channel = ChannelKey { app: grant.app, name: grant.channel };
        self.admit(&channel, &grant.uid)?;
        let connecting =
            self.participants.values().filter(|p| matches!(&p.kind, Kind::Person(person) if !person.connected)).count();
        if connecting >= self.config.max_connecting {
            return Err(JoinError::Busy {
                why: format!("it is connecting its maximum of {} people", self.config.max_connecting),
            });
        }
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| JoinError::BadOffer(e.to_string()))?;
        let now = Instant::now();
        let mut rtc = Rtc::builder().set_ice_lite(true).clear_codecs().enable_opus(true, false).build(now);
        let candidate = Candidate::host(self.public, "udp").map_err(|e| JoinError::BadOffer(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| JoinError::BadOffer(e.to_string()))?;
        let credentials = rtc.direct_api().local_ice_credentials();
        let (ufrag, ice_password) = (credentials.ufrag, credentials.pass);

        // Audio m-lines in offer order: the first that receives from the person is their uplink;
        // every line that sends to the person is a downlink slot.
        let mut uplink = None;
        let mut slots = Vec::new();
        for media in answer_audio_lines(&answer.to_sdp_string()) {
            if media.direction.is_receiving() && uplink.is_none() {
                uplink = Some(media.mid);
            }
            if media.direction.is_sending() {
                slots.push(Slot::new(media.mid));
            }
        }
        if uplink.is_none() && slots.is_empty() {
            return Err(JoinError::BadOffer("the offer has no audio m-line".to_owned()));
        }

        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        let person = Person {
            rtc,
            uplink,
            slots,
            data: None,
            ufrag: ufrag.clone(),
            ice_password,
            addr: None,
            addresses: Vec::new(),
            warned_addresses: false,
            connected: false,
            last_packet: now,
            deadline: now,
        };
        self.by_ufrag.insert(ufrag, id);
        self.add(id, channel, grant.uid, grant.expires_at, Kind::Person(Box::new(person)));
        self.drain(id);
        Ok((id, answer.to_sdp_string()))
    }

    fn join_agent(&mut self, channel: ChannelKey, uid: String, listen: Listen) -> Result<AgentSeat, JoinError> {
        self.admit(&channel, &uid)?;
        let encoder = OpusEncoder::new().map_err(|e| JoinError::BadOffer(format!("opus encoder: {e}")))?;
        let (events_tx, events_rx) = mpsc::channel(256);
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        // The agent hears who is already there.
        for member in self.channels.get(&channel).into_iter().flatten() {
            if let Some(participant) = self.participants.get(member) {
                let agent = matches!(participant.kind, Kind::Agent(_));
                let _ = events_tx.try_send(ChannelEvent::Joined { uid: participant.uid.clone(), agent });
            }
        }
        let agent = Agent { events: events_tx, listen, decoders: HashMap::new(), encoder, media_time: 0 };
        self.add(id, channel, uid, u64::MAX, Kind::Agent(Box::new(agent)));
        Ok(AgentSeat { id, events: events_rx, handle: AgentHandle { id, commands: self.commands.clone() } })
    }

    /// Registers a participant and tells the agents of the channel.
    fn add(&mut self, id: ParticipantId, channel: ChannelKey, uid: String, expires_at: u64, kind: Kind) {
        let agent = matches!(kind, Kind::Agent(_));
        self.notify_agents(&channel, Some(id), || ChannelEvent::Joined { uid: uid.clone(), agent });
        self.channels.entry(channel.clone()).or_default().push(id);
        tracing::info!(participant = %id, %channel, %uid, person = matches!(kind, Kind::Person(_)), "joined");
        self.participants.insert(id, Participant { channel, uid, expires_at, joined_at: Instant::now(), kind });
        self.stats.participants.store(self.participants.len() as u64, Ordering::Relaxed);
    }

    fn notify_agents(&self, channel: &ChannelKey, except: Option<ParticipantId>, event: impl Fn() -> ChannelEvent) {
        for member in self.channels.get(channel).into_iter().flatten() {
            if Some(*member) == except {
                continue;
            }
            if let Some(Participant { kind: Kind::Agent(agent), .. }) = self.participants.get(member) {
                let _ = agent.events.try_send(event());
            }
        }
    }

    fn remove(&mut self, id: ParticipantId, reason: LeaveReason) {
        let Some(mut participant) = self.participants.remove(&id) else { return };
        if let Kind::Person(person) = &mut participant.kind {
            self.deadlines.remove(&(person.deadline, id));
            self.by_ufrag.remove(&person.ufrag);
            if let Some(addr) = person.addr {
                self.by_addr.remove(&addr);
            }
            person.rtc.disconnect();
        }
        if let Some(members) = self.channels.get_mut(&participant.channel) {
            members.retain(|m| *m != id);
            if members.is_empty() {
                self.channels.remove(&participant.channel);
            }
        }
        // Free the slots that carried this participant, and forget its decoders.
        for other in self.participants.values_mut() {
            match &mut other.kind {
                Kind::Person(person) => {
                    person.slots.iter_mut().filter(|s| s.source == Some(id)).for_each(|s| s.source = None)
                }
                Kind::Agent(agent) => {
                    agent.decoders.remove(&id);
                }
            }
        }
        tracing::info!(participant = %id, channel = %participant.channel, uid = %participant.uid, reason = reason.as_str(), "left");
        let uid = participant.uid.clone();
        let agent = matches!(participant.kind, Kind::Agent(_));
        self.notify_agents(&participant.channel, None, || ChannelEvent::Left {
            uid: uid.clone(),
            agent,
            reason: reason.clone(),
        });
        self.stats.participants.store(self.participants.len() as u64, Ordering::Relaxed);
    }

    fn remove_all(&mut self, reason: LeaveReason) {
        let ids: Vec<_> = self.participants.keys().copied().collect();
        for id in ids {
            self.remove(id, reason.clone());
        }
    }

    /// Expired tokens, connections that never completed, peers that went silent.
    fn housekeeping(&mut self) {
        let now = Instant::now();
        let unix = unix_now();
        for (id, participant) in &self.participants {
            let reason = if unix >= participant.expires_at {
                Some(LeaveReason::TokenExpired)
            } else if let Kind::Person(person) = &participant.kind {
                if !person.connected && now.duration_since(participant.joined_at) > self.config.connect_timeout {
                    Some(LeaveReason::ConnectTimeout)
                } else if person.connected && now.duration_since(person.last_packet) > self.config.inactivity_timeout {
                    Some(LeaveReason::Vanished)
                } else {
                    None
                }
            } else {
                None
            };
            if let Some(reason) = reason {
                self.work.push_back(Work::Remove { id: *id, reason });
            }
        }
    }

    fn agent_audio(&mut self, id: ParticipantId, pcm: &[i16]) {
        let Some(Participant { kind: Kind::Agent(agent), .. }) = self.participants.get_mut(&id) else { return };
        let Ok(frame) = agent.encoder.encode(pcm) else { return };
        let time = MediaTime::new(agent.media_time, Frequency::FORTY_EIGHT_KHZ);
        agent.media_time += FRAME_SAMPLES as u64;
        self.forward(id, &Arc::from(frame), time, Instant::now(), false);
    }

    fn agent_data(&mut self, id: ParticipantId, to: Option<String>, text: String) {
        let Some(sender) = self.participants.get(&id) else { return };
        let members = self.channels.get(&sender.channel).cloned().unwrap_or_default();
        for member in members.into_iter().filter(|m| *m != id) {
            let Some(participant) = self.participants.get_mut(&member) else { continue };
            if to.as_ref().is_some_and(|to| *to != participant.uid) {
                continue;
            }
            if let Kind::Person(person) = &mut participant.kind {
                if let Some(mut channel) = person.data.and_then(|cid| person.rtc.channel(cid)) {
                    let _ = channel.write(false, text.as_bytes());
                }
                self.drain(member);
            }
        }
    }
}

/// An audio m-line of an SDP answer, as seen from our side.
struct AudioLine {
    mid: Mid,
    direction: Direction,
}

/// The audio m-lines of `answer` with their mid and our direction, in order.
fn answer_audio_lines(answer: &str) -> Vec<AudioLine> {
    let mut lines = Vec::new();
    let mut current: Option<(bool, Option<Mid>, Direction)> = None;
    let finish = |current: Option<(bool, Option<Mid>, Direction)>, lines: &mut Vec<AudioLine>| {
        if let Some((true, Some(mid), direction)) = current {
            lines.push(AudioLine { mid, direction });
        }
    };
    for line in answer.lines() {
        let line = line.trim_end();
        if let Some(media) = line.strip_prefix("m=") {
            finish(current.take(), &mut lines);
            current = Some((media.starts_with("audio "), None, Direction::SendRecv));
        } else if let Some((_, mid, direction)) = current.as_mut() {
            if let Some(value) = line.strip_prefix("a=mid:") {
                *mid = Some(Mid::from(value));
            } else {
                match line {
                    "a=sendrecv" => *direction = Direction::SendRecv,
                    "a=sendonly" => *direction = Direction::SendOnly,
                    "a=recvonly" => *direction = Direction::RecvOnly,
                    "a=inactive" => *direction = Direction::Inactive,
                    _ => {}
                }
            }
        }
    }
    finish(current.take(), &mut lines);
    lines
}
