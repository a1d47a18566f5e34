//! RTC tokens: what lets a participant into one app's channel, for a while.
//!
//! A token is seven dot-separated parts, all ASCII:
//!
//! ```text
//! v2.<b64url(app)>.<b64url(channel)>.<b64url(uid)>.<expiry, unix seconds>.<nonce, 16 hex>.<b64url(signature)>
//! ```
//!
//! The signature is HMAC-SHA256, with the server's secret, over `"colloquy-rtc-v2."` followed by
//! the token's text up to (not including) its last `.`: the encoded parts, so no two grants sign
//! the same bytes. Channels belong to apps: a token for app A's `room-1` does not open app B's
//! `room-1`. Version 1 tokens, which named no app, are refused.
//! Parsing never panics, whatever the input; every refusal says why.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

const VERSION: &str = "v2";
const DOMAIN: &str = "colloquy-rtc-v2.";
/// The longest token accepted, in bytes: anything longer is refused before it is parsed.
pub const MAX_TOKEN_LEN: usize = 640;
/// The longest a token may live.
pub const MAX_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// What a valid token grants: `uid` in `app`'s channel `channel`, until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The app whose channel it is; channels of different apps never meet.
    pub app: String,
    pub channel: String,
    pub uid: String,
    /// Unix seconds after which the grant is over.
    pub expires_at: u64,
}

/// Why a token was refused. The messages go back to the caller as they are.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the token's signature does not match: it was altered or signed by another server")]
    BadSignature,
    #[error("the token expired {0} s ago")]
    Expired(u64),
    #[error("the token is for channel {token:?}, not {requested:?}")]
    WrongChannel { token: String, requested: String },
}

/// Signs and checks tokens with the server's secret.
#[derive(Clone)]
pub struct TokenSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(<secret>)")
    }
}

impl TokenSigner {
    pub fn new(secret: &[u8]) -> TokenSigner {
        TokenSigner { secret: secret.to_vec() }
    }

    fn signature(&self, signed: &str) -> [u8; 32] {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(DOMAIN.as_bytes());
        mac.update(signed.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A token for `uid` in `app`'s `channel` until `expires_at` (unix seconds), with a fresh nonce.
    pub fn issue(&self, app: &str, channel: &str, uid: &str, expires_at: u64) -> String {
        let nonce = hex::encode(rand::random::<[u8; 8]>());
        self.issue_with_nonce(app, channel, uid, expires_at, &nonce)
    }

    fn issue_with_nonce(&self, app: &str, channel: &str, uid: &str, expires_at: u64, nonce: &str) -> String {
        let signed = format!(
            "{VERSION}.{}.{}.{}.{expires_at}.{nonce}",
            URL_SAFE_NO_PAD.encode(app),
            URL_SAFE_NO_PAD.encode(channel),
            URL_SAFE_NO_PAD.encode(uid),
        );
        let signature = URL_SAFE_NO_PAD.encode(self.signature(&signed));
        format!("{signed}.{signature}")
    }

    /// Checks `token` at `now` (unix seconds): its form, its signature, then its expiry.
    pub fn verify(&self, token: &str, now: u64) -> Result<Grant, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("longer than any token this server issues"));
        }
        let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed("no signature"))?;
        let mut parts = signed.split('.');
        let mut next = |what: &'static str| parts.next().filter(|p| !p.is_empty()).ok_or(TokenError::Malformed(what));
        match next("no version")? {
            VERSION => {}
            "v1" => return Err(TokenError::Malformed("version 1 tokens name no app and are no longer accepted")),
            _ => return Err(TokenError::Malformed("unknown version")),
        }
        let app = decode_text(next("no app")?, "the app is not base64url UTF-8")?;
        let channel = decode_text(next("no channel")?, "the channel is not base64url UTF-8")?;
        let uid = decode_text(next("no uid")?, "the uid is not base64url UTF-8")?;
        let expires_at: u64 =
            next("no expiry")?.parse().map_err(|_| TokenError::Malformed("the expiry is not a number"))?;
        let nonce = next("no nonce")?;
        if nonce.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Malformed("the nonce is not 16 hex digits"));
        }
        if parts.next().is_some() {
            return Err(TokenError::Malformed("too many parts"));
        }
        if signature.is_empty() {
            return Err(TokenError::Malformed("no signature"));
        }
        let signature =
            URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
        let expected = self.signature(signed);
        if !bool::from(expected.as_slice().ct_eq(&signature)) {
            return Err(TokenError::BadSignature);
        }
        if now >= expires_at {
            return Err(TokenError::Expired(now - expires_at));
        }
        Ok(Grant { app, channel, uid, expires_at })
    }

    /// Like [`TokenSigner::verify`], and the token must be for `channel`.
    pub fn verify_for(&self, token: &str, channel: &str, now: u64) -> Result<Grant, TokenError> {
        let grant = self.verify(token, now)?;
        if grant.channel != channel {
            return Err(TokenError::WrongChannel { token: grant.channel, requested: channel.to_owned() });
        }
        Ok(grant)
    }
}

