//! `colloquy call`: a headless WebRTC client on str0m, for people, tests and benchmarks.
//!
//! It joins a channel through WHIP, sends a WAV file as Opus in real time (silence without one),
//! records everything it hears, mixed, prints every data-channel message on stdout as one JSON
//! object per line, and logs to stderr. Its last stderr line is a summary:
//! `call summary: {"packets_sent": …, "first_audio_sent_unix_us": …, "first_audio_heard_unix_us": …}`.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use colloquy_rtc::audio::{self, FRAME_SAMPLES, OpusDecoder, OpusEncoder, SAMPLE_RATE};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

/// `colloquy call` flags.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// The colloquy server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:7880")]
    pub server: String,
    /// An RTC token (see POST /v1/tokens).
    #[arg(long, conflicts_with_all = ["channel", "uid"])]
    pub token: Option<String>,
    /// Mint a token for this channel with the API credentials in COLLOQUY_API_KEY/COLLOQUY_API_SECRET.
    #[arg(long, requires = "uid")]
    pub channel: Option<String>,
    /// The uid to join as, with --channel.
    #[arg(long, requires = "channel")]
    pub uid: Option<String>,
    /// A WAV file to send as Opus in real time (any rate, mono or stereo); silence when absent.
    #[arg(long, value_name = "FILE.wav")]
    pub play: Option<PathBuf>,
    /// Write everything heard, mixed, to this WAV file (48 kHz mono).
    #[arg(long, value_name = "FILE.wav")]
    pub record: Option<PathBuf>,
    /// Leave after this many seconds; without it, leave when the --play input ends (or on Ctrl-C).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// A JSON message to send on the data channel once it opens (repeatable).
    #[arg(long, value_name = "JSON")]
    pub send: Vec<String>,
    /// Answers the agent's client tool NAME: each `tool.call` for it gets a `tool.result` with
    /// this JSON as its result (repeatable).
    #[arg(long, value_name = "NAME=JSON")]
    pub answer_tool: Vec<String>,
    /// Extra receive-only audio lines, to hear more than one other participant at once.
    #[arg(long, default_value_t = 0)]
    pub extra_downlinks: usize,
}

/// The `tool.result` for `message` when it is a `tool.call` of a tool `answers` (`NAME=JSON`) names.
fn tool_answer(answers: &[String], message: &serde_json::Value) -> Option<String> {
    if message["object"] != "tool.call" {
        return None;
    }
    let name = message["name"].as_str()?;
    let json = answers.iter().find_map(|a| a.strip_prefix(name)?.strip_prefix('='))?;
    let result = serde_json::from_str::<serde_json::Value>(json).unwrap_or_else(|_| json.into());
    Some(serde_json::json!({"object": "tool.result", "call_id": message["call_id"], "result": result}).to_string())
}

/// What a call did, for the summary line.
#[derive(Debug, Default, serde::Serialize)]
pub struct CallSummary {
    pub connected_after_ms: Option<u64>,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub data_messages: u64,
    /// Wall clock of the first frame sent with sound in it.
    pub first_audio_sent_unix_us: Option<u64>,
    /// Wall clock of the last frame sent with sound in it.
    pub last_audio_sent_unix_us: Option<u64>,
    /// Wall clock of the first frame heard with sound in it.
    pub first_audio_heard_unix_us: Option<u64>,
    /// When sound was heard: `[start, end]` wall-clock spans, split at 300 ms of silence.
    pub heard_spans_unix_us: Vec<(u64, u64)>,
    pub recorded_seconds: f64,
}

impl CallSummary {
    /// Extends the spans of sound with a frame heard at `at`.
    fn heard(&mut self, at: u64) {
        self.first_audio_heard_unix_us.get_or_insert(at);
        match self.heard_spans_unix_us.last_mut() {
            Some((_, end)) if at.saturating_sub(*end) <= 300_000 => *end = at,
            _ => self.heard_spans_unix_us.push((at, at)),
        }
    }
}

/// The longest recording kept: one hour.
const MAX_RECORDING_SAMPLES: usize = 3600 * SAMPLE_RATE as usize;

/// The level above which a frame counts as sound (RMS of 16-bit samples).
const SOUND_RMS: f64 = 300.0;

fn unix_us(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn rms(frame: &[i16]) -> f64 {
    (frame.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / frame.len().max(1) as f64).sqrt()
}

pub fn run(args: CallArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let summary = runtime.block_on(call(args, None, None))?;
    eprintln!("call summary: {}", serde_json::to_string(&summary)?);
    Ok(())
}

async fn mint_token(http: &reqwest::Client, server: &str, channel: &str, uid: &str) -> anyhow::Result<String> {
    let key = std::env::var("COLLOQUY_API_KEY").context("--channel needs COLLOQUY_API_KEY (or pass --token)")?;
    let secret = std::env::var("COLLOQUY_API_SECRET").context("--channel needs COLLOQUY_API_SECRET")?;
    let response = http
        .post(format!("{server}/v1/tokens"))
        .basic_auth(key, Some(secret))
        .json(&serde_json::json!({"channel": channel, "uid": uid}))
        .send()
        .await
        .context("asking the server for a token")?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("the server refused a token ({status}): {body}");
    }
    body["token"].as_str().map(str::to_owned).context("the token answer has no token")
}

