//! `properties.turn_detection` (the deprecated flat fields and the v2.6 `config`), the deprecated
//! `vad`, and `interruption`: when the user's turn starts and ends, and what cuts the agent off.

use colloquy_http::fields::{Warnings, short_text, u32_in_range};

use colloquy_http::error::{ApiError, ErrorCode};
use colloquy_model as model;
use colloquy_model::AgentSpec;

use super::f32_field;
use super::{Checked, invalid, unsupported};
use crate::agora::wire;

fn interrupt_mode(field: &str, mode: &str, interruption: &mut model::Interruption, w: &mut Warnings) -> Checked<()> {
    match mode {
        "interrupt" | "start_of_speech" => {
            interruption.enabled = true;
            interruption.mode = model::InterruptionMode::StartOfSpeech;
        }
        "adaptive" => {
            w.ignored(field, "adaptive interruption works as \"interrupt\"");
            interruption.enabled = true;
            interruption.mode = model::InterruptionMode::StartOfSpeech;
        }
        "keywords" => {
            interruption.enabled = true;
            interruption.mode = model::InterruptionMode::Keywords;
        }
        "append" => {
            interruption.enabled = false;
            interruption.when_disabled = model::DisabledStrategy::Append;
        }
        "ignore" => {
            interruption.enabled = false;
            interruption.when_disabled = model::DisabledStrategy::Ignore;
        }
        other => {
            return Err(invalid(
                field,
                format!("{field} is {other:?}; expected interrupt, append, ignore or keywords"),
            ));
        }
    }
    Ok(())
}

fn strategy(field: &str, value: &str) -> Checked<model::DisabledStrategy> {
    match value {
        "append" => Ok(model::DisabledStrategy::Append),
        "ignore" => Ok(model::DisabledStrategy::Ignore),
        other => Err(invalid(field, format!("{field} is {other:?}; expected append or ignore"))),
    }
}

fn keywords(field: &str, words: Vec<String>) -> Checked<Vec<String>> {
    use model::Interruption as I;
    if words.len() > I::MAX_KEYWORDS {
        return Err(invalid(field, format!("{field} has {} words; the maximum is {}", words.len(), I::MAX_KEYWORDS)));
    }
    words.into_iter().enumerate().map(|(i, w)| short_text(&format!("{field}[{i}]"), w, I::MAX_KEYWORD_CHARS)).collect()
}

/// `turn_detection` (both forms), the deprecated `vad` and `interruption`, then the rules that tie
/// them together.
pub(super) fn turn_taking(
    spec: &mut AgentSpec,
    turn: Option<wire::TurnDetection>,
    vad: Option<wire::DeprecatedVad>,
    interruption: Option<wire::Interruption>,
    w: &mut Warnings,
) -> Checked<()> {
    let td = &mut spec.turn_detection;
    let int = &mut spec.interruption;
    if let Some(vad) = vad {
        deprecated_vad(td, int, vad)?;
    }
    let mut semantic_wait = None;
    if let Some(turn) = turn {
        semantic_wait = turn_detection(td, int, turn, w)?;
    }
    if let Some(interruption) = interruption {
        interruption_group(int, interruption)?;
    }
    if int.mode == model::InterruptionMode::Keywords && int.keywords.is_empty() {
        return Err(ApiError::field(
            ErrorCode::MissingField,
            "interruption.keywords_config.trigger_keywords",
            "interruption.keywords_config.trigger_keywords is required (at least one word) in keywords mode",
        ));
    }
    if int.mode == model::InterruptionMode::StartOfSpeech {
        int.keywords.clear();
    }
    if let Some(wait) = semantic_wait {
        td.max_wait_ms = wait;
    }
    if td.max_wait_ms < td.silence_duration_ms {
        td.max_wait_ms = td.silence_duration_ms;
    }
    Ok(())
}