fn decode_text(part: &str, error: &'static str) -> Result<String, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|text| !text.is_empty())
        .ok_or(TokenError::Malformed(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_token_grants_its_app_channel_and_uid_until_it_expires() {
        let signer = TokenSigner::new(b"server-secret");
        let token = signer.issue("app-a", "room-1", "alice", NOW + 60);
        let grant = signer.verify_for(&token, "room-1", NOW).unwrap();
        assert_eq!(
            grant,
            Grant { app: "app-a".into(), channel: "room-1".into(), uid: "alice".into(), expires_at: NOW + 60 }
        );
        assert_eq!(signer.verify(&token, NOW + 61), Err(TokenError::Expired(1)));
        assert_eq!(
            signer.verify_for(&token, "room-2", NOW),
            Err(TokenError::WrongChannel { token: "room-1".into(), requested: "room-2".into() })
        );
        assert_eq!(TokenSigner::new(b"other").verify(&token, NOW), Err(TokenError::BadSignature));
        // Two tokens for the same grant differ by their nonce.
        assert_ne!(token, signer.issue("app-a", "room-1", "alice", NOW + 60));
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_the_documented_string() {
        // Computed independently: printf 'colloquy-rtc-v2.v2.YXBw.cm9vbQ.Ym9i.1800000060.0011223344556677' |
        //   openssl dgst -sha256 -hmac key -binary | basenc --base64url
        let token = TokenSigner::new(b"key").issue_with_nonce("app", "room", "bob", 1_800_000_060, "0011223344556677");
        let (signed, signature) = token.rsplit_once('.').unwrap();
        assert_eq!(signed, "v2.YXBw.cm9vbQ.Ym9i.1800000060.0011223344556677");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"colloquy-rtc-v2.v2.YXBw.cm9vbQ.Ym9i.1800000060.0011223344556677");
        assert_eq!(signature, URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    }

    #[test]
    fn tampering_with_any_part_is_caught() {
        let signer = TokenSigner::new(b"server-secret");
        let token = signer.issue("app-a", "room-1", "alice", NOW + 60);
        let parts: Vec<&str> = token.split('.').collect();
        for (i, replacement) in [
            (1, URL_SAFE_NO_PAD.encode("app-b")),
            (2, URL_SAFE_NO_PAD.encode("room-2")),
            (3, URL_SAFE_NO_PAD.encode("mallory")),
            (4, (NOW + 9999).to_string()),
            (5, "ffffffffffffffff".into()),
        ] {
            let mut forged = parts.clone();
            forged[i] = &replacement;
            assert_eq!(signer.verify(&forged.join("."), NOW), Err(TokenError::BadSignature), "part {i}");
        }
        for malformed in [
            "",
            "v2",
            "v3.a.b.c.1.0011223344556677.d",
            "v2..cm9vbQ.Ym9i.1.0011223344556677.c",
            "v2.YXBw.cm9vbQ.Ym9i.soon.0011223344556677.c",
            "v2.YXBw.cm9vbQ.Ym9i.1.xyz.c",
            "v2.YXBw.cm9vbQ.Ym9i.1.0011223344556677.c.extra",
            "v2.YXBw.!!!.Ym9i.1.0011223344556677.c",
            "v2.YXBw.cm9vbQ.Ym9i.1.0011223344556677.",
        ] {
            assert!(matches!(signer.verify(malformed, NOW), Err(TokenError::Malformed(_))), "{malformed:?}");
        }
        assert!(matches!(signer.verify(&"x".repeat(700), NOW), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn version_1_tokens_are_refused_with_the_reason() {
        // A well-formed version 1 token (no app): it predates channels per app.
        let old = "v1.cm9vbQ.Ym9i.1800000060.0011223344556677.c2ln";
        let error = TokenSigner::new(b"key").verify(old, NOW).unwrap_err();
        assert!(error.to_string().contains("version 1"), "{error}");
    }
}
