//! The Speech Service WebSocket protocol's message framing (Microsoft's "Speech Service WebSocket
//! protocol" reference, "Message types"): a text message is HTTP-like headers (`Name: value`, CRLF
//! after each), a blank line and a UTF-8 body; a binary message is the size of its US-ASCII header
//! block as a big-endian `u16`, the headers, then the body. Every message names its type in `Path`;
//! the client's carry `X-RequestId` (a UUID without dashes) and `X-Timestamp` (ISO 8601, UTC).

use std::time::SystemTime;

/// The longest header block a binary message may carry.
pub(super) const MAX_BINARY_HEADERS: usize = 8_192;

/// A text message: `headers`, a blank line, `body`.
pub(super) fn text(headers: &[(&str, &str)], body: &str) -> String {
    let mut out = header_block(headers);
    out.push_str("\r\n");
    out.push_str(body);
    out
}

/// A binary message: the header block's size (big-endian), the headers, then `body`.
pub(super) fn binary(headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let block = header_block(headers);
    debug_assert!(block.len() <= MAX_BINARY_HEADERS);
    let mut out = Vec::with_capacity(2 + block.len() + body.len());
    out.extend_from_slice(&(block.len() as u16).to_be_bytes());
    out.extend_from_slice(block.as_bytes());
    out.extend_from_slice(body);
    out
}

fn header_block(headers: &[(&str, &str)]) -> String {
    headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect()
}

/// A text message from the service, split into its `Path` and body.
#[derive(Debug, PartialEq)]
pub(super) struct Received<'a> {
    pub path: &'a str,
    pub request_id: Option<&'a str>,
    pub body: &'a str,
}

/// Splits a text message from the service; `None` when it is not the protocol's framing (no blank
/// line after the headers, a header without a colon, no `Path`).
pub(super) fn parse(message: &str) -> Option<Received<'_>> {
    let (head, body) = message.split_once("\r\n\r\n")?;
    let (mut path, mut request_id) = (None, None);
    for line in head.split("\r\n") {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("path") {
            path = Some(value);
        } else if name.eq_ignore_ascii_case("x-requestid") {
            request_id = Some(value);
        }
    }
    Some(Received { path: path.filter(|p| !p.is_empty())?, request_id, body })
}

/// A fresh UUID in the "no-dash" form the protocol asks for.
pub(super) fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// `time` as the protocol's `X-Timestamp`: `yyyy-MM-ddTHH:mm:ss.fffZ`, UTC.
pub(super) fn timestamp(time: SystemTime) -> String {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, of_day) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_iso_8601_utc_with_milliseconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_471_359_832_183);
        assert_eq!(timestamp(at), "2016-08-16T15:03:52.183Z");
        assert_eq!(timestamp(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn messages_are_framed_as_the_reference_shows() {
        let message = text(&[("Path", "speech.config"), ("Content-Type", "application/json")], "{}");
        assert_eq!(message, "Path: speech.config\r\nContent-Type: application/json\r\n\r\n{}");
        let audio = binary(&[("Path", "audio")], &[1, 2]);
        assert_eq!(&audio[..2], &13u16.to_be_bytes());
        assert_eq!(&audio[2..15], b"Path: audio\r\n");
        assert_eq!(&audio[15..], &[1, 2]);
        let id = new_id();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn service_messages_split_into_path_and_body() {
        let phrase = "Path: speech.phrase\r\nContent-Type: application/json; charset=utf-8\r\nX-RequestId: 123e4567e89b12d3a456426655440000\r\n\r\n{\"RecognitionStatus\":\"Success\"}";
        let received = parse(phrase).unwrap();
        assert_eq!(received.path, "speech.phrase");
        assert_eq!(received.request_id, Some("123e4567e89b12d3a456426655440000"));
        assert_eq!(received.body, "{\"RecognitionStatus\":\"Success\"}");
        assert_eq!(parse("Path: turn.end\r\nX-RequestId: 1\r\n\r\n").unwrap().body, "");
        assert_eq!(parse("{\"RecognitionStatus\":\"Success\"}"), None);
        assert_eq!(parse("Content-Type: x\r\n\r\n{}"), None);
    }
}
