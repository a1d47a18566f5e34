//! The cloud speech vendors, by name: one module per vendor, one line per vendor in the registry.
//!
//! Each vendor module holds its parameter struct (the vendor's own names, unknown keys refused,
//! secrets marked) and its client, which implements [`AsrProvider`] or [`TtsProvider`] over the
//! vendor's streaming protocol. Everything else reaches vendors through this registry: the HTTP edge
//! checks a request's `vendor` and `params` with [`check`] (through the binary, since the edge does
//! not depend on this crate), the agent runtime builds clients with [`asr`] and [`tts`], and
//! `colloquy asr|tts --vendor` does both.
//!
//! Adding a vendor: write `vendors/<name>.rs` (or a folder, for a vendor of both kinds or a protocol
//! shared by several) with its params (implementing [`VendorParams`]) and
//! its client, and add its entry to [`ASR_VENDORS`] or [`TTS_VENDORS`].

pub mod assemblyai;
pub mod bytedance;
pub mod cartesia;
pub mod dashscope;
pub mod deepgram;
pub mod elevenlabs;
pub mod microsoft;
pub mod minimax;
pub mod tencent;
mod ws;

use std::sync::Arc;

use colloquy_model::{RemoteEndpoint, Secret, SpeechKind, SpeechVendors, VendorChoice, VendorParamError};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::asr::AsrProvider;
use crate::tts::TtsProvider;

/// A vendor's parameter struct: deserialized from the `params` object with unknown keys refused.
pub trait VendorParams: DeserializeOwned {
    /// The parameters that are secrets: kept out of records, logs and answers.
    const SECRETS: &'static [&'static str];

    /// Checks what serde cannot (ranges, URL schemes), naming the parameter.
    fn validate(&self) -> Result<(), VendorParamError> {
        Ok(())
    }
}

/// One speech recognition vendor.
#[derive(Debug)]
pub struct AsrVendor {
    /// The name requests use.
    pub name: &'static str,
    /// What it is, for listings and errors.
    pub about: &'static str,
    /// The parameter holding the endpoint URL (what `--url` overrides).
    pub url_param: &'static str,
    check: fn(&Map<String, Value>) -> Result<(), VendorParamError>,
    secrets: &'static [&'static str],
    build: fn(&VendorChoice) -> Result<Arc<dyn AsrProvider>, String>,
}

/// One speech synthesis vendor.
#[derive(Debug)]
pub struct TtsVendor {
    pub name: &'static str,
    pub about: &'static str,
    pub url_param: &'static str,
    /// The parameter naming the voice: it becomes the agent's `tts.voice`, which updates change.
    pub voice_param: &'static str,
    check: fn(&Map<String, Value>) -> Result<(), VendorParamError>,
    secrets: &'static [&'static str],
    build: fn(&VendorChoice) -> Result<Arc<dyn TtsProvider>, String>,
}

/// The speech recognition vendors.
pub static ASR_VENDORS: &[AsrVendor] =
    &[deepgram::ASR, assemblyai::ASR, microsoft::ASR, dashscope::paraformer::ASR, tencent::ASR];

/// The speech synthesis vendors.
pub static TTS_VENDORS: &[TtsVendor] = &[
    elevenlabs::TTS,
    microsoft::TTS,
    cartesia::TTS,
    minimax::TTS,
    bytedance::TTS,
    dashscope::cosyvoice::TTS,
    deepgram::TTS,
];

/// The registry as the HTTP edge sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Registry;

impl SpeechVendors for Registry {
    fn names(&self, kind: SpeechKind) -> Vec<String> {
        names(kind).into_iter().map(str::to_owned).collect()
    }

    fn check(
        &self,
        kind: SpeechKind,
        vendor: &str,
        params: Map<String, Value>,
    ) -> Option<Result<VendorChoice, VendorParamError>> {
        check(kind, vendor, params)
    }

    fn voice(&self, choice: &VendorChoice) -> Option<String> {
        voice(choice)
    }

    fn key_param(&self, kind: SpeechKind, vendor: &str) -> Option<&'static str> {
        let secrets = match kind {
            SpeechKind::Asr => ASR_VENDORS.iter().find(|v| v.name == vendor).map(|v| v.secrets),
            SpeechKind::Tts => TTS_VENDORS.iter().find(|v| v.name == vendor).map(|v| v.secrets),
        };
        secrets?.first().copied()
    }
}

