//! Who is calling, for both APIs; each check runs under the brute-force brake, then the app's rate
//! limit applies.
//!
//! - The app server: `Authorization: Basic base64(key:secret)` with an app's key and secret,
//!   compared in constant time; refused with 403 `Forbidden`, as the AUI server does.
//! - The OpenAPI: the V3 signature (`Authorization: ACS3-HMAC-SHA256 …` over the signed headers and
//!   the body's hash) or the RPC v1 signature (`Signature` over the parameters, HMAC-SHA1), with
//!   the app's secret as the AccessKeySecret of `AccessKeyId` = the app's key; a time within
//!   [`signature::MAX_SKEW_SECS`] of the server's and a nonce used once. The algorithms are
//!   `signature.rs`'s.

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use subtle::ConstantTimeEq;

use super::errors::Failure;
use super::openapi::{Params, header, is_v3};
use super::{signature, unix_now};
use crate::RawRequest;
use colloquy_http::AppState;
use colloquy_http::apps::App;
use colloquy_http::brake::Peer;

/// The app server's caller: the app whose key and secret are in `Authorization: Basic`.
pub(crate) async fn app_server_caller<'a>(
    state: &'a AppState,
    peer: Peer,
    headers: &HeaderMap,
) -> Result<&'a App, Failure> {
    let named_key = colloquy_http::auth::presented_key(headers.get(header::AUTHORIZATION));
    let app = state.braked(peer, &format!("alibaba-app:{named_key}"), || basic(state, headers))?;
    state.rate_limit(app.rate_key()).await?;
    Ok(app)
}

/// The app whose key and secret are in `Authorization: Basic`, compared in constant time.
fn basic<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<&'a App, Failure> {
    let forbidden = |message: &str| Failure::new(StatusCode::FORBIDDEN, "Forbidden", message);
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| forbidden("missing Authorization header; use HTTP Basic with the app's key and secret"))?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or_else(|| forbidden("the Authorization header must be HTTP Basic"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| forbidden("the Basic credentials are not base64 of \"key:secret\""))?;
    let (key, secret) =
        decoded.split_once(':').ok_or_else(|| forbidden("the Basic credentials must be \"key:secret\""))?;
    let mut found = None;
    for app in state.apps().all() {
        let Some(app_key) = app.key.as_deref() else { continue };
        let matches =
            app_key.as_bytes().ct_eq(key.as_bytes()) & app.secret.expose().as_bytes().ct_eq(secret.as_bytes());
        if bool::from(matches) {
            found = Some(app);
        }
    }
    found.ok_or_else(|| forbidden("wrong app key or secret"))
}

/// The OpenAPI's caller: the app whose signature `request` carries (V3 or RPC), once its nonce is
/// taken. `query` is the request's query; `params` its parameters, the query's and a form body's.
pub(crate) async fn openapi_caller<'a>(
    state: &'a AppState,
    request: &RawRequest,
    query: &[(String, String)],
    params: &Params,
) -> Result<&'a App, Failure> {
    let v3 = is_v3(request);
    let named_key = match v3 {
        true => header(request, "authorization")
            .and_then(signature::parse_v3_authorization)
            .map(|auth| auth.access_key_id)
            .unwrap_or_default(),
        false => params.get("AccessKeyId").unwrap_or_default().to_owned(),
    };
    let (app, nonce) = state.braked(request.peer, &format!("alibaba:{named_key}"), || {
        if v3 { verify_v3(state, request, query) } else { verify_rpc(state, request, params) }
    })?;
    state.rate_limit(app.rate_key()).await?;
    take_nonce(state, app, &nonce).await?;
    Ok(app)
}

fn check_time(time: u64, now: u64, name: &str, value: &str) -> Result<(), Failure> {
    if time.abs_diff(now) > signature::MAX_SKEW_SECS {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Expired",
            format!(
                "Specified time stamp or date value is expired: {name} {value} is more than 15 minutes from the server's time."
            ),
        ));
    }
    Ok(())
}

fn unknown_key(key: &str) -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        "InvalidAccessKeyId.NotFound",
        format!("Specified access key is not found: {key:?}."),
    )
}

fn mismatch(detail: &str) -> Failure {
    Failure::new(
        StatusCode::BAD_REQUEST,
        "SignatureDoesNotMatch",
        format!("Specified signature is not matched with our calculation. {detail}"),
    )
}