/// The local address to offer: the one this machine uses to reach the server.
fn local_ip_towards(server: &str) -> anyhow::Result<IpAddr> {
    let url: reqwest::Url = server.parse().context("--server is not a URL")?;
    let host = url.host_str().context("--server has no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let target =
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?.next().context("--server does not resolve")?;
    let probe = std::net::UdpSocket::bind(if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    probe.connect(target)?;
    Ok(probe.local_addr()?.ip())
}

struct Recording {
    samples: Vec<i16>,
    /// Per incoming line: its decoder and where its media time 0 falls in `samples`.
    streams: HashMap<Mid, (OpusDecoder, i64)>,
}

impl Recording {
    fn add(&mut self, mid: Mid, time: MediaTime, frame: &[u8], arrival: usize) -> Option<Vec<i16>> {
        let entry = match self.streams.entry(mid) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let origin = arrival as i64 - rtp_samples(time);
                e.insert((OpusDecoder::new().ok()?, origin))
            }
        };
        let pcm = entry.0.decode(frame).ok()?;
        // A line whose source changed restarts its RTP clock somewhere else: re-anchor it at the
        // arrival position when it lands more than a second away from it.
        if (entry.1 + rtp_samples(time) - arrival as i64).abs() > i64::from(SAMPLE_RATE) {
            entry.1 = arrival as i64 - rtp_samples(time);
        }
        let start = (entry.1 + rtp_samples(time)).max(0) as usize;
        if start + pcm.len() > MAX_RECORDING_SAMPLES {
            return Some(pcm);
        }
        if self.samples.len() < start + pcm.len() {
            self.samples.resize(start + pcm.len(), 0);
        }
        for (slot, sample) in self.samples[start..].iter_mut().zip(&pcm) {
            *slot = slot.saturating_add(*sample);
        }
        Some(pcm)
    }
}

fn rtp_samples(time: MediaTime) -> i64 {
    // Opus RTP time runs at 48 kHz.
    (time.numer() as i64) * i64::from(SAMPLE_RATE) / (time.denom() as i64)
}

