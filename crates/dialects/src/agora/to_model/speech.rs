//! `properties.asr` and `properties.tts`: the recognizer and the voice.
//!
//! A vendor and its `params` go to the speech vendors' registry as they are (Agora's params are
//! the vendors' own names): a vendor the node implements runs with them, one it does not is refused
//! or, when the app allows it, replaced by the embedded model with a warning. `ares`, Agora's own
//! recognizer, exists only in Agora's cloud: it means the default, without a warning.

use colloquy_http::fields::{EndpointFields, Warnings, short_text};
use colloquy_http::vendors::{Chosen, VendorFields, VendorScope};
use colloquy_model as model;
use colloquy_model::{AgentSpec, SpeechKind};
use serde_json::Value;

use super::{Checked, f32_field, invalid};
use crate::agora::wire;

/// `properties.asr`: a vendor from the registry, or the embedded Whisper model the language picks.
pub(super) fn asr(spec: &mut AgentSpec, asr: wire::Asr, scope: VendorScope<'_>, w: &mut Warnings) -> Checked<()> {
    if let Some(language) = asr.language {
        let language = short_text("asr.language", language, 35)?;
        if !language.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid("asr.language", "asr.language must be a BCP-47 tag such as \"en-US\""));
        }
        let model = if model::LocalAsrModel::WhisperTinyEn.understands(&language) {
            model::LocalAsrModel::WhisperTinyEn
        } else {
            model::LocalAsrModel::WhisperBase
        };
        spec.asr.provider = model::AsrProvider::Local { model };
        spec.asr.language = language;
    }
    let Some(vendor) = asr.vendor.filter(|v| v != "ares") else { return Ok(()) };
    let params = asr.params.unwrap_or_default().into_iter().collect();
    let at = VendorFields { vendor: "asr.vendor", params: "asr.params" };
    match scope.choose(at, SpeechKind::Asr, &vendor, params, &["ares"], w)? {
        Chosen::Vendor(choice) => spec.asr.provider = model::AsrProvider::Vendor(choice),
        Chosen::Substituted => {}
    }
    Ok(())
}

/// `properties.tts`: `openai` maps to an OpenAI-compatible endpoint, `local` to an embedded voice,
/// any other vendor to the registry.
pub(super) fn tts(spec: &mut AgentSpec, tts: wire::Tts, scope: VendorScope<'_>, w: &mut Warnings) -> Checked<()> {
    let params = tts.params.unwrap_or_default();
    let string = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
    if tts.skip_patterns.as_ref().is_some_and(|p| !p.is_empty()) {
        w.ignored("tts.skip_patterns", "bracketed text is spoken");
    }
    match tts.vendor.as_deref() {
        Some("openai") => {
            if string("api_key").is_none() && scope.substitute_unsupported {
                w.ignored("tts.vendor", "Agora-managed OpenAI needs an api_key here; the embedded Piper voice speaks");
                return Ok(());
            }
            let fields = EndpointFields {
                url: Some(string("base_url").unwrap_or_else(|| colloquy_http::fields::OPENAI_URL.to_owned())),
                api_key: Some(string("api_key").ok_or_else(|| {
                    colloquy_http::error::ApiError::field(
                        colloquy_http::error::ErrorCode::MissingField,
                        "tts.params.api_key",
                        "tts.params.api_key is required: there is no Agora-managed OpenAI account here",
                    )
                })?),
                headers: None,
                timeout_ms: None,
                max_retries: None,
            };
            let model = string("model").unwrap_or_else(|| colloquy_http::fields::OPENAI_TTS_MODEL.to_owned());
            let endpoint = fields.into_endpoint("tts.params", model)?;
            let voice = string("voice").unwrap_or_else(|| model::Tts::DEFAULT_REMOTE_VOICE.to_owned());
            spec.tts.provider = model::TtsProvider::OpenAiCompatible(endpoint);
            spec.tts.voice = short_text("tts.params.voice", voice, 128)?;
            if let Some(speed) = params.get("speed").and_then(Value::as_f64) {
                spec.tts.speed = f32_field("tts.params.speed", speed, model::Tts::SPEED_RANGE)?;
            }
        }
        Some("local") => {
            if let Some(voice) = string("voice") {
                spec.tts.voice = colloquy_http::fields::local_voice("tts.params.voice", voice)?;
            }
        }
        Some(vendor) => {
            let params = params.clone().into_iter().collect();
            let at = VendorFields { vendor: "tts.vendor", params: "tts.params" };
            match scope.choose(at, SpeechKind::Tts, vendor, params, &["openai", "local"], w)? {
                Chosen::Vendor(choice) => {
                    spec.tts.voice = scope.voice(&choice).unwrap_or_default();
                    spec.tts.provider = model::TtsProvider::Vendor(choice);
                }
                Chosen::Substituted => {}
            }
        }
        None => {}
    }
    Ok(())
}