/// Takes `nonce` for `app` once: kept (in the records, or the cluster's state) for twice the allowed clock skew (the longest
/// a signature with it can be accepted), across restarts and nodes.
async fn take_nonce(state: &AppState, app: &App, nonce: &str) -> Result<(), Failure> {
    let now = colloquy_supervisor::now();
    let keep_until = colloquy_model::UnixMillis(now.0 + 2 * signature::MAX_SKEW_SECS as i64 * 1000);
    let fresh = state.use_nonce(&format!("alibaba:{}", app.rate_key()), nonce, now, keep_until).await;
    match fresh {
        Ok(true) => Ok(()),
        Ok(false) => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        )),
        Err(e) => Err(Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("The request's nonce could not be recorded: {e}"),
        )),
    }
}

/// Checks a V3 signature; answers the app and the request's nonce.
fn verify_v3<'a>(
    state: &'a AppState,
    request: &RawRequest,
    query: &[(String, String)],
) -> Result<(&'a App, String), Failure> {
    let incomplete = |m: &str| Failure::new(StatusCode::BAD_REQUEST, "IncompleteSignature", m.to_owned());
    let auth = header(request, "authorization").unwrap_or_default();
    let auth = signature::parse_v3_authorization(auth).ok_or_else(|| {
        incomplete("The Authorization header must be ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…")
    })?;
    let app = state.apps().by_key(&auth.access_key_id).ok_or_else(|| unknown_key(&auth.access_key_id))?;
    for needed in ["x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce"] {
        if !auth.signed_headers.iter().any(|h| h == needed) {
            return Err(incomplete(&format!("SignedHeaders must include {needed}.")));
        }
    }
    let mut signed = Vec::new();
    for name in &auth.signed_headers {
        let value =
            header(request, name).ok_or_else(|| incomplete(&format!("The signed header {name} is missing.")))?;
        signed.push((name.clone(), value.to_owned()));
    }
    let date = header(request, "x-acs-date").unwrap_or_default();
    let time = signature::parse_iso8601(date).ok_or_else(|| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Format",
            format!("x-acs-date {date:?} is not yyyy-MM-ddTHH:mm:ssZ."),
        )
    })?;
    let now = unix_now();
    check_time(time, now, "x-acs-date", date)?;
    let payload_hash = header(request, "x-acs-content-sha256").unwrap_or_default();
    if !payload_hash.eq_ignore_ascii_case(&signature::sha256_hex(&request.body)) {
        return Err(mismatch("x-acs-content-sha256 is not the SHA-256 of the body."));
    }
    let canonical =
        signature::v3_canonical_request(request.method.as_str(), request.uri.path(), query, &signed, payload_hash);
    let expected = signature::v3_signature(app.secret.expose(), &canonical);
    if !bool::from(expected.as_bytes().ct_eq(auth.signature.to_ascii_lowercase().as_bytes())) {
        return Err(mismatch("Check the AccessKeySecret and the canonical request."));
    }
    Ok((app, header(request, "x-acs-signature-nonce").unwrap_or_default().to_owned()))
}

/// Checks an RPC v1 signature; answers the app and the request's nonce.
fn verify_rpc<'a>(state: &'a AppState, request: &RawRequest, params: &Params) -> Result<(&'a App, String), Failure> {
    let key = params.required("AccessKeyId")?;
    let given = params.required("Signature")?;
    let app = state.apps().by_key(key).ok_or_else(|| unknown_key(key))?;
    let method = params.get("SignatureMethod").unwrap_or("HMAC-SHA1");
    if method != "HMAC-SHA1" {
        return Err(Failure::invalid(format!("SignatureMethod is {method:?}; this server takes HMAC-SHA1")));
    }
    if let Some(version) = params.get("SignatureVersion").filter(|v| *v != "1.0") {
        return Err(Failure::invalid(format!("SignatureVersion is {version:?}; it must be 1.0")));
    }
    let timestamp = params.required("Timestamp")?;
    let time = signature::parse_iso8601(timestamp).ok_or_else(|| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Format",
            format!("Timestamp {timestamp:?} is not yyyy-MM-ddTHH:mm:ssZ."),
        )
    })?;
    let now = unix_now();
    check_time(time, now, "Timestamp", timestamp)?;
    let nonce = params.required("SignatureNonce")?;
    let string_to_sign = signature::rpc_string_to_sign(request.method.as_str(), &params.0);
    let expected = signature::rpc_signature(app.secret.expose(), &string_to_sign);
    if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        return Err(mismatch(&format!("Server string to sign is: {string_to_sign}")));
    }
    Ok((app, nonce.to_owned()))
}
