//! `properties.asr` and `properties.tts`: the recognizer and the voice.

use colloquy_http::fields::{EndpointFields, Warnings, short_text};
use colloquy_model as model;
use colloquy_model::AgentSpec;
use serde_json::Value;

use super::{Checked, f32_field, invalid};
use crate::agora::wire;

/// `properties.asr`: the language picks the embedded Whisper model.
pub(super) fn asr(spec: &mut AgentSpec, asr: wire::Asr, w: &mut Warnings) -> Checked<()> {
    if let Some(vendor) = asr.vendor.as_deref()
        && vendor != "ares"
    {
        w.ignored("asr.vendor", "speech is recognised by the embedded Whisper model");
    }
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
        spec.asr = model::Asr { provider: model::AsrProvider::Local { model }, language };
    }
    Ok(())
}

/// `properties.tts`: `openai` maps to an OpenAI-compatible endpoint, every other vendor to the
/// embedded voice.
pub(super) fn tts(spec: &mut AgentSpec, tts: wire::Tts, w: &mut Warnings) -> Checked<()> {
    let params = tts.params.unwrap_or_default();
    let string = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
    if tts.skip_patterns.as_ref().is_some_and(|p| !p.is_empty()) {
        w.ignored("tts.skip_patterns", "bracketed text is spoken");
    }
    match tts.vendor.as_deref() {
        Some("openai") if string("api_key").is_some() => {
            let fields = EndpointFields {
                url: Some(string("base_url").unwrap_or_else(|| colloquy_http::fields::OPENAI_URL.to_owned())),
                api_key: string("api_key"),
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
        Some(_) => w.ignored("tts.vendor", "speech is synthesised with the embedded Piper voice"),
        None => {}
    }
    Ok(())
}
