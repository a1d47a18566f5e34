//! The speech vendors seam: a request's `vendor` and `params` are checked at the edge against the
//! providers' registry ([`SpeechVendors`], which the binary installs: this crate does not depend on
//! the providers).
//! The native API and every dialect choose a vendor through [`VendorScope::choose`], so a vendor is
//! refused, checked and substituted one way whichever API named it.

pub use colloquy_model::{NoVendors, SpeechVendors};
use std::collections::BTreeMap;

use colloquy_model::{Secret, SpeechKind, VendorChoice, VendorParamError};
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorCode};
use crate::fields::{Checked, Warnings};

/// How one request may choose speech vendors: the node's vendors, and whether the request's app
/// lets the embedded models stand in for a vendor the node does not implement.
#[derive(Clone, Copy, Debug)]
pub struct VendorScope<'a> {
    pub vendors: &'a dyn SpeechVendors,
    /// `[[apps]] substitute_unsupported_vendors`.
    pub substitute_unsupported: bool,
    /// `[[apps]] vendor_keys`: the key a vendor gets when the request sends none.
    pub keys: Option<&'a BTreeMap<String, Secret>>,
}

/// What [`VendorScope::choose`] decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Chosen {
    /// The vendor runs, with its checked parameters.
    Vendor(VendorChoice),
    /// The node has no such vendor and the app allows substitution: the embedded model runs, and
    /// the agent's warnings say so.
    Substituted,
}

/// Puts `key` at the dotted `path` (`key`, `app.token`) unless something is there.
fn fill(params: &mut Map<String, Value>, path: &str, key: &Secret) {
    match path.split_once('.') {
        None => {
            params.entry(path.to_owned()).or_insert_with(|| Value::String(key.expose().to_owned()));
        }
        Some((head, rest)) => {
            if let Some(inner) =
                params.entry(head.to_owned()).or_insert_with(|| Value::Object(Map::new())).as_object_mut()
            {
                fill(inner, rest, key);
            }
        }
    }
}

/// Where a dialect keeps a group's vendor and its parameters, as the caller's API names them.
#[derive(Clone, Copy, Debug)]
pub struct VendorFields<'a> {
    /// `asr.vendor`, `TTS.Vendor`, `TtsConfig.VoiceId`.
    pub vendor: &'a str,
    /// `asr.params`, `TTS.Params`.
    pub params: &'a str,
}

impl VendorFields<'_> {
    /// The native and Agora layout: `{group}.vendor` and `{group}.params`, owned.
    pub fn lower(group: &str) -> (String, String) {
        (format!("{group}.vendor"), format!("{group}.params"))
    }
}

impl VendorScope<'_> {
    /// Checks `vendor` with `params`. `also` are the other names the caller's API takes for this
    /// group (`local`, `openai`), listed when a vendor is refused.
    pub fn choose(
        &self,
        at: VendorFields<'_>,
        kind: SpeechKind,
        vendor: &str,
        params: Map<String, Value>,
        also: &[&str],
        w: &mut Warnings,
    ) -> Checked<Chosen> {
        let mut params = params;
        if let (Some(keys), Some(param)) = (self.keys, self.vendors.key_param(kind, vendor))
            && let Some(key) = keys.get(vendor)
        {
            fill(&mut params, param, key);
        }
        match self.vendors.check(kind, vendor, params) {
            Some(Ok(choice)) => Ok(Chosen::Vendor(choice)),
            Some(Err(VendorParamError { field, message })) => {
                let field = if field.is_empty() { at.params.to_owned() } else { format!("{}.{field}", at.params) };
                let code = if message.starts_with("missing field") {
                    ErrorCode::MissingField
                } else {
                    ErrorCode::InvalidField
                };
                Err(ApiError::field(code, field.clone(), format!("{field}: {message}")))
            }
            None => self.unsupported(at.vendor, kind, vendor, also, w).map(|()| Chosen::Substituted),
        }
    }

    /// A vendor the node does not implement, named at `field`: refused, naming the vendors there
    /// are, unless the app allows substitution (then a warning, and the embedded model runs).
    pub fn unsupported(
        &self,
        field: &str,
        kind: SpeechKind,
        vendor: &str,
        also: &[&str],
        w: &mut Warnings,
    ) -> Checked<()> {
        if self.substitute_unsupported {
            let model = match kind {
                SpeechKind::Asr => "the embedded Whisper model recognises speech",
                SpeechKind::Tts => "the embedded Piper voice speaks",
            };
            w.ignored(field, format!("{vendor:?} is not supported here; {model} instead"));
            return Ok(());
        }
        let mut supported: Vec<String> = also.iter().map(|s| (*s).to_owned()).collect();
        supported.extend(self.vendors.names(kind));
        let supported = if supported.is_empty() { "none".to_owned() } else { supported.join(", ") };
        Err(ApiError::invalid(
            field,
            format!(
                "{field} {vendor:?} is not supported here; supported: {supported} (an app with \
                 substitute_unsupported_vendors = true runs the embedded model instead)"
            ),
        ))
    }

    /// The voice a TTS choice names.
    pub fn voice(&self, choice: &VendorChoice) -> Option<String> {
        self.vendors.voice(choice)
    }
}
