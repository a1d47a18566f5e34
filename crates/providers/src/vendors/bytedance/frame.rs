//! Volcano Engine's binary WebSocket framing (the TTS WebSocket reference, "二进制协议"): every
//! message starts with a 4-byte header, big-endian throughout:
//!
//! | byte | high 4 bits | low 4 bits |
//! |---|---|---|
//! | 0 | protocol version (1) | header size in 4-byte words (1) |
//! | 1 | message type | type-specific flags |
//! | 2 | serialization (0 raw, 1 JSON) | compression (0 none, 1 gzip) |
//! | 3 | reserved (0) | |
//!
//! A full client request (type 0b0001) follows with the payload's size (`u32`) and the payload; an
//! audio-only server response (0b1011) with, when its flags say so, a sequence number (`i32`,
//! negative on the last one) and the audio's size and bytes (flags 0: an ACK without audio); an
//! error message from the server (0b1111) with its code (`u32`), the message's size and the
//! message; a frontend server response (0b1100) with its size and payload.

use std::io::Read;

const VERSION: u8 = 0b0001;
const HEADER_WORDS: u8 = 0b0001;
const FULL_CLIENT_REQUEST: u8 = 0b0001;
const AUDIO_ONLY_RESPONSE: u8 = 0b1011;
const FRONTEND_RESPONSE: u8 = 0b1100;
const ERROR_MESSAGE: u8 = 0b1111;
const JSON: u8 = 0b0001;
const GZIP: u8 = 0b0001;

/// A full client request carrying `json`, uncompressed.
pub(super) fn full_client_request(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&[(VERSION << 4) | HEADER_WORDS, FULL_CLIENT_REQUEST << 4, JSON << 4, 0]);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json);
    out
}

/// One message from the server.
#[derive(Debug, PartialEq)]
pub(super) enum Frame {
    /// Audio; `last` on the message with the negative sequence number. An ACK has no audio.
    Audio { audio: Vec<u8>, last: bool },
    /// Front-end information (timestamps, the normalised text): not used.
    Frontend,
    /// An error message: the code (3001, 3003, …) and its text.
    Error { code: u32, message: String },
}

/// Reads a server message; an error names what is not the protocol's shape.
pub(super) fn parse(bytes: &[u8]) -> Result<Frame, String> {
    let [first, second, third, _reserved, ..] = *bytes else {
        return Err(format!("a {}-byte message is shorter than the header", bytes.len()));
    };
    if first >> 4 != VERSION {
        return Err(format!("protocol version {} is not 1", first >> 4));
    }
    let header = usize::from(first & 0x0f) * 4;
    if header < 4 || header > bytes.len() || first & 0x0f == 0x0f {
        return Err(format!("a header of {header} bytes in a message of {}", bytes.len()));
    }
    let (kind, flags, compression) = (second >> 4, second & 0x0f, third & 0x0f);
    let payload = &bytes[header..];
    match kind {
        AUDIO_ONLY_RESPONSE if flags == 0 => Ok(Frame::Audio { audio: Vec::new(), last: false }),
        AUDIO_ONLY_RESPONSE => {
            let sequence = i32::from_be_bytes(word(payload, 0)?);
            let audio = sized(payload, 4, compression)?;
            Ok(Frame::Audio { audio, last: sequence < 0 || flags & 0b0010 != 0 })
        }
        ERROR_MESSAGE => {
            let code = u32::from_be_bytes(word(payload, 0)?);
            let message = String::from_utf8_lossy(&sized(payload, 4, compression)?).into_owned();
            Ok(Frame::Error { code, message })
        }
        FRONTEND_RESPONSE => {
            sized(payload, 0, compression)?;
            Ok(Frame::Frontend)
        }
        other => Err(format!("message type {other:#06b} is not a TTS server message")),
    }
}

/// The four bytes at `at`.
fn word(payload: &[u8], at: usize) -> Result<[u8; 4], String> {
    payload
        .get(at..at + 4)
        .and_then(|w| w.try_into().ok())
        .ok_or_else(|| format!("the payload ends before byte {}", at + 4))
}

/// The size-prefixed bytes at `at`, inflated when gzip-compressed.
fn sized(payload: &[u8], at: usize, compression: u8) -> Result<Vec<u8>, String> {
    let size = u32::from_be_bytes(word(payload, at)?) as usize;
    let body = payload
        .get(at + 4..at + 4 + size)
        .ok_or_else(|| format!("a payload of {size} bytes with {} after its size", payload.len() - at - 4))?;
    match compression {
        0 => Ok(body.to_vec()),
        GZIP => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body).read_to_end(&mut out).map_err(|e| format!("bad gzip: {e}"))?;
            Ok(out)
        }
        other => Err(format!("compression {other} is not gzip")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(kind: u8, flags: u8, compression: u8, rest: &[u8]) -> Vec<u8> {
        let mut out = vec![0x11, kind << 4 | flags, compression, 0];
        out.extend_from_slice(rest);
        out
    }

    #[test]
    fn requests_carry_the_documented_header() {
        let request = full_client_request(b"{}");
        assert_eq!(request, [0x11, 0x10, 0x10, 0x00, 0, 0, 0, 2, b'{', b'}']);
    }

    #[test]
    fn server_messages_are_read() {
        assert_eq!(parse(&server(0b1011, 0, 0, &[])), Ok(Frame::Audio { audio: vec![], last: false }));
        let mut audio = 1i32.to_be_bytes().to_vec();
        audio.extend_from_slice(&[0, 0, 0, 3, 7, 8, 9]);
        assert_eq!(parse(&server(0b1011, 1, 0, &audio)), Ok(Frame::Audio { audio: vec![7, 8, 9], last: false }));
        let mut last = (-2i32).to_be_bytes().to_vec();
        last.extend_from_slice(&[0, 0, 0, 1, 5]);
        assert_eq!(parse(&server(0b1011, 3, 0, &last)), Ok(Frame::Audio { audio: vec![5], last: true }));
        let mut error = 3050u32.to_be_bytes().to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"voice not found").unwrap();
        let gz = gz.finish().unwrap();
        error.extend_from_slice(&(gz.len() as u32).to_be_bytes());
        error.extend_from_slice(&gz);
        assert_eq!(
            parse(&server(0b1111, 0, 0x11, &error)),
            Ok(Frame::Error { code: 3050, message: "voice not found".into() })
        );
    }

    #[test]
    fn what_is_not_the_protocol_is_refused() {
        assert!(parse(b"<ht").is_err());
        assert!(parse(b"<html>").unwrap_err().contains("version"));
        assert!(parse(&server(0b1011, 1, 0, &[0, 0, 0, 1, 0, 0, 0, 9, 1])).unwrap_err().contains("9 bytes"));
        assert!(parse(&server(0b1001, 0, 0, &[])).is_err());
    }
}
