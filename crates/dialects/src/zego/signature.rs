//! ZEGO's two signatures: the request signature (MD5) and the callback signature (SHA-1).

use md5::Md5;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// `hex(md5(AppId + SignatureNonce + ServerSecret + Timestamp))`, lowercase.
pub fn request_signature(app_id: &str, nonce: &str, server_secret: &str, timestamp: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(app_id.as_bytes());
    md5.update(nonce.as_bytes());
    md5.update(server_secret.as_bytes());
    md5.update(timestamp.as_bytes());
    hex::encode(md5.finalize())
}

/// Whether `given` (hex, any case) is the request signature, compared in constant time.
pub fn request_signature_matches(given: &str, app_id: &str, nonce: &str, server_secret: &str, timestamp: &str) -> bool {
    let expected = request_signature(app_id, nonce, server_secret, timestamp);
    let given = given.to_ascii_lowercase();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// `hex(sha1(concat(sort([callback_secret, timestamp, nonce]))))`, lowercase.
pub fn callback_signature(callback_secret: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [callback_secret, timestamp, nonce];
    parts.sort_unstable();
    let mut sha1 = Sha1::new();
    for part in parts {
        sha1.update(part.as_bytes());
    }
    hex::encode(sha1.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed independently with python3's hashlib.
    #[test]
    fn request_signature_matches_a_known_vector() {
        // md5("1234567890" + "a1b2c3d4e5f60718" + "secret" + "1700000000")
        assert_eq!(
            request_signature("1234567890", "a1b2c3d4e5f60718", "secret", "1700000000"),
            "07715734dc7b3aaf70acf39eeb95329c"
        );
        assert!(request_signature_matches(
            &"07715734dc7b3aaf70acf39eeb95329c".to_ascii_uppercase(),
            "1234567890",
            "a1b2c3d4e5f60718",
            "secret",
            "1700000000"
        ));
        assert!(!request_signature_matches("00", "1234567890", "a1b2c3d4e5f60718", "secret", "1700000000"));
    }

    #[test]
    fn callback_signature_matches_a_known_vector() {
        // sha1 over sorted ["cbsecret", "1741221508000", "abcdd22113"]
        assert_eq!(
            callback_signature("cbsecret", "1741221508000", "abcdd22113"),
            "36d68cc7c8b70e97251f945694a81ca1a972e186"
        );
    }
}