/// The deprecated top-level `vad`.
fn deprecated_vad(
    td: &mut model::TurnDetection,
    int: &mut model::Interruption,
    vad: wire::DeprecatedVad,
) -> Checked<()> {
    use model::TurnDetection as T;
    if let Some(v) = vad.threshold {
        td.vad_threshold = f32_field("vad.threshold", v, T::VAD_THRESHOLD_RANGE)?;
    }
    if let Some(v) = vad.silence_duration_ms {
        td.silence_duration_ms = u32_in_range("vad.silence_duration_ms", v, T::SILENCE_DURATION_RANGE_MS)?;
    }
    if let Some(v) = vad.prefix_padding_ms {
        td.prefix_padding_ms = u32_in_range("vad.prefix_padding_ms", v, T::PREFIX_PADDING_RANGE_MS)?;
    }
    if let Some(v) = vad.interrupt_duration_ms {
        int.min_speech_ms = u32_in_range("vad.interrupt_duration_ms", v, model::Interruption::MIN_SPEECH_RANGE_MS)?;
    }
    Ok(())
}

/// `turn_detection`: the deprecated flat fields, then the v2.6 `config`. Answers the semantic
/// end of speech's `max_wait_ms`, when one is set.
fn turn_detection(
    td: &mut model::TurnDetection,
    int: &mut model::Interruption,
    turn: wire::TurnDetection,
    w: &mut Warnings,
) -> Checked<Option<u32>> {
    use model::TurnDetection as T;
    if let Some(mode) = turn.mode.as_deref().filter(|m| *m != "default") {
        return Err(invalid("turn_detection.mode", format!("turn_detection.mode is {mode:?}; expected \"default\"")));
    }
    match turn.kind.as_deref() {
        None | Some("agora_vad") => {}
        Some("server_vad" | "semantic_vad") => {
            w.ignored("turn_detection.type", "server_vad and semantic_vad need an MLLM; the local VAD is used")
        }
        Some(other) => {
            return Err(invalid(
                "turn_detection.type",
                format!("turn_detection.type is {other:?}; expected agora_vad, server_vad or semantic_vad"),
            ));
        }
    }
    if turn.eagerness.is_some() {
        w.ignored("turn_detection.eagerness", "applies to semantic_vad with an MLLM");
    }
    if let Some(v) = turn.threshold {
        td.vad_threshold = f32_field("turn_detection.threshold", v, T::VAD_THRESHOLD_RANGE)?;
    }
    if let Some(v) = turn.silence_duration_ms {
        td.silence_duration_ms = u32_in_range("turn_detection.silence_duration_ms", v, T::SILENCE_DURATION_RANGE_MS)?;
    }
    if let Some(v) = turn.prefix_padding_ms {
        td.prefix_padding_ms = u32_in_range("turn_detection.prefix_padding_ms", v, T::PREFIX_PADDING_RANGE_MS)?;
    }
    if let Some(v) = turn.interrupt_duration_ms {
        int.min_speech_ms =
            u32_in_range("turn_detection.interrupt_duration_ms", v, model::Interruption::MIN_SPEECH_RANGE_MS)?;
    }
    if let Some(mode) = turn.interrupt_mode.as_deref() {
        interrupt_mode("turn_detection.interrupt_mode", mode, int, w)?;
    }
    if let Some(words) = turn.interrupt_keywords {
        int.keywords = keywords("turn_detection.interrupt_keywords", words)?;
    }
    let Some(config) = turn.config else { return Ok(None) };
    if let Some(v) = config.speech_threshold {
        td.vad_threshold = f32_field("turn_detection.config.speech_threshold", v, T::VAD_THRESHOLD_RANGE)?;
    }
    if let Some(sos) = config.start_of_speech {
        start_of_speech(td, int, sos, w)?;
    }
    match config.end_of_speech {
        Some(eos) => end_of_speech(td, eos),
        None => Ok(None),
    }
}

