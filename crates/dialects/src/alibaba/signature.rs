//! Alibaba Cloud OpenAPI request signatures, as a server checks them:
//!
//! - **V3** (`Authorization: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<a;b;…>,Signature=<hex>`):
//!   `hex(HMAC-SHA256(AccessKeySecret, "ACS3-HMAC-SHA256\n" + hex(SHA256(CanonicalRequest))))`, where
//!   `CanonicalRequest = METHOD\nURI\nCanonicalQuery\nCanonicalHeaders\nSignedHeaders\nx-acs-content-sha256`.
//! - **RPC v1** (`SignatureMethod=HMAC-SHA1`, `SignatureVersion=1.0`): `base64(HMAC-SHA1(AccessKeySecret + "&",
//!   METHOD + "&%2F&" + pct(CanonicalQuery)))` over every parameter but `Signature`.
//!
//! Both percent-encode as RFC 3986 (unreserved characters kept, everything else `%XX` upper case).

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The V3 algorithm name, first word of the `Authorization` header.
pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";
/// How far a request's time may be from ours, in seconds (Alibaba's 15 minutes).
pub const MAX_SKEW_SECS: u64 = 15 * 60;

/// RFC 3986 percent-encoding as Alibaba's signatures use it.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `k=v&k=v` with keys and values percent-encoded, sorted by encoded key (then value).
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (percent_encode(k), percent_encode(v))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The RPC v1 string to sign: every parameter except `Signature`.
pub fn rpc_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    let params: Vec<(String, String)> = params.iter().filter(|(k, _)| k != "Signature").cloned().collect();
    format!("{method}&{}&{}", percent_encode("/"), percent_encode(&canonical_query(&params)))
}

/// The RPC v1 signature (HMAC-SHA1, key `secret&`), base64.
pub fn rpc_signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(format!("{secret}&").as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The V3 canonical request. `headers` are the signed headers as (lower-case name, value), in the
/// order of `SignedHeaders`; `payload_hash` is the `x-acs-content-sha256` value.
pub fn v3_canonical_request(
    method: &str,
    path: &str,
    params: &[(String, String)],
    headers: &[(String, String)],
    payload_hash: &str,
) -> String {
    let uri = path.split('/').map(percent_encode).collect::<Vec<_>>().join("/");
    let uri = if uri.is_empty() { "/".to_owned() } else { uri };
    let mut sorted: Vec<&(String, String)> = headers.iter().collect();
    sorted.sort();
    let canonical_headers: String = sorted.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let signed_headers = sorted.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    format!("{method}\n{uri}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}", canonical_query(params))
}

/// The V3 signature of a canonical request, lower-case hex.
pub fn v3_signature(secret: &str, canonical_request: &str) -> String {
    let string_to_sign = format!("{V3_ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The parts of a V3 `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub struct V3Authorization {
    pub access_key_id: String,
    /// Lower-case header names.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Reads `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`; `None` when it is not of that form.
pub fn parse_v3_authorization(value: &str) -> Option<V3Authorization> {
    let rest = value.trim().strip_prefix(V3_ALGORITHM)?.trim_start();
    let (mut key, mut headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        match name.trim() {
            "Credential" => key = Some(value.trim().to_owned()),
            "SignedHeaders" => {
                headers = Some(value.split(';').map(|h| h.trim().to_ascii_lowercase()).collect::<Vec<_>>())
            }
            "Signature" => signature = Some(value.trim().to_owned()),
            _ => return None,
        }
    }
    Some(V3Authorization { access_key_id: key?, signed_headers: headers?, signature: signature? })
}

/// Unix seconds of an ISO 8601 UTC time `YYYY-MM-DDTHH:MM:SSZ` (fractional seconds allowed).
pub fn parse_iso8601(value: &str) -> Option<u64> {
    let value = value.strip_suffix('Z').or_else(|| value.strip_suffix('z'))?;
    let (date, time) = value.split_once(['T', 't'])?;
    let mut date = date.split('-');
    let year: i64 = date.next()?.parse().ok()?;
    let month: u32 = date.next()?.parse().ok()?;
    let day: u32 = date.next()?.parse().ok()?;
    if date.next().is_some() {
        return None;
    }
    let time = time.split('.').next()?;
    let mut time = time.split(':');
    let hour: u64 = time.next()?.parse().ok()?;
    let minute: u64 = time.next()?.parse().ok()?;
    let second: u64 = time.next()?.parse().ok()?;
    if time.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// ISO 8601 UTC of unix seconds, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// The worked example of Alibaba's "V3 request structure and signature" page.
    #[test]
    fn v3_matches_the_documented_example() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_hex(b""), empty);
        let headers = pairs(&[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-content-sha256", empty),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-version", "2014-05-26"),
        ]);
        let params =
            pairs(&[("ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"), ("RegionId", "cn-shanghai")]);
        let canonical = v3_canonical_request("POST", "/", &params, &headers, empty);
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            v3_signature("YourAccessKeySecret", &canonical),
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    /// The worked example of Alibaba's RPC signature page (DescribeRegions, testid/testsecret).
    #[test]
    fn rpc_matches_the_documented_example() {
        let params = pairs(&[
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
            ("Signature", "ignored"),
        ]);
        let string_to_sign = rpc_string_to_sign("GET", &params);
        assert!(string_to_sign.starts_with("GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions"));
        assert_eq!(rpc_signature("testsecret", &string_to_sign), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
    }

    #[test]
    fn percent_encoding_follows_rfc_3986() {
        assert_eq!(percent_encode("a b*c~d/é+"), "a%20b%2Ac~d%2F%C3%A9%2B");
    }

    #[test]
    fn authorization_headers_parse_or_are_refused() {
        let parsed =
            parse_v3_authorization("ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;x-acs-date,Signature=abc")
                .unwrap();
        assert_eq!(parsed.access_key_id, "AK");
        assert_eq!(parsed.signed_headers, ["host", "x-acs-date"]);
        assert_eq!(parsed.signature, "abc");
        assert!(parse_v3_authorization("ACS3-HMAC-SHA256 Credential=AK,Signature=abc").is_none());
        assert!(parse_v3_authorization("Basic abc").is_none());
    }

    #[test]
    fn iso8601_round_trips() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso8601("2023-10-26T10:22:32Z"), Some(1_698_315_752));
        assert_eq!(parse_iso8601("2024-02-29T23:59:59.123Z"), Some(1_709_251_199));
        assert_eq!(format_iso8601(1_709_251_199), "2024-02-29T23:59:59Z");
        for bad in ["2023-10-26 10:22:32", "2023-13-01T00:00:00Z", "yesterday", "2023-10-26T10:22Z"] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }
}