/// The parameter holding `vendor`'s endpoint URL.
pub fn url_param(kind: SpeechKind, vendor: &str) -> Option<&'static str> {
    match kind {
        SpeechKind::Asr => ASR_VENDORS.iter().find(|v| v.name == vendor).map(|v| v.url_param),
        SpeechKind::Tts => TTS_VENDORS.iter().find(|v| v.name == vendor).map(|v| v.url_param),
    }
}

/// The names of the vendors of `kind`.
pub fn names(kind: SpeechKind) -> Vec<&'static str> {
    match kind {
        SpeechKind::Asr => ASR_VENDORS.iter().map(|v| v.name).collect(),
        SpeechKind::Tts => TTS_VENDORS.iter().map(|v| v.name).collect(),
    }
}

/// Checks `params` for `vendor`: `None` when there is no such vendor of `kind`.
pub fn check(
    kind: SpeechKind,
    vendor: &str,
    params: Map<String, Value>,
) -> Option<Result<VendorChoice, VendorParamError>> {
    let (name, check, secrets) = match kind {
        SpeechKind::Asr => ASR_VENDORS.iter().find(|v| v.name == vendor).map(|v| (v.name, v.check, v.secrets))?,
        SpeechKind::Tts => TTS_VENDORS.iter().find(|v| v.name == vendor).map(|v| (v.name, v.check, v.secrets))?,
    };
    Some(check(&params).and_then(|()| split_secrets(name, params, secrets)))
}

/// The voice a TTS choice names (its vendor's voice parameter), if it names one.
pub fn voice(choice: &VendorChoice) -> Option<String> {
    let vendor = TTS_VENDORS.iter().find(|v| v.name == choice.vendor)?;
    get_path(&choice.params, vendor.voice_param).and_then(Value::as_str).map(str::to_owned)
}

/// The client for an ASR choice.
pub fn asr(choice: &VendorChoice) -> Result<Arc<dyn AsrProvider>, String> {
    let vendor = ASR_VENDORS
        .iter()
        .find(|v| v.name == choice.vendor)
        .ok_or_else(|| format!("no ASR vendor {:?} on this node", choice.vendor))?;
    (vendor.build)(choice)
}

/// The client for a TTS choice.
pub fn tts(choice: &VendorChoice) -> Result<Arc<dyn TtsProvider>, String> {
    let vendor = TTS_VENDORS
        .iter()
        .find(|v| v.name == choice.vendor)
        .ok_or_else(|| format!("no TTS vendor {:?} on this node", choice.vendor))?;
    (vendor.build)(choice)
}

/// Where a recognition sends its partial transcripts.
type Partials = tokio::sync::mpsc::Sender<Result<crate::asr::AsrEvent, crate::ProviderError>>;

/// Where a synthesis sends its audio.
type Chunks = tokio::sync::mpsc::Sender<Result<crate::tts::TtsChunk, crate::ProviderError>>;

/// Runs one utterance's recognition as a task of its own: `run` sends partials and answers the
/// whole transcript, which ends the stream as its `Final`. Dropping the stream cancels the task.
fn spawn_recognition<F>(
    turn: crate::TurnId,
    run: impl FnOnce(Partials) -> F + Send + 'static,
) -> crate::ProviderStream<crate::asr::AsrEvent>
where
    F: std::future::Future<Output = Result<String, crate::ProviderError>> + Send,
{
    let (events, out) = tokio::sync::mpsc::channel(32);
    tokio::spawn(async move {
        let result = tokio::select! {
            result = run(events.clone()) => result,
            () = events.closed() => return,
        };
        let _ = events.send(result.map(|text| crate::asr::AsrEvent::Final { turn, text })).await;
    });
    channel_stream(out)
}