/// Makes the call. Data-channel messages go to `messages` when given, else to stdout as JSON lines.
/// The call ends at `--seconds`, 500 ms after the played file ends (without `--seconds`), at
/// Ctrl-C, or when `stop` fires.
pub async fn call(
    args: CallArgs,
    messages: Option<tokio::sync::mpsc::UnboundedSender<serde_json::Value>>,
    stop: Option<tokio::sync::oneshot::Receiver<()>>,
) -> anyhow::Result<CallSummary> {
    let http = reqwest::Client::new();
    let server = args.server.trim_end_matches('/').to_owned();
    let token = match (&args.token, &args.channel, &args.uid) {
        (Some(token), _, _) => token.clone(),
        (None, Some(channel), Some(uid)) => mint_token(&http, &server, channel, uid).await?,
        _ => bail!("pass --token, or --channel and --uid"),
    };
    let play: Option<Vec<i16>> = match &args.play {
        Some(path) => {
            let (samples, rate) = audio::read_wav(path).with_context(|| format!("reading {}", path.display()))?;
            Some(audio::to_i16(&audio::resample(&samples, rate, SAMPLE_RATE)))
        }
        None => None,
    };

    let socket = UdpSocket::bind(SocketAddr::new(local_ip_towards(&server)?, 0)).await?;
    let local = socket.local_addr()?;
    let started = Instant::now();
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(started);
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    let uplink = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    for _ in 0..args.extra_downlinks {
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    }
    let data_channel = change.add_channel("colloquy".to_owned());
    let (offer, pending) = change.apply().context("building the offer")?;

    let whip = match &args.channel {
        Some(channel) => format!("{server}/rtc/whip?channel={channel}"),
        None => format!("{server}/rtc/whip"),
    };
    let response = http
        .post(whip)
        .bearer_auth(&token)
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await
        .context("sending the offer")?;
    let status = response.status();
    let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
    let body = response.text().await?;
    if status.as_u16() != 201 {
        bail!("the server refused to join ({status}): {body}");
    }
    let location = location.context("the WHIP answer has no Location")?;
    let answer = SdpAnswer::from_sdp_string(&body).context("the server's answer is not SDP")?;
    rtc.sdp_api().accept_answer(pending, answer).context("applying the answer")?;
    tracing::info!(%local, resource = %location, "joined; connecting");

    let mut summary = CallSummary::default();
    let mut recording = Recording { samples: Vec::new(), streams: HashMap::new() };
    let mut encoder = OpusEncoder::new()?;
    let mut connected_at: Option<Instant> = None;
    let mut frame_index: u64 = 0;
    let mut next_frame = tokio::time::Instant::now();
    let deadline_total = args.seconds.map(|s| started + Duration::from_secs_f64(s));
    let mut input_done_at: Option<Instant> = None;
    let mut buf = vec![0u8; 2048];
    let mut stdout = std::io::stdout();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let stopped = async move {
        match stop {
            Some(stop) => {
                let _ = stop.await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stopped);

    'call: loop {
        // Drain str0m until it asks for time.
        let timeout = loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(event) => match event {
                    Event::Connected => {
                        connected_at = Some(Instant::now());
                        summary.connected_after_ms = Some(started.elapsed().as_millis() as u64);
                        next_frame = tokio::time::Instant::now();
                        tracing::info!(after_ms = summary.connected_after_ms, "connected");
                    }
                    Event::MediaData(data) => {
                        summary.packets_received += 1;
                        let arrival =
                            connected_at.map_or(0.0, |c| c.elapsed().as_secs_f64() * f64::from(SAMPLE_RATE)) as usize;
                        if let Some(pcm) = recording.add(data.mid, data.time, &data.data, arrival)
                            && rms(&pcm) > SOUND_RMS
                        {
                            summary.heard(unix_us(SystemTime::now()));
                        }
                    }
                    Event::ChannelOpen(id, _) if id == data_channel => {
                        if let Some(mut channel) = rtc.channel(id) {
                            for message in &args.send {
                                channel.write(false, message.as_bytes())?;
                            }
                        }
                    }
                    Event::ChannelData(data) => {
                        summary.data_messages += 1;
                        let text = String::from_utf8_lossy(&data.data);
                        let value = serde_json::from_str::<serde_json::Value>(&text)
                            .unwrap_or_else(|_| serde_json::json!({"type": "raw", "text": text}));
                        if let Some(answer) = tool_answer(&args.answer_tool, &value)
                            && let Some(mut channel) = rtc.channel(data.id)
                        {
                            channel.write(false, answer.as_bytes())?;
                        }
                        match &messages {
                            Some(messages) => {
                                let _ = messages.send(value);
                            }
                            None => {
                                let _ = writeln!(stdout, "{value}");
                                let _ = stdout.flush();
                            }
                        }
                    }
                    Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected) => {
                        tracing::warn!("the connection dropped");
                        break 'call;
                    }
                    _ => {}
                },
            }
        };

        let now = Instant::now();
        if deadline_total.is_some_and(|d| now >= d) {
            break;
        }
        if deadline_total.is_none() && input_done_at.is_some_and(|t| now >= t + Duration::from_millis(500)) {
            break;
        }
        if connected_at.is_none() && started.elapsed() > Duration::from_secs(15) {
            bail!("no connection within 15 s");
        }

        let wake = tokio::time::Instant::from_std(timeout);
        let frame_due = connected_at.map(|_| next_frame);
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (len, source) = received?;
                if let Ok(contents) = buf[..len].try_into() {
                    rtc.handle_input(Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents }))?;
                }
            }
            () = tokio::time::sleep_until(frame_due.unwrap_or(wake)), if frame_due.is_some() => {
                let start = frame_index as usize * FRAME_SAMPLES;
                let frame: Vec<i16> = match &play {
                    Some(samples) if start < samples.len() => {
                        let mut frame = samples[start..(start + FRAME_SAMPLES).min(samples.len())].to_vec();
                        frame.resize(FRAME_SAMPLES, 0);
                        frame
                    }
                    Some(_) => {
                        input_done_at.get_or_insert_with(Instant::now);
                        vec![0; FRAME_SAMPLES]
                    }
                    None => vec![0; FRAME_SAMPLES],
                };
                let pt = rtc.writer(uplink).and_then(|w| w.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt()));
                if let (Some(pt), Some(writer)) = (pt, rtc.writer(uplink)) {
                    let packet = encoder.encode(&frame)?;
                    let time = MediaTime::new(frame_index * FRAME_SAMPLES as u64, Frequency::FORTY_EIGHT_KHZ);
                    writer.write(pt, Instant::now(), time, packet)?;
                    summary.packets_sent += 1;
                    if rms(&frame) > SOUND_RMS {
                        let now = unix_us(SystemTime::now());
                        summary.first_audio_sent_unix_us.get_or_insert(now);
                        summary.last_audio_sent_unix_us = Some(now);
                    }
                }
                frame_index += 1;
                next_frame += Duration::from_millis(20);
            }
            () = tokio::time::sleep_until(wake) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
            _ = &mut ctrl_c => break,
            () = &mut stopped => break,
        }
    }

    // Leave: WHIP DELETE on the resource.
    let resource = if location.starts_with("http") { location.clone() } else { format!("{server}{location}") };
    if let Err(e) = http.delete(&resource).send().await {
        tracing::warn!(error = %e, "leaving (DELETE) failed");
    }
    summary.recorded_seconds = recording.samples.len() as f64 / f64::from(SAMPLE_RATE);
    if let Some(path) = &args.record {
        audio::write_wav(path, &recording.samples, SAMPLE_RATE)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(summary)
}
