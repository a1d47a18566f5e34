//! A fake Volcano Engine TTS WebSocket (`/api/v1/tts/ws_binary`), speaking its binary framing: a
//! 4-byte header (version 1, header size 1, message type and flags, serialization and
//! compression), big-endian sizes and sequence numbers, audio-only responses ending with a
//! negative sequence number, error messages with the API's codes. It reads what the reference
//! allows a client to send (JSON, uncompressed or gzip) and refuses other framing with an error
//! message, as the reference's error type says the server does.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{Fake, Handshake, listen, refuse};

pub const APPID: &str = "zego_test";
pub const TOKEN: &str = "volc-token";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Normal,
    /// The handshake is refused: 401, "requested grant not found".
    WrongToken,
    /// Error 3003: too many requests at once.
    Busy,
    /// Error 3050: no such voice.
    UnknownVoice,
    /// The first audio only after this long.
    SlowFirstAudio(Duration),
    /// Half the audio, then the connection drops.
    CutMidStream,
    /// A binary message whose header is not the protocol's.
    Garbage,
}

/// The request payloads the fake got.
pub type Requests = Arc<Mutex<Vec<Value>>>;

pub async fn start(mode: Mode, synthesize: super::elevenlabs::Synthesizer) -> (Fake, Requests) {
    let requests: Requests = Arc::default();
    let fake = {
        let requests = Arc::clone(&requests);
        listen(
            move |shake: &Handshake| {
                if shake.path != "/api/v1/tts/ws_binary" {
                    return Err(refuse(404, json!({"code": 3001, "message": "not found"}), None));
                }
                if mode == Mode::WrongToken || shake.header("authorization") != Some(&format!("Bearer; {TOKEN}")) {
                    let message = "authenticate request: load grant: requested grant not found";
                    return Err(refuse(401, json!({"code": 3001, "message": message}), None));
                }
                Ok(())
            },
            move |socket, _| serve(socket, mode, Arc::clone(&synthesize), Arc::clone(&requests)),
        )
        .await
    };
    (fake, requests)
}

/// An error message from the server: type 0b1111, JSON, uncompressed.
fn error(code: u32, message: &str) -> Message {
    let body = json!({"code": code, "message": message}).to_string();
    let mut out = vec![0x11, 0xf0, 0x10, 0x00];
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body.as_bytes());
    Message::binary(out)
}

/// An audio-only server response with a sequence number (negative on the last).
fn audio(sequence: i32, bytes: &[u8]) -> Message {
    let flags = if sequence < 0 { 0b0011 } else { 0b0001 };
    let mut out = vec![0x11, 0xb0 | flags, 0x00, 0x00];
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    Message::binary(out)
}

/// The JSON of a full client request, or why it is not one.
fn request(bytes: &[u8]) -> Result<Value, &'static str> {
    let [first, second, third, _, ..] = *bytes else { return Err("short message") };
    if first != 0x11 || second != 0x10 {
        return Err("not a full client request of protocol version 1 with a 4-byte header");
    }
    if third >> 4 != 1 {
        return Err("the payload must be JSON");
    }
    let size =
        bytes.get(4..8).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize).ok_or("no payload size")?;
    let payload = bytes.get(8..8 + size).ok_or("the payload is shorter than its size")?;
    let json = match third & 0x0f {
        0 => payload.to_vec(),
        1 => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(payload).read_to_end(&mut out).map_err(|_| "bad gzip")?;
            out
        }
        _ => return Err("unknown compression"),
    };
    serde_json::from_slice(&json).map_err(|_| "the payload is not JSON")
}

async fn serve(
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    mode: Mode,
    synthesize: super::elevenlabs::Synthesizer,
    requests: Requests,
) {
    let Some(Ok(Message::Binary(bytes))) = socket.next().await else { return };
    let body = match request(&bytes) {
        Ok(body) => body,
        Err(why) => {
            let _ = socket.send(error(3001, why)).await;
            return;
        }
    };
    requests.lock().unwrap().push(body.clone());
    if body["app"]["appid"] != APPID || body["app"]["token"] != TOKEN {
        let _ = socket.send(error(3001, "authenticate request: load grant: requested grant not found")).await;
        return;
    }
    if body["request"]["operation"] != "submit" || body["audio"]["encoding"] != "pcm" {
        let _ = socket.send(error(3001, "invalid request: operation")).await;
        return;
    }
    match mode {
        Mode::Busy => {
            let _ = socket.send(error(3003, "quota exceeded for types: concurrency")).await;
            return;
        }
        Mode::UnknownVoice => {
            let _ = socket.send(error(3050, "Fail to feed text, reason Init Engine Instance failed")).await;
            return;
        }
        Mode::Garbage => {
            let _ = socket.send(Message::binary(b"<html>502 Bad Gateway</html>".to_vec())).await;
            return;
        }
        Mode::SlowFirstAudio(delay) => tokio::time::sleep(delay).await,
        _ => {}
    }
    let rate = body["audio"]["rate"].as_u64().unwrap_or(24_000) as u32;
    let text = body["request"]["text"].as_str().unwrap_or_default();
    let bytes: Vec<u8> = synthesize(text, rate).iter().flat_map(|s| s.to_le_bytes()).collect();
    // Odd-sized pieces, as a network would cut them; an ACK first, as the server sends.
    let _ = socket.send(Message::binary(vec![0x11, 0xb0, 0x00, 0x00])).await;
    let chunks: Vec<&[u8]> = bytes.chunks(3_001).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        if mode == Mode::CutMidStream && i == (chunks.len() / 2).max(1) {
            return; // dropped: no close frame
        }
        let sequence = if i + 1 == chunks.len() { -(i as i32 + 1) } else { i as i32 + 1 };
        if socket.send(audio(sequence, chunk)).await.is_err() {
            return;
        }
    }
}