/// Runs one clause's synthesis as a task of its own: `run` sends the audio; its error, if any,
/// ends the stream. Dropping the stream cancels the task.
fn spawn_synthesis<F>(run: impl FnOnce(Chunks) -> F + Send + 'static) -> crate::ProviderStream<crate::tts::TtsChunk>
where
    F: std::future::Future<Output = Result<(), crate::ProviderError>> + Send,
{
    let (chunks, out) = tokio::sync::mpsc::channel(32);
    tokio::spawn(async move {
        tokio::select! {
            result = run(chunks.clone()) => {
                if let Err(error) = result {
                    let _ = chunks.send(Err(error)).await;
                }
            }
            () = chunks.closed() => {}
        }
    });
    channel_stream(out)
}

/// The stream a vendor's task feeds; dropping it closes the channel, which the task watches.
fn channel_stream<T: Send + 'static>(
    out: tokio::sync::mpsc::Receiver<Result<T, crate::ProviderError>>,
) -> crate::ProviderStream<T> {
    Box::pin(futures_util::stream::unfold(out, |mut out| async move { out.recv().await.map(|e| (e, out)) }))
}

/// The registry entry's check: the params parse into `P` and pass its validation.
fn check_params<P: VendorParams>(params: &Map<String, Value>) -> Result<(), VendorParamError> {
    parse::<P>(params)?.validate()
}

/// `params` as `P`, or the error naming the parameter.
fn parse<P: VendorParams>(params: &Map<String, Value>) -> Result<P, VendorParamError> {
    let value = Value::Object(params.clone());
    serde_path_to_error::deserialize::<_, P>(value).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        // An unknown or missing key is reported on its parent; name the key itself.
        let named = message
            .strip_prefix("unknown field `")
            .or_else(|| message.strip_prefix("missing field `"))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        // serde_path_to_error ends the path with an unknown key, and stops at the parent of a
        // missing one.
        let field = match (path.as_str(), named) {
            (".", Some(key)) => key,
            (path, Some(key)) if path == key || path.ends_with(&format!(".{key}")) => path.to_owned(),
            (path, Some(key)) => format!("{path}.{key}"),
            (".", None) => String::new(),
            (path, None) => path.to_owned(),
        };
        VendorParamError { field, message }
    })
}

/// The client's params from a checked choice (secrets put back).
fn params_of<P: VendorParams>(choice: &VendorChoice) -> Result<P, String> {
    parse::<P>(&choice.exposed_params()).map_err(|e| format!("{} params: {}: {}", choice.vendor, e.field, e.message))
}

fn split_secrets(
    vendor: &str,
    mut params: Map<String, Value>,
    secrets: &[&str],
) -> Result<VendorChoice, VendorParamError> {
    let mut kept = std::collections::BTreeMap::new();
    for name in secrets {
        match remove_path(&mut params, name) {
            None => {}
            Some(Value::String(value)) => {
                kept.insert((*name).to_owned(), Secret::new(value));
            }
            Some(_) => {
                return Err(VendorParamError {
                    field: (*name).to_owned(),
                    message: format!("{name} must be a string"),
                });
            }
        }
    }
    Ok(VendorChoice { vendor: vendor.to_owned(), params, secrets: kept })
}

/// Samples in [-1, 1] as 16-bit little-endian PCM: what every recognition vendor takes.
pub(crate) fn le_pcm16(samples: &[f32]) -> Vec<u8> {
    samples.iter().flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes()).collect()
}

/// One clause's audio as it arrives: little-endian 16-bit bytes into samples (an odd byte carried
/// over to the next message), sent on as chunks of the clause's turn.
struct ClauseAudio {
    chunks: Chunks,
    turn: crate::TurnId,
    rate: u32,
    received: usize,
    pending: Option<u8>,
}

impl ClauseAudio {
    fn new(chunks: &Chunks, turn: crate::TurnId, rate: u32) -> ClauseAudio {
        ClauseAudio { chunks: chunks.clone(), turn, rate, received: 0, pending: None }
    }

    /// Sends `bytes` on; `false` when nobody listens any more (the turn was cancelled).
    async fn push(&mut self, bytes: &[u8]) -> bool {
        self.received += bytes.len();
        let mut all = Vec::with_capacity(bytes.len() + 1);
        all.extend(self.pending.take());
        all.extend_from_slice(bytes);
        if all.len() % 2 == 1 {
            self.pending = all.pop();
        }
        let pcm: Vec<i16> = all.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        if pcm.is_empty() {
            return true;
        }
        let chunk = crate::tts::TtsChunk { turn: self.turn, sample_rate: self.rate, pcm };
        self.chunks.send(Ok(chunk)).await.is_ok()
    }

