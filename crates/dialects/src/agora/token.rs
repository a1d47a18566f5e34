//! Agora's AccessToken2 (`007…` tokens), checked for `Authorization: agora token=<token>`.
//!
//! A token is `"007" + base64(zlib(pack_string(signature) + signing_info))`, where `signing_info` is
//! `pack_string(app_id) + u32 issue_ts + u32 expire + u32 salt + u16 service_count + services…`
//! (little-endian; a string is a u16 length and its bytes). The signature is
//! `HMAC-SHA256(signing_key, signing_info)` with
//! `signing_key = HMAC-SHA256(key: u32 salt, HMAC-SHA256(key: u32 issue_ts, app_certificate))`.
//! The token is valid until `issue_ts + expire` (seconds).
//!
//! A service is `u16 type + privileges + its own fields`, privileges being `u16 count` and that
//! many `u16 privilege + u32 expire` (seconds after `issue_ts`; 0 means until the token expires).
//! RTC (type 1) is followed by `pack_string(channel) + pack_string(uid)` (an empty uid is uid 0:
//! any uid). The layouts of types 2–8 follow AgoraIO/Tools `AccessToken2.py`; reading stops at a
//! type whose layout is not published, and nothing after it is granted.
//!
//! A token authenticates a REST call only for what its RTC service grants ([`verify_for_rest`]):
//! the channel, the uid, and the join and publish-audio privileges an agent needs in it.

use std::io::Read;

use base64::Engine;
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The prefix of AccessToken2.
pub const VERSION: &str = "007";
/// Longer tokens are refused before decoding.
const MAX_TOKEN_LEN: usize = 4096;

const SERVICE_RTC: u16 = 1;
/// RTC privileges, as AgoraIO/Tools numbers them.
const PRIVILEGE_JOIN_CHANNEL: u16 = 1;
const PRIVILEGE_PUBLISH_AUDIO: u16 = 2;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a `007` token, or its content does not parse.
    Malformed(&'static str),
    /// It was issued for another app id.
    WrongApp,
    /// The signature does not match the app certificate.
    BadSignature,
    /// It expired at this unix second.
    Expired(u64),
    /// It holds no RTC service (the unknown service type where reading stopped, if any).
    NoRtcService { unread_type: Option<u16> },
    /// Its RTC service lacks a privilege the REST API needs, or it expired.
    MissingPrivilege(&'static str),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Malformed(why) => write!(f, "the token is not an AccessToken2: {why}"),
            TokenError::WrongApp => f.write_str("the token was issued for another app id"),
            TokenError::BadSignature => f.write_str("the token's signature does not match the app certificate"),
            TokenError::Expired(at) => write!(f, "the token expired at {at}"),
            TokenError::NoRtcService { unread_type: None } => f.write_str(
                "the token holds no RTC service: REST calls need an RTC token for the agent's channel and uid",
            ),
            TokenError::NoRtcService { unread_type: Some(kind) } => write!(
                f,
                "the token holds no RTC service before service type {kind}, whose layout is unknown: put the RTC \
                 service first"
            ),
            TokenError::MissingPrivilege(which) => write!(
                f,
                "the token's RTC service does not grant {which} now: REST calls need a publisher token for the \
                 agent's channel and uid"
            ),
        }
    }
}

/// What a valid token says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub issue_ts: u32,
    pub expire: u32,
    pub salt: u32,
    /// Its RTC service, when it has one.
    pub rtc: Option<RtcService>,
    /// The first service type whose layout is unknown, where reading stopped.
    pub unread_type: Option<u16>,
}

/// An RTC service: a channel, a uid in it, and privileges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcService {
    pub channel: String,
    /// Empty for uid 0, which Agora lets join as any uid.
    pub uid: String,
    /// `(privilege, expire)`: seconds after `issue_ts`, 0 for as long as the token.
    pub privileges: Vec<(u16, u32)>,
}

impl TokenInfo {
    fn expires_at(&self) -> u64 {
        u64::from(self.issue_ts) + u64::from(self.expire)
    }

    /// Whether the RTC service grants `privilege` at unix second `now`.
    fn grants(&self, rtc: &RtcService, privilege: u16, now: u64) -> bool {
        rtc.privileges.iter().any(|&(p, expire)| {
            let until = if expire == 0 { self.expires_at() } else { u64::from(self.issue_ts) + u64::from(expire) };
            p == privilege && now <= until.min(self.expires_at())
        })
    }
}

