//! A cloud speech vendor chosen by name, with the parameters its registry entry checked.
//!
//! The model does not know the vendors: `colloquy-providers`' registry (`vendors/`) does, and the
//! HTTP edge reaches it through a seam, so a `VendorChoice` that exists names a vendor the node
//! implements and carries parameters that vendor's typed parameter struct accepted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Secret;

/// A speech vendor from the registry (`deepgram`, `elevenlabs`, …) and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VendorChoice {
    /// The registry's name for the vendor.
    pub vendor: String,
    /// The parameters that are not secret, as the caller sent them, in the vendor's own names.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Keys and tokens, by parameter name (a dotted path for a nested one, `app.token`): kept in
    /// memory, shown and recorded as `<redacted>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Secret>,
}

/// Which half of speech a vendor does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeechKind {
    /// Recognition: audio in, transcripts out.
    Asr,
    /// Synthesis: text in, audio out.
    Tts,
}

impl SpeechKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SpeechKind::Asr => "asr",
            SpeechKind::Tts => "tts",
        }
    }
}

/// A vendor's parameters were refused: which one (inside `params`; empty for the object itself),
/// and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct VendorParamError {
    pub field: String,
    pub message: String,
}

/// The speech vendors a node implements: the providers' registry, behind a trait so that the HTTP
/// edge can check requests against it without depending on the providers.
pub trait SpeechVendors: Send + Sync + std::fmt::Debug {
    /// The vendors of `kind`, by the names requests use.
    fn names(&self, kind: SpeechKind) -> Vec<String>;
    /// Checks `params` for `vendor`: `None` when the node has no such vendor of `kind`.
    fn check(
        &self,
        kind: SpeechKind,
        vendor: &str,
        params: serde_json::Map<String, serde_json::Value>,
    ) -> Option<Result<VendorChoice, VendorParamError>>;
    /// The voice a TTS choice names, if it names one.
    fn voice(&self, choice: &VendorChoice) -> Option<String>;
    /// The parameter holding `vendor`'s API key (what an app's `vendor_keys` fill in).
    fn key_param(&self, kind: SpeechKind, vendor: &str) -> Option<&'static str>;
}

/// No vendors: only the embedded models and OpenAI-compatible servers (tests of the edge alone).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoVendors;

impl SpeechVendors for NoVendors {
    fn names(&self, _: SpeechKind) -> Vec<String> {
        Vec::new()
    }

    fn check(
        &self,
        _: SpeechKind,
        _: &str,
        _: serde_json::Map<String, serde_json::Value>,
    ) -> Option<Result<VendorChoice, VendorParamError>> {
        None
    }

    fn voice(&self, _: &VendorChoice) -> Option<String> {
        None
    }

    fn key_param(&self, _: SpeechKind, _: &str) -> Option<&'static str> {
        None
    }
}

impl VendorChoice {
    /// The parameters with the secrets put back: what the vendor's client is built from.
    pub fn exposed_params(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut params = self.params.clone();
        for (name, secret) in &self.secrets {
            insert_path(&mut params, name, serde_json::Value::String(secret.expose().to_owned()));
        }
        params
    }

    /// The parameters as answers show them: every secret `<redacted>`.
    pub fn redacted_params(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut params = self.params.clone();
        for name in self.secrets.keys() {
            insert_path(&mut params, name, serde_json::Value::String(Secret::REDACTED.to_owned()));
        }
        params
    }
}

/// Sets the value at a dotted `path` (`app.token`), making the objects on the way.
fn insert_path(params: &mut serde_json::Map<String, serde_json::Value>, path: &str, value: serde_json::Value) {
    match path.split_once('.') {
        None => {
            params.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = params.entry(head.to_owned()).or_insert_with(|| serde_json::Value::Object(Default::default()));
            if !entry.is_object() {
                *entry = serde_json::Value::Object(Default::default());
            }
            if let Some(inner) = entry.as_object_mut() {
                insert_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_records_and_answers() {
        let choice = VendorChoice {
            vendor: "deepgram".into(),
            params: serde_json::json!({"model": "nova-3"}).as_object().cloned().unwrap(),
            secrets: [("key".to_owned(), Secret::new("dg-secret"))].into(),
        };
        let record = serde_json::to_string(&choice).unwrap();
        assert!(!record.contains("dg-secret"), "{record}");
        assert_eq!(choice.redacted_params()["key"], Secret::REDACTED);
        assert_eq!(choice.exposed_params()["key"], "dg-secret");
        assert_eq!(choice.exposed_params()["model"], "nova-3");
    }
}
