//! Just enough STUN (RFC 8489) to route a binding request to its session: the USERNAME attribute.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const USERNAME: u16 = 0x0006;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &[u8]) -> Vec<u8> {
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
        assert_eq!(local_ufrag(&binding_request(b"srvfrag:cli")), Some("srvfrag"));
        assert_eq!(local_ufrag(&binding_request(b"abc")), Some("abc"));
        assert_eq!(local_ufrag(&binding_request(b":cli")), None);
        assert_eq!(local_ufrag(&binding_request(&[0xff, 0xfe])), None);
        // Not STUN: an RTP packet, a DTLS record, too short, a lying length.
        assert_eq!(local_ufrag(&[0x80; 40]), None);
        assert_eq!(local_ufrag(&[22; 40]), None);
        assert_eq!(local_ufrag(&binding_request(b"a")[..10]), None);
        let mut lying = binding_request(b"srvfrag:cli");
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
        }
    }
}