/// `turn_detection.config.start_of_speech`: what starts the user's turn while the agent speaks.
fn start_of_speech(
    td: &mut model::TurnDetection,
    int: &mut model::Interruption,
    sos: wire::StartOfSpeech,
    w: &mut Warnings,
) -> Checked<()> {
    let field = "turn_detection.config.start_of_speech";
    match sos.mode.as_deref() {
        None | Some("vad") => {}
        Some("manual") => {
            return Err(unsupported(
                &format!("{field}.mode"),
                "manual turn control needs RTM, which this server does not carry",
            ));
        }
        Some("keywords") => interrupt_mode(&format!("{field}.mode"), "keywords", int, w)?,
        Some("disabled") => {
            int.enabled = false;
            if let Some(s) = sos.disabled_config.as_ref().and_then(|d| d.strategy.as_deref()) {
                int.when_disabled = strategy(&format!("{field}.disabled_config.strategy"), s)?;
            }
        }
        Some(other) => {
            return Err(invalid(
                &format!("{field}.mode"),
                format!("{field}.mode is {other:?}; expected vad, manual, keywords or disabled"),
            ));
        }
    }
    if let Some(words) = sos.keywords_config.and_then(|k| k.trigger_keywords) {
        int.keywords = keywords(&format!("{field}.keywords_config.triggered_keywords"), words)?;
    }
    let Some(vad) = sos.vad_config else { return Ok(()) };
    if let Some(v) = vad.interrupt_duration_ms {
        int.min_speech_ms = u32_in_range(
            &format!("{field}.vad_config.interrupt_duration_ms"),
            v,
            model::Interruption::MIN_SPEECH_RANGE_MS,
        )?;
    }
    if vad.speaking_interrupt_duration_ms.is_some() {
        w.ignored(
            "turn_detection.config.start_of_speech.vad_config.speaking_interrupt_duration_ms",
            "interrupt_duration_ms applies whether or not the agent speaks",
        );
    }
    if let Some(v) = vad.prefix_padding_ms {
        td.prefix_padding_ms = u32_in_range(
            &format!("{field}.vad_config.prefix_padding_ms"),
            v,
            model::TurnDetection::PREFIX_PADDING_RANGE_MS,
        )?;
    }
    Ok(())
}

/// `turn_detection.config.end_of_speech`: what ends the user's turn. Answers the semantic mode's
/// `max_wait_ms` (`-1`: the longest this server waits), when set.
fn end_of_speech(td: &mut model::TurnDetection, eos: wire::EndOfSpeech) -> Checked<Option<u32>> {
    use model::TurnDetection as T;
    let field = "turn_detection.config.end_of_speech";
    let silence = |v: i64, group: &str| {
        u32_in_range(&format!("{field}.{group}.silence_duration_ms"), v, T::SILENCE_DURATION_RANGE_MS)
    };
    match eos.mode.as_deref() {
        None | Some("vad") => {
            if let Some(v) = eos.vad_config.and_then(|c| c.silence_duration_ms) {
                td.silence_duration_ms = silence(v, "vad_config")?;
            }
            Ok(None)
        }
        Some("semantic") => {
            let Some(semantic) = eos.semantic_config else { return Ok(None) };
            if let Some(v) = semantic.silence_duration_ms {
                td.silence_duration_ms = silence(v, "semantic_config")?;
            }
            match semantic.max_wait_ms {
                Some(-1) => Ok(Some(*T::MAX_WAIT_RANGE_MS.end())),
                Some(v) => {
                    Ok(Some(u32_in_range(&format!("{field}.semantic_config.max_wait_ms"), v, T::MAX_WAIT_RANGE_MS)?))
                }
                None => Ok(None),
            }
        }
        Some("manual") => Err(unsupported(
            &format!("{field}.mode"),
            "manual turn control needs RTM, which this server does not carry",
        )),
        Some(other) => Err(invalid(
            &format!("{field}.mode"),
            format!("{field}.mode is {other:?}; expected vad, semantic or manual"),
        )),
    }
}

/// The top-level `interruption`.
fn interruption_group(int: &mut model::Interruption, interruption: wire::Interruption) -> Checked<()> {
    if let Some(enable) = interruption.enable {
        int.enabled = enable;
    }
    match interruption.mode.as_deref() {
        None | Some("start_of_speech") => int.mode = model::InterruptionMode::StartOfSpeech,
        Some("keywords") => int.mode = model::InterruptionMode::Keywords,
        Some(other) => {
            return Err(invalid(
                "interruption.mode",
                format!("interruption.mode is {other:?}; expected start_of_speech or keywords"),
            ));
        }
    }
    if let Some(words) = interruption.keywords_config.and_then(|k| k.trigger_keywords) {
        int.keywords = keywords("interruption.keywords_config.trigger_keywords", words)?;
    }
    if let Some(s) = interruption.disabled_config.and_then(|d| d.strategy) {
        int.when_disabled = strategy("interruption.disabled_config.strategy", &s)?;
    }
    Ok(())
}
