//! Agora's AccessToken2 (`007…` tokens), checked for `Authorization: agora token=<token>`.
//!
//! A token is `"007" + base64(zlib(pack_string(signature) + signing_info))`, where `signing_info` is
//! `pack_string(app_id) + u32 issue_ts + u32 expire + u32 salt + u16 service_count + services…`
//! (little-endian; a string is a u16 length and its bytes). The signature is
//! `HMAC-SHA256(signing_key, signing_info)` with
//! `signing_key = HMAC-SHA256(key: u32 salt, HMAC-SHA256(key: u32 issue_ts, app_certificate))`.
//! The token is valid until `issue_ts + expire` (seconds). The services (RTC, RTM, ConvoAI…) are
//! covered by the signature but not read: any valid token of the app authenticates the REST call.

use std::io::Read;

use base64::Engine;
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The prefix of AccessToken2.
pub const VERSION: &str = "007";
/// Longer tokens are refused before decoding.
const MAX_TOKEN_LEN: usize = 4096;

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
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Malformed(why) => write!(f, "the token is not an AccessToken2: {why}"),
            TokenError::WrongApp => f.write_str("the token was issued for another app id"),
            TokenError::BadSignature => f.write_str("the token's signature does not match the app certificate"),
            TokenError::Expired(at) => write!(f, "the token expired at {at}"),
        }
    }
}

/// What a valid token says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub issue_ts: u32,
    pub expire: u32,
    pub salt: u32,
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
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
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
    let _services = reader.u16()?;
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
    Ok(TokenInfo { issue_ts, expire, salt })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made once by a python3 script following AgoraIO/Tools `AccessToken2.py` (`build()`, without
    /// its 32-hex-digit id check): app id "1234567890", certificate "app-secret-1", issue_ts
    /// 1700000000, expire 3600, salt 12345678, one RTC service for channel "room-1", uid "42",
    /// join privilege 3600.
    const PYTHON_TOKEN: &str = "007eJxTYJhlqfWP9fv8t5prMm/e298ed+dgWXTmj6SZ/F8/LmubfGAOF4OhkbGJqZm5haUBw8fgVAE+Bga/xD0MjFAI4rMxFOXn5+oaMjGYGAEAlEMbCw==";

    #[test]
    fn verifies_a_token_made_by_the_public_algorithm() {
        let token = PYTHON_TOKEN.trim();
        let info = verify(token, "1234567890", "app-secret-1", 1_700_000_100).unwrap();
        assert_eq!(info, TokenInfo { issue_ts: 1_700_000_000, expire: 3600, salt: 12_345_678 });
        assert_eq!(verify(token, "1234567890", "app-secret-1", 1_700_003_601), Err(TokenError::Expired(1_700_003_600)));
        assert_eq!(verify(token, "1234567890", "other", 1_700_000_100), Err(TokenError::BadSignature));
        assert_eq!(verify(token, "123456789", "app-secret-1", 1_700_000_100), Err(TokenError::WrongApp));
        assert!(matches!(verify("006abc", "1234567890", "app-secret-1", 0), Err(TokenError::Malformed(_))));
        assert!(matches!(verify("007!!!", "1234567890", "app-secret-1", 0), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn a_changed_byte_breaks_the_signature() {
        let token = PYTHON_TOKEN.trim();
        let compressed = base64::engine::general_purpose::STANDARD.decode(&token[3..]).unwrap();
        let mut content = Vec::new();
        flate2::read::ZlibDecoder::new(compressed.as_slice()).read_to_end(&mut content).unwrap();
        // The last byte is in the RTC service's uid.
        *content.last_mut().unwrap() ^= 1;
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, &content).unwrap();
        let forged = format!("007{}", base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap()));
        assert_eq!(verify(&forged, "1234567890", "app-secret-1", 1_700_000_100), Err(TokenError::BadSignature));
    }
}
