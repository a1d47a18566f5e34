//! The one signature colloquy puts on what it sends to a business server on its own initiative,
//! native webhooks and HTTP tool calls alike, so a receiver checks both the same way:
//!
//! ```text
//! X-Colloquy-Timestamp: <ms since the epoch>
//! X-Colloquy-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//! ```
//!
//! Pure computation: whoever sends reads the clock and passes the timestamp in.

use hmac::{KeyInit, Mac};

use crate::Secret;

pub const TIMESTAMP_HEADER: &str = "X-Colloquy-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Colloquy-Signature";

/// The value of [`SIGNATURE_HEADER`] for `body` sent at `timestamp`.
pub fn signature(secret: &Secret, timestamp: &str, body: &str) -> String {
    let signed = format!("{timestamp}.{body}");
    format!("sha256={}", hmac_sha256_hex(secret.expose().as_bytes(), signed.as_bytes()))
}

/// `hex(HMAC-SHA256(secret, message))`.
pub fn hmac_sha256_hex(secret: &[u8], message: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}