/// What a token lets a REST caller touch: agents in `channel`, with `uid` (any uid when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestGrant {
    pub channel: String,
    pub uid: Option<String>,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if self.0.len() < n {
            return Err(TokenError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, TokenError> {
        let bytes = self.take(2)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, TokenError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn string(&mut self) -> Result<&'a [u8], TokenError> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    fn text(&mut self) -> Result<String, TokenError> {
        String::from_utf8(self.string()?.to_vec()).map_err(|_| TokenError::Malformed("a service's text is not UTF-8"))
    }

    fn privileges(&mut self) -> Result<Vec<(u16, u32)>, TokenError> {
        let count = self.u16()?;
        (0..count).map(|_| Ok((self.u16()?, self.u32()?))).collect()
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Reads the services after the header; the RTC one is kept. Stops at an unknown type.
fn read_services(reader: &mut Reader<'_>, count: u16) -> Result<(Option<RtcService>, Option<u16>), TokenError> {
    let mut rtc = None;
    for _ in 0..count {
        let kind = reader.u16()?;
        match kind {
            SERVICE_RTC => {
                let privileges = reader.privileges()?;
                let channel = reader.text()?;
                let uid = reader.text()?;
                rtc.get_or_insert(RtcService { channel, uid, privileges });
            }
            // RTM and Chat: a user id. FPA: nothing more.
            2 | 5 => {
                reader.privileges()?;
                reader.string()?;
            }
            4 => {
                reader.privileges()?;
            }
            // Streaming and FCDN: a channel and an account.
            3 | 6 => {
                reader.privileges()?;
                reader.string()?;
                reader.string()?;
            }
            // APaaS: room, user, and an i16 role.
            7 => {
                reader.privileges()?;
                reader.string()?;
                reader.string()?;
                reader.take(2)?;
            }
            // RTM2: a user id, then resource permissions.
            8 => {
                reader.privileges()?;
                reader.string()?;
                for _ in 0..reader.u16()? {
                    reader.u16()?;
                    for _ in 0..reader.u16()? {
                        reader.u16()?;
                        for _ in 0..reader.u16()? {
                            reader.string()?;
                        }
                    }
                }
            }
            unknown => return Ok((rtc, Some(unknown))),
        }
    }
    Ok((rtc, None))
}

/// Checks `token` for `app_id` with `app_certificate` at unix second `now`.
pub fn verify(token: &str, app_id: &str, app_certificate: &str, now: u64) -> Result<TokenInfo, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let encoded = token.strip_prefix(VERSION).ok_or(TokenError::Malformed("it does not start with 007"))?;
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| TokenError::Malformed("not base64"))?;
    let mut content = Vec::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(MAX_TOKEN_LEN as u64 * 4)
        .read_to_end(&mut content)
        .map_err(|_| TokenError::Malformed("not zlib"))?;
    let mut reader = Reader(&content);
    let signature = reader.string()?;
    let signing_info = reader.0;
    let token_app_id = reader.string()?;
    let issue_ts = reader.u32()?;
    let expire = reader.u32()?;
    let salt = reader.u32()?;
    let services = reader.u16()?;
    if !bool::from(token_app_id.ct_eq(app_id.as_bytes())) {
        return Err(TokenError::WrongApp);
    }
    let signing_key = hmac(&salt.to_le_bytes(), &hmac(&issue_ts.to_le_bytes(), app_certificate.as_bytes()));
    let expected = hmac(&signing_key, signing_info);
    if !bool::from(expected.as_slice().ct_eq(signature)) {
        return Err(TokenError::BadSignature);
    }
    let expires_at = u64::from(issue_ts) + u64::from(expire);
    if now > expires_at {
        return Err(TokenError::Expired(expires_at));
    }
    // Only signed bytes are read from here on.
    let (rtc, unread_type) = read_services(&mut reader, services)?;
    Ok(TokenInfo { issue_ts, expire, salt, rtc, unread_type })
}

/// Checks `token` as REST credentials: valid for the app, with an RTC service that grants joining
/// its channel and publishing audio now (what an agent of that channel and uid needs; Agora's docs:
/// "the token parameters must match the agent request"). Answers what it lets the caller touch.
pub fn verify_for_rest(token: &str, app_id: &str, app_certificate: &str, now: u64) -> Result<RestGrant, TokenError> {
    let info = verify(token, app_id, app_certificate, now)?;
    let rtc = info.rtc.as_ref().ok_or(TokenError::NoRtcService { unread_type: info.unread_type })?;
    if !info.grants(rtc, PRIVILEGE_JOIN_CHANNEL, now) {
        return Err(TokenError::MissingPrivilege("joining the channel"));
    }
    if !info.grants(rtc, PRIVILEGE_PUBLISH_AUDIO, now) {
        return Err(TokenError::MissingPrivilege("publishing audio"));
    }
    if rtc.channel.is_empty() {
        return Err(TokenError::Malformed("the RTC service names no channel"));
    }
    Ok(RestGrant { channel: rtc.channel.clone(), uid: Some(rtc.uid.clone()).filter(|uid| !uid.is_empty()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made once by a python3 script following AgoraIO/Tools `AccessToken2.py` (`build()`, without
    /// its 32-hex-digit id check): app id "1234567890", certificate "app-secret-1", issue_ts
    /// 1700000000, expire 3600, salt 12345678, one RTC service for channel "room-1", uid "42",
    /// join privilege 3600.
    const JOIN_ONLY: &str = "007eJxTYJhlqfWP9fv8t5prMm/e298ed+dgWXTmj6SZ/F8/LmubfGAOF4OhkbGJqZm5haUBw8fgVAE+Bga/xD0MjFAI4rMxFOXn5+oaMjGYGAEAlEMbCw==";
    /// The same script: expire 3600, salt 12345678, an RTC service for "room-1" uid "42" with join
    /// 3600 and publish audio 600, then an RTM service for user "42" (login 3600).
    const PUBLISHER: &str = "007eJxTYAjfHLpk7q8rE1rXuslefs7TvmrflVc5pX4aTRs6XYtmpKVzMRgaGZuYmplbWBowfAxOFeBjYPBL3MPAxMAIxiA+E0MEEwMDG0NRfn6uriETg4kRSAYmZ2IEADNZGjE=";
    /// The same script: no service at all.
    const NO_SERVICE: &str =
        "007eJwBPADD/yAAbB9wHTpGRu4S1j9bPULOUuARH/wK8aJCkdB3Gt6XhEAKADEyMzQ1Njc4OTAA8VNl/w6smhwrpgIAAJvDFSY=";
    const T0: u64 = 1_700_000_000;

    #[test]
    fn verifies_a_token_made_by_the_public_algorithm() {
        let info = verify(JOIN_ONLY, "1234567890", "app-secret-1", T0 + 100).unwrap();
        assert_eq!((info.issue_ts, info.expire, info.salt), (1_700_000_000, 3600, 12_345_678));
        assert_eq!(
            info.rtc,
            Some(RtcService { channel: "room-1".into(), uid: "42".into(), privileges: vec![(1, 3600)] })
        );
        assert_eq!(verify(JOIN_ONLY, "1234567890", "app-secret-1", T0 + 3601), Err(TokenError::Expired(T0 + 3600)));
        assert_eq!(verify(JOIN_ONLY, "1234567890", "other", T0 + 100), Err(TokenError::BadSignature));
        assert_eq!(verify(JOIN_ONLY, "123456789", "app-secret-1", T0 + 100), Err(TokenError::WrongApp));
        assert!(matches!(verify("006abc", "1234567890", "app-secret-1", 0), Err(TokenError::Malformed(_))));
        assert!(matches!(verify("007!!!", "1234567890", "app-secret-1", 0), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn rest_calls_need_the_rtc_services_join_and_publish_audio_privileges() {
        let grant = verify_for_rest(PUBLISHER, "1234567890", "app-secret-1", T0 + 100).unwrap();
        assert_eq!(grant, RestGrant { channel: "room-1".into(), uid: Some("42".into()) });
        // Publishing audio was granted for 600 s only.
        assert_eq!(
            verify_for_rest(PUBLISHER, "1234567890", "app-secret-1", T0 + 601),
            Err(TokenError::MissingPrivilege("publishing audio"))
        );
        // What an end user's app holds to join a channel is no REST credential.
        assert_eq!(
            verify_for_rest(JOIN_ONLY, "1234567890", "app-secret-1", T0 + 100),
            Err(TokenError::MissingPrivilege("publishing audio"))
        );
        assert_eq!(
            verify_for_rest(NO_SERVICE, "1234567890", "app-secret-1", T0 + 100),
            Err(TokenError::NoRtcService { unread_type: None })
        );
    }

    #[test]
    fn a_changed_byte_breaks_the_signature() {
        let compressed = base64::engine::general_purpose::STANDARD.decode(&JOIN_ONLY[3..]).unwrap();
        let mut content = Vec::new();
        flate2::read::ZlibDecoder::new(compressed.as_slice()).read_to_end(&mut content).unwrap();
        // The last byte is in the RTC service's uid.
        *content.last_mut().unwrap() ^= 1;
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, &content).unwrap();
        let forged = format!("007{}", base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap()));
        assert_eq!(verify(&forged, "1234567890", "app-secret-1", T0 + 100), Err(TokenError::BadSignature));
    }
}