    /// Whether any audio came.
    fn started(&self) -> bool {
        self.received > 0
    }

    /// The vendor stayed silent for `timeout`: a timeout before any audio, a cut stream after.
    fn silent_for(&self, timeout: std::time::Duration) -> crate::ProviderError {
        if self.started() {
            crate::ProviderError::CutStream(format!("no audio for {timeout:?}"))
        } else {
            crate::ProviderError::Timeout(timeout)
        }
    }
}

/// Percent-encodes a query value or a path segment.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Takes the value at a dotted `path` (`app.token`) out of `params`.
fn remove_path(params: &mut Map<String, Value>, path: &str) -> Option<Value> {
    match path.split_once('.') {
        None => params.remove(path),
        Some((head, rest)) => remove_path(params.get_mut(head)?.as_object_mut()?, rest),
    }
}

/// The value at a dotted `path` in `params`.
fn get_path<'a>(params: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    match path.split_once('.') {
        None => params.get(path),
        Some((head, rest)) => get_path(params.get(head)?.as_object()?, rest),
    }
}

/// A URL parameter must be `ws://` or `wss://`.
fn websocket_url(field: &str, url: &str) -> Result<(), VendorParamError> {
    if url.starts_with("wss://") || url.starts_with("ws://") {
        Ok(())
    } else {
        Err(VendorParamError { field: field.to_owned(), message: format!("{field} must be a ws:// or wss:// URL") })
    }
}

/// The limits every vendor takes: `timeout_ms` (the handshake, and the longest silence after it)
/// and `max_retries` (before the first byte), each in its range.
fn check_limits(timeout_ms: Option<u32>, max_retries: Option<u32>) -> Result<(), VendorParamError> {
    in_range("timeout_ms", timeout_ms, RemoteEndpoint::TIMEOUT_RANGE_MS)?;
    in_range("max_retries", max_retries, 0..=RemoteEndpoint::MAX_RETRIES)
}

/// `timeout_ms`, or the default.
fn timeout(timeout_ms: Option<u32>) -> std::time::Duration {
    std::time::Duration::from_millis(u64::from(timeout_ms.unwrap_or(RemoteEndpoint::DEFAULT_TIMEOUT_MS)))
}

/// `max_retries`, or the default.
fn retries(max_retries: Option<u32>) -> u32 {
    max_retries.unwrap_or(RemoteEndpoint::DEFAULT_MAX_RETRIES)
}

/// A number parameter must be in `range`.
fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    value: Option<T>,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), VendorParamError> {
    match value {
        Some(v) if !range.contains(&v) => Err(VendorParamError {
            field: field.to_owned(),
            message: format!("{field} must be between {} and {}, not {v}", range.start(), range.end()),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn unknown_and_missing_keys_are_named() {
        let error = check(SpeechKind::Asr, "deepgram", object(serde_json::json!({"key": "k", "modle": "x"})))
            .unwrap()
            .unwrap_err();
        assert_eq!(error.field, "modle");
        let error = check(SpeechKind::Asr, "deepgram", object(serde_json::json!({}))).unwrap().unwrap_err();
        assert_eq!(error.field, "key");
        let error = check(SpeechKind::Tts, "elevenlabs", object(serde_json::json!({"key": "k", "voice_id": 7})))
            .unwrap()
            .unwrap_err();
        assert_eq!(error.field, "voice_id");
        assert!(check(SpeechKind::Asr, "elevenlabs", Map::new()).is_none());
    }

    #[test]
    fn secrets_leave_the_params() {
        let choice = check(SpeechKind::Tts, "elevenlabs", object(serde_json::json!({"key": "xi", "voice_id": "v1"})))
            .unwrap()
            .unwrap();
        assert!(!choice.params.contains_key("key"));
        assert_eq!(choice.secrets["key"].expose(), "xi");
        assert_eq!(voice(&choice).as_deref(), Some("v1"));
        assert!(tts(&choice).is_ok());
    }
}
