//! Just enough STUN (RFC 8489) to route a binding request to its session: the USERNAME attribute,
//! and the MESSAGE-INTEGRITY check that must pass before a request may move a session's address.
//! [`binding_request`] builds ICE binding requests, signed or not, for tests and benchmarks that
//! play a peer (or someone pretending to be one).

use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const USERNAME: u16 = 0x0006;
const MESSAGE_INTEGRITY: u16 = 0x0008;
const PRIORITY: u16 = 0x0024;
const USE_CANDIDATE: u16 = 0x0025;
const ICE_CONTROLLING: u16 = 0x802A;

/// Whether `packet` looks like STUN (RFC 7983 demultiplexing: first byte 0..=3, and the cookie).
pub fn is_stun(packet: &[u8]) -> bool {
    packet.len() >= 20 && packet[0] < 4 && packet[4..8] == MAGIC_COOKIE
}

/// The receiver's ICE username fragment of a STUN request: the part of USERNAME before ':'.
/// `None` for anything that is not a well-formed STUN message with a USERNAME.
pub fn local_ufrag(packet: &[u8]) -> Option<&str> {
    if !is_stun(packet) {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let body = packet.get(20..20 + length)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|u| !u.is_empty());
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// Whether `packet` is a STUN message whose MESSAGE-INTEGRITY is right for the short-term
/// credential `password` (RFC 8489 §14.5: HMAC-SHA1 over the message up to the attribute, with the
/// header's length counting up to the attribute's end).
pub fn integrity_ok(packet: &[u8], password: &[u8]) -> bool {
    if !is_stun(packet) {
        return false;
    }
    let length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let Some(body) = packet.get(20..20 + length) else { return false };
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let Some(value) = body.get(at + 4..at + 4 + len) else { return false };
        if kind == MESSAGE_INTEGRITY {
            if len != 20 {
                return false;
            }
            let mut header = [0u8; 20];
            header.copy_from_slice(&packet[..20]);
            header[2..4].copy_from_slice(&((at + 4 + 20) as u16).to_be_bytes());
            let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(password).expect("HMAC takes any key length");
            mac.update(&header);
            mac.update(&body[..at]);
            return bool::from(mac.finalize().into_bytes().as_slice().ct_eq(value));
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    false
}

/// An ICE binding request from the controlling side: USERNAME (`receiver_ufrag:sender_ufrag`),
/// PRIORITY (above any host candidate's, so a nomination wins), ICE-CONTROLLING, USE-CANDIDATE
/// when `nominate`, and MESSAGE-INTEGRITY signed with `password` (the receiver's ICE password)
/// when there is one. No FINGERPRINT.
pub fn binding_request(username: &str, password: Option<&[u8]>, transaction: [u8; 12], nominate: bool) -> Vec<u8> {
    fn attribute(packet: &mut Vec<u8>, kind: u16, value: &[u8]) {
        packet.extend_from_slice(&kind.to_be_bytes());
        packet.extend_from_slice(&(value.len() as u16).to_be_bytes());
        packet.extend_from_slice(value);
        packet.resize(packet.len().div_ceil(4) * 4, 0);
    }
    let mut packet = vec![0x00, 0x01, 0, 0];
    packet.extend_from_slice(&MAGIC_COOKIE);
    packet.extend_from_slice(&transaction);
    attribute(&mut packet, USERNAME, username.as_bytes());
    attribute(&mut packet, PRIORITY, &0x7FFF_FFFFu32.to_be_bytes());
    attribute(&mut packet, ICE_CONTROLLING, &u64::from_be_bytes([transaction[0]; 8]).to_be_bytes());
    if nominate {
        attribute(&mut packet, USE_CANDIDATE, &[]);
    }
    let set_length = |packet: &mut Vec<u8>, length: usize| packet[2..4].copy_from_slice(&(length as u16).to_be_bytes());
    if let Some(password) = password {
        // The length counts up to the end of MESSAGE-INTEGRITY while it is computed.
        let length = packet.len() - 20 + 24;
        set_length(&mut packet, length);
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(password).expect("HMAC takes any key length");
        mac.update(&packet);
        let digest = mac.finalize().into_bytes();
        attribute(&mut packet, MESSAGE_INTEGRITY, &digest);
    }
    let length = packet.len() - 20;
    set_length(&mut packet, length);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.1, the sample request: username "evtj:h6vY", password "VOkJxbRl1RmTxUk/WvJxBt".
    const RFC5769_REQUEST: [u8; 108] = [
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87,
        0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c,
        0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f,
        0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76,
        0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
        0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
    ];

    #[test]
    fn message_integrity_follows_the_rfc_5769_sample() {
        assert!(integrity_ok(&RFC5769_REQUEST, b"VOkJxbRl1RmTxUk/WvJxBt"));
        assert_eq!(local_ufrag(&RFC5769_REQUEST), Some("evtj"));
        assert!(!integrity_ok(&RFC5769_REQUEST, b"VOkJxbRl1RmTxUk/WvJxBu"));
        let mut forged = RFC5769_REQUEST;
        forged[47] ^= 1; // the priority
        assert!(!integrity_ok(&forged, b"VOkJxbRl1RmTxUk/WvJxBt"));
        assert!(!integrity_ok(&unsigned_request(b"evtj:h6vY"), b"VOkJxbRl1RmTxUk/WvJxBt"), "no integrity at all");
    }

    #[test]
    fn built_requests_pass_the_check_only_with_their_password() {
        let signed = binding_request("srv:cli", Some(b"the-password"), [3; 12], true);
        assert!(is_stun(&signed));
        assert_eq!(local_ufrag(&signed), Some("srv"));
        assert!(integrity_ok(&signed, b"the-password"));
        assert!(!integrity_ok(&signed, b"another-password"));
        let unsigned = binding_request("srv:cli", None, [3; 12], false);
        assert_eq!(local_ufrag(&unsigned), Some("srv"));
        assert!(!integrity_ok(&unsigned, b"the-password"));
        assert!(str0m::net::DatagramRecv::try_from(signed.as_slice()).is_ok(), "str0m parses it as STUN");
    }

    fn unsigned_request(username: &[u8]) -> Vec<u8> {
        let padded = username.len().div_ceil(4) * 4;
        let mut packet = vec![0x00, 0x01];
        packet.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
        packet.extend_from_slice(&MAGIC_COOKIE);
        packet.extend_from_slice(&[7; 12]);
        packet.extend_from_slice(&USERNAME.to_be_bytes());
        packet.extend_from_slice(&(username.len() as u16).to_be_bytes());
        packet.extend_from_slice(username);
        packet.resize(20 + 4 + padded, 0);
        packet
    }

    #[test]
    fn the_local_ufrag_comes_from_username() {
        assert_eq!(local_ufrag(&unsigned_request(b"srvfrag:cli")), Some("srvfrag"));
        assert_eq!(local_ufrag(&unsigned_request(b"abc")), Some("abc"));
        assert_eq!(local_ufrag(&unsigned_request(b":cli")), None);
        assert_eq!(local_ufrag(&unsigned_request(&[0xff, 0xfe])), None);
        // Not STUN: an RTP packet, a DTLS record, too short, a lying length.
        assert_eq!(local_ufrag(&[0x80; 40]), None);
        assert_eq!(local_ufrag(&[22; 40]), None);
        assert_eq!(local_ufrag(&unsigned_request(b"a")[..10]), None);
        let mut lying = unsigned_request(b"srvfrag:cli");
        lying[3] = 200;
        assert_eq!(local_ufrag(&lying), None);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for len in 0..2000 {
            let packet: Vec<u8> = (0..len % 97)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let mut stunish = packet.clone();
            if stunish.len() >= 20 {
                stunish[0] = 0;
                stunish[4..8].copy_from_slice(&MAGIC_COOKIE);
            }
            let _ = local_ufrag(&packet);
            let _ = local_ufrag(&stunish);
            let _ = integrity_ok(&stunish, b"password");
        }
    }
}
