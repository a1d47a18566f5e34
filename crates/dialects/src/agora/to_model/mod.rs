//! Agora requests into the model, checking every value. Properties this server cannot honour are
//! either accepted with a warning kept with the agent (where ignoring them is harmless) or
//! refused with `InvalidFieldValue` (where the caller relies on them); `docs/dialects/agora.md`
//! lists which.

mod llm;
mod speech;
mod turn_taking;

use std::collections::BTreeMap;

use colloquy_model as model;
use colloquy_model::{AgentName, AgentSpec, ChannelName, IdleTimeout, Uid};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wire;
use colloquy_http::error::{ApiError, ErrorCode};
use colloquy_http::fields::{LocalModels, Warnings, finite, name, text, u32_in_range};
use colloquy_http::vendors::VendorScope;
use llm::{llm, llm_params, prompt_messages};
use speech::{asr, tts};
use turn_taking::turn_taking;

type Checked<T> = Result<T, ApiError>;

/// The longest `speak` text, in bytes (Agora's limit).
pub const MAX_SPEAK_BYTES: usize = 512;
/// The OpenAI path Agora's `llm.url` ends with; this server appends it to the base URL itself.
const CHAT_COMPLETIONS: &str = "/chat/completions";

/// What the dialect keeps in [`model::Origin::data`] to echo later.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OriginData {
    /// `properties.labels`, echoed in every webhook's `payload.labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, Value>,
    /// `properties.enable_string_uid`.
    #[serde(default)]
    pub enable_string_uid: bool,
}

impl OriginData {
    /// Reads an agent's origin data back; an agent of another dialect has none.
    pub fn of(spec: &AgentSpec) -> OriginData {
        spec.origin.data.as_deref().and_then(|data| serde_json::from_str(data).ok()).unwrap_or_default()
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(field, message)
}

fn unsupported(field: &str, why: &str) -> ApiError {
    invalid(field, format!("{field} is not supported by this server: {why}"))
}

fn f32_field(field: &str, value: f64, range: std::ops::RangeInclusive<f32>) -> Checked<f32> {
    finite(field, value as f32, range)
}

/// `{{var}}` replaced by each template variable.
fn substitute(text: String, vars: &BTreeMap<String, String>) -> String {
    vars.iter().fold(text, |text, (key, value)| text.replace(&format!("{{{{{key}}}}}"), value))
}

/// A uid given as a string or a number.
fn uid_text(field: &str, value: &Value) -> Checked<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        _ => Err(invalid(field, format!("{field} must be a string such as \"1001\""))),
    }
}

fn check_uid(field: &str, uid: String, string_uids: bool) -> Checked<Uid> {
    if !string_uids && uid.parse::<u32>().is_err() {
        return Err(invalid(
            field,
            format!("{field} is {uid:?}; without enable_string_uid it must be a number between 0 and 4294967295"),
        ));
    }
    name(field, uid, Uid::new)
}

/// A random numeric uid for `agent_rtc_uid: "0"`.
fn random_uid() -> Uid {
    let n: u32 = rand::random_range(100_000..=999_999_999);
    Uid::new(n.to_string()).expect("a number is a valid uid")
}

fn parameters(
    spec: &mut AgentSpec,
    parameters: wire::Parameters,
    vars: &BTreeMap<String, String>,
    w: &mut Warnings,
) -> Checked<()> {
    if let Some(silence) = parameters.silence_config {
        let timeout = silence.timeout_ms.unwrap_or(0);
        if timeout != 0 {
            let field = "parameters.silence_config";
            let timeout_ms =
                u32_in_range(&format!("{field}.timeout_ms"), timeout, model::SilencePrompt::TIMEOUT_RANGE_MS)?;
            let action = match silence.action.as_deref().unwrap_or("speak") {
                "speak" => model::SilenceAction::Speak,
                "think" => model::SilenceAction::Think,
                other => {
                    return Err(invalid(
                        &format!("{field}.action"),
                        format!("{field}.action is {other:?}; expected speak or think"),
                    ));
                }
            };
            let content = silence.content.ok_or_else(|| {
                ApiError::field(
                    ErrorCode::MissingField,
                    format!("{field}.content"),
                    format!("{field}.content is required when {field}.timeout_ms is set"),
                )
            })?;
            spec.silence_prompt = Some(model::SilencePrompt {
                timeout_ms,
                action,
                content: text(&format!("{field}.content"), substitute(content, vars))?,
            });
        }
    }
    if let Some(channel) = parameters.data_channel.as_deref()
        && channel != "datastream"
    {
        w.ignored("parameters.data_channel", "transcripts go out on the channel's data stream");
    }
    if parameters.farewell_config.is_some() {
        w.ignored("parameters.farewell_config", "the agent leaves when told to");
    }
    for (field, set) in [
        ("parameters.enable_metrics", parameters.enable_metrics == Some(true)),
        ("parameters.enable_error_message", parameters.enable_error_message == Some(true)),
        ("parameters.audio_scenario", parameters.audio_scenario.is_some()),
        ("parameters.opt_out", parameters.opt_out.is_some()),
    ] {
        if set {
            w.ignored(field, "not applicable to this server");
        }
    }
    Ok(())
}

fn enabled(value: &Option<Value>) -> bool {
    value.as_ref().and_then(|v| v.get("enable")).and_then(Value::as_bool).unwrap_or(false)
}

/// The keys of `properties` this dialect reads.
const KNOWN_PROPERTIES: &[&str] = &[
    "channel",
    "token",
    "agent_rtc_uid",
    "remote_rtc_uids",
    "enable_string_uid",
    "idle_timeout",
    "silence_timeout",
    "agent_rtm_uid",
    "llm",
    "asr",
    "tts",
    "mllm",
    "avatar",
    "sal",
    "turn_detection",
    "interruption",
    "vad",
    "parameters",
    "advanced_features",
    "filler_words",
    "geofence",
    "rtc",
    "labels",
];

/// The keys of `properties` this dialect does not know (Agora allows additional properties).
pub fn unknown_properties(body: &Value) -> Vec<String> {
    let Some(properties) = body.get("properties").and_then(Value::as_object) else { return Vec::new() };
    properties.keys().filter(|k| !KNOWN_PROPERTIES.contains(&k.as_str())).cloned().collect()
}

/// Refuses what cannot run here (ignoring it would change what the caller gets), and warns about
/// what is harmless to ignore.
fn refuse_what_cannot_run(p: &wire::Properties, w: &mut Warnings) -> Checked<()> {
    // Refused: ignoring these would change what the caller gets.
    if enabled(&p.mllm) {
        return Err(unsupported(
            "properties.mllm.enable",
            "multimodal (realtime) LLMs cannot run here; use asr + llm + tts",
        ));
    }
    if enabled(&p.avatar) {
        return Err(unsupported("properties.avatar.enable", "no avatar vendor is available"));
    }
    if p.sal.is_some() {
        return Err(unsupported(
            "properties.sal",
            "selective attention locking needs voiceprints this server cannot match",
        ));
    }
    if let Some(features) = &p.advanced_features {
        if features.enable_mllm == Some(true) {
            return Err(unsupported("properties.advanced_features.enable_mllm", "multimodal LLMs cannot run here"));
        }
        if features.enable_sal == Some(true) {
            return Err(unsupported("properties.advanced_features.enable_sal", "selective attention locking"));
        }
        for (name, on) in [
            ("enable_rtm", features.enable_rtm),
            ("enable_tools", features.enable_tools),
            ("enable_aivad", features.enable_aivad),
        ] {
            if on == Some(true) {
                w.ignored(format!("properties.advanced_features.{name}"), "not available on this server");
            }
        }
    }
    // Accepted with a warning: harmless to ignore.
    for (field, set) in [
        ("properties.geofence", p.geofence.is_some()),
        ("properties.rtc", p.rtc.is_some()),
        ("properties.filler_words", enabled(&p.filler_words)),
        ("properties.agent_rtm_uid", p.agent_rtm_uid.is_some()),
        ("properties.silence_timeout", p.silence_timeout.is_some()),
    ] {
        if set {
            w.ignored(field, "not applicable to this server");
        }
    }
    Ok(())
}

/// `properties.agent_rtc_uid` (`0` or absent: a random one).
fn agent_uid(uid: Option<&Value>, string_uids: bool) -> Checked<Uid> {
    let field = "properties.agent_rtc_uid";
    let Some(uid) = uid else { return Ok(random_uid()) };
    let uid = uid_text(field, uid)?;
    if uid == "0" { Ok(random_uid()) } else { check_uid(field, uid, string_uids) }
}

/// `properties.remote_rtc_uids`: `["*"]` for everyone, or the uids the agent hears.
fn remote_uids(uids: &[Value], string_uids: bool) -> Checked<model::RemoteUids> {
    let field = "properties.remote_rtc_uids";
    if uids.is_empty() {
        return Err(invalid(field, format!("{field} is empty; use [\"*\"] for everyone")));
    }
    if uids.len() > AgentSpec::MAX_REMOTE_UIDS {
        return Err(invalid(field, format!("{field} has more than {} uids", AgentSpec::MAX_REMOTE_UIDS)));
    }
    let uids =
        uids.iter().enumerate().map(|(i, uid)| uid_text(&format!("{field}[{i}]"), uid)).collect::<Checked<Vec<_>>>()?;
    if uids.iter().any(|u| u == "*") {
        if uids.len() > 1 {
            return Err(invalid(field, format!("{field}: \"*\" means everyone and cannot be combined with uids")));
        }
        return Ok(model::RemoteUids::Any);
    }
    Ok(model::RemoteUids::Only(
        uids.into_iter()
            .enumerate()
            .map(|(i, uid)| check_uid(&format!("{field}[{i}]"), uid, string_uids))
            .collect::<Checked<_>>()?,
    ))
}

/// Checks a `join` body and resolves its defaults.
/// `unknown`: the keys of `properties` this dialect does not know (Agora allows additional ones),
/// from [`unknown_properties`].
pub fn spec_from_join(
    request: wire::JoinRequest,
    callbacks: Option<model::Callbacks>,
    unknown: Vec<String>,
    models: &dyn LocalModels,
    vendors: VendorScope<'_>,
) -> Checked<AgentSpec> {
    let mut warnings = Warnings::default();
    for key in unknown {
        warnings.ignored(format!("properties.{key}"), "not a property this server knows");
    }
    let w = &mut warnings;
    let mut p = request.properties;
    let field_name = |f: &str| format!("properties.{f}");
    let agent_name = name("name", request.name, AgentName::new)?;
    let channel = name("properties.channel", std::mem::take(&mut p.channel), ChannelName::new)?;
    if request.preset.is_some() || request.pipeline_id.is_some() {
        w.ignored("preset / pipeline_id", "no presets or pipelines are configured here; properties decide");
    }
    refuse_what_cannot_run(&p, w)?;
    let mut spec = AgentSpec::with_defaults(agent_name, channel);
    let string_uids = p.enable_string_uid.unwrap_or(false);
    spec.agent_uid = agent_uid(p.agent_rtc_uid.as_ref(), string_uids)?;
    if let Some(uids) = &p.remote_rtc_uids {
        spec.remote_uids = remote_uids(uids, string_uids)?;
    }
    if let Some(secs) = p.idle_timeout {
        spec.idle_timeout =
            IdleTimeout::from_secs(u32_in_range(&field_name("idle_timeout"), secs, 0..=IdleTimeout::MAX_SECS)?);
    }
    // The groups name their fields from inside `properties`, in errors and warnings alike.
    let mut in_properties = Warnings::default();
    let w = &mut in_properties;
    let vars = match p.llm {
        Some(l) => llm(&mut spec, l, w, models).map_err(|e| prefix(e, "properties."))?,
        None => BTreeMap::new(),
    };
    if let Some(a) = p.asr {
        asr(&mut spec, a, vendors, w).map_err(|e| prefix(e, "properties."))?;
    }
    if let Some(t) = p.tts {
        tts(&mut spec, t, vendors, w).map_err(|e| prefix(e, "properties."))?;
    }
    turn_taking(&mut spec, p.turn_detection, p.vad, p.interruption, w).map_err(|e| prefix(e, "properties."))?;
    if let Some(params) = p.parameters {
        parameters(&mut spec, params, &vars, w).map_err(|e| prefix(e, "properties."))?;
    }
    spec.callbacks = callbacks;
    let origin = OriginData { labels: p.labels.unwrap_or_default(), enable_string_uid: string_uids };
    spec.origin = model::Origin {
        dialect: model::Dialect::Agora,
        data: Some(serde_json::to_string(&origin).map_err(|e| ApiError::internal(e.to_string()))?),
    };
    warnings.absorb("properties.", in_properties);
    spec.warnings = warnings.into_vec();
    Ok(spec)
}

/// Puts `properties.` before the field names of errors raised by the group checks.
fn prefix(mut error: ApiError, prefix: &str) -> ApiError {
    if let Some(field) = error.field.take() {
        let full = format!("{prefix}{field}");
        if !error.message.contains(&full) {
            error.message = error.message.replacen(&field, &full, 1);
        }
        error.field = Some(full);
    }
    error
}

/// `update.properties` into a [`model::SpecUpdate`] (empty when only the token changes).
pub fn update_from_request(request: wire::UpdateRequest) -> Checked<model::SpecUpdate> {
    let p = request.properties;
    if p.mllm.is_some() {
        return Err(unsupported("properties.mllm", "this agent has no multimodal LLM"));
    }
    let mut update = model::SpecUpdate::default();
    if let Some(llm) = p.llm {
        if let Some(messages) = llm.system_messages {
            update.system_messages =
                Some(prompt_messages("properties.llm.system_messages", messages, &BTreeMap::new())?);
        }
        if let Some(params) = llm.params {
            let mut w = Warnings::default();
            update.llm_params = Some(llm_params("properties.llm.params", &params, &mut w)?);
            update.warnings = w.into_vec();
        }
    }
    if update.is_empty() && p.token.is_none() {
        return Err(ApiError::field(
            ErrorCode::MissingField,
            "properties",
            "nothing to update: send properties.token, properties.llm.system_messages or properties.llm.params",
        ));
    }
    Ok(update)
}

/// `speak` into [`model::AgentCommand::Speak`].
pub fn speak_from_request(request: wire::SpeakRequest) -> Checked<model::AgentCommand> {
    let text = text("text", request.text)?;
    if text.len() > MAX_SPEAK_BYTES {
        return Err(invalid("text", format!("text is {} bytes long; the maximum is {MAX_SPEAK_BYTES}", text.len())));
    }
    let priority = match request.priority.as_deref().unwrap_or("INTERRUPT") {
        "INTERRUPT" => model::SpeakPriority::Interrupt,
        "APPEND" => model::SpeakPriority::Append,
        "IGNORE" => model::SpeakPriority::Ignore,
        other => {
            return Err(invalid("priority", format!("priority is {other:?}; expected INTERRUPT, APPEND or IGNORE")));
        }
    };
    Ok(model::AgentCommand::Speak { text, priority, interruptible: request.interruptable.unwrap_or(true) })
}

/// `think` into [`model::AgentCommand::Think`], each `on_*_action` honoured: `inject` (listening)
/// adds the text to what the user is saying, `append` (thinking or speaking) answers it after the
/// reply under way. Agora's defaults: interrupt when listening or thinking, ignore when speaking.
pub fn think_from_request(request: wire::ThinkRequest) -> Checked<model::AgentCommand> {
    use model::ThinkAction as A;
    let text = text("text", request.text)?;
    let action = |field: &str, value: Option<&str>, allowed: &[(&str, A)], default: A| match value {
        None => Ok(default),
        Some(value) => allowed.iter().find(|(name, _)| *name == value).map(|(_, action)| *action).ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
            invalid(field, format!("{field} is {value:?}; expected one of {names:?}"))
        }),
    };
    let (interrupt, ignore) = (("interrupt", A::Interrupt), ("ignore", A::Ignore));
    let handling = model::ThinkHandling {
        listening: action(
            "on_listening_action",
            request.on_listening_action.as_deref(),
            &[("inject", A::Inject), interrupt, ignore],
            A::Interrupt,
        )?,
        thinking: action(
            "on_thinking_action",
            request.on_thinking_action.as_deref(),
            &[interrupt, ignore, ("append", A::Append)],
            A::Interrupt,
        )?,
        speaking: action(
            "on_speaking_action",
            request.on_speaking_action.as_deref(),
            &[interrupt, ignore, ("append", A::Append)],
            A::Ignore,
        )?,
        interruptible: request.interruptable.unwrap_or(true),
    };
    if request.metadata.is_some() {
        tracing::info!("Agora think: metadata is not passed to the LLM");
    }
    Ok(model::AgentCommand::Think { text, handling })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(body: &str) -> Checked<AgentSpec> {
        let request: wire::JoinRequest = colloquy_http::extract::parse_json(body.as_bytes())?;
        spec_from_join(
            request,
            None,
            Vec::new(),
            &colloquy_http::fields::ListedModels::default_llm(),
            VendorScope { vendors: &colloquy_model::NoVendors, substitute_unsupported: false, keys: None },
        )
    }

    #[test]
    fn template_variables_fill_prompts_greeting_failure_and_silence() {
        let spec = join(
            r#"{"name":"a","properties":{"channel":"c","llm":{"url":"https://x.test/v1/chat/completions","params":{"model":"m"},
            "system_messages":[{"role":"system","content":"You help {{user}}."}],"greeting_message":"Hi {{user}}",
            "failure_message":"Sorry {{user}}","template_variables":{"user":"Ann"}},
            "parameters":{"silence_config":{"timeout_ms":5000,"action":"think","content":"{{user}} is quiet"}}}}"#,
        )
        .unwrap();
        assert_eq!(spec.llm.system_messages[0].content, "You help Ann.");
        assert_eq!(spec.greeting.unwrap().text, "Hi Ann");
        assert_eq!(spec.failure_message.as_deref(), Some("Sorry Ann"));
        let silence = spec.silence_prompt.unwrap();
        assert_eq!(
            (silence.timeout_ms, silence.action, silence.content.as_str()),
            (5000, model::SilenceAction::Think, "Ann is quiet")
        );
        match spec.llm.provider {
            model::LlmProvider::OpenAiCompatible(e) => {
                assert_eq!((e.url.as_str(), e.model.as_str()), ("https://x.test/v1", "m"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn turn_detection_new_and_deprecated_forms() {
        let spec = join(
            r#"{"name":"a","properties":{"channel":"c","turn_detection":{"config":{"speech_threshold":0.6,
            "start_of_speech":{"mode":"vad","vad_config":{"interrupt_duration_ms":200,"prefix_padding_ms":700}},
            "end_of_speech":{"mode":"semantic","semantic_config":{"silence_duration_ms":320,"max_wait_ms":-1}}}}}}"#,
        )
        .unwrap();
        let td = spec.turn_detection;
        assert_eq!(
            (td.vad_threshold, td.prefix_padding_ms, td.silence_duration_ms, td.max_wait_ms),
            (0.6, 700, 320, 60_000)
        );
        assert_eq!(spec.interruption.min_speech_ms, 200);

        let spec = join(
            r#"{"name":"a","properties":{"channel":"c","turn_detection":{"type":"agora_vad","threshold":0.4,
            "silence_duration_ms":900,"interrupt_mode":"keywords","interrupt_keywords":["stop","wait"]}}}"#,
        )
        .unwrap();
        assert_eq!((spec.turn_detection.vad_threshold, spec.turn_detection.silence_duration_ms), (0.4, 900));
        assert_eq!(spec.interruption.mode, model::InterruptionMode::Keywords);
        assert_eq!(spec.interruption.keywords, ["stop", "wait"]);

        let spec =
            join(r#"{"name":"a","properties":{"channel":"c","turn_detection":{"interrupt_mode":"ignore"}}}"#).unwrap();
        assert!(!spec.interruption.enabled);
        assert_eq!(spec.interruption.when_disabled, model::DisabledStrategy::Ignore);

        let spec = join(
            r#"{"name":"a","properties":{"channel":"c","interruption":{"enable":false,"disabled_config":{"strategy":"append"}}}}"#,
        )
        .unwrap();
        assert!(!spec.interruption.enabled);
        let e = join(r#"{"name":"a","properties":{"channel":"c","interruption":{"mode":"keywords"}}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("properties.interruption.keywords_config.trigger_keywords"));
    }

    #[test]
    fn refuses_what_cannot_be_honoured() {
        for (body, field) in [
            (r#"{"mllm":{"enable":true}}"#, "properties.mllm.enable"),
            (r#"{"avatar":{"enable":true}}"#, "properties.avatar.enable"),
            (r#"{"sal":{"sal_mode":"locking"}}"#, "properties.sal"),
            (
                r#"{"llm":{"url":"https://x.test/v1/chat/completions","greeting_audio_url":"https://a.test/a.mp3"}}"#,
                "properties.llm.greeting_audio_url",
            ),
            (
                r#"{"llm":{"url":"https://x.test/v1/chat/completions","params":{"model":"m"},"style":"anthropic"}}"#,
                "properties.llm.style",
            ),
            (r#"{"llm":{"url":"https://x.test/v1/messages","params":{"model":"m"}}}"#, "properties.llm.url"),
            (r#"{"llm":{"url":"https://x.test/v1/chat/completions"}}"#, "properties.llm.params.model"),
            (
                r#"{"turn_detection":{"config":{"end_of_speech":{"mode":"manual"}}}}"#,
                "properties.turn_detection.config.end_of_speech.mode",
            ),
            (r#"{"idle_timeout":-1}"#, "properties.idle_timeout"),
            (r#"{"agent_rtc_uid":"bot"}"#, "properties.agent_rtc_uid"),
        ] {
            let props = &body[1..body.len() - 1];
            let e = join(&format!(r#"{{"name":"a","properties":{{"channel":"c",{props}}}}}"#)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{body}: {}", e.message);
            assert!(e.message.contains(field), "{}", e.message);
        }
        // Harmless ones are accepted.
        join(r#"{"name":"a","properties":{"channel":"c","geofence":{"area":"GLOBAL"},"advanced_features":{"enable_rtm":true},
            "rtc":{"encryption_mode":1},"asr":{"vendor":"ares","language":"de-DE"}}}"#)
        .unwrap();
        // A vendor this node does not have is not harmless: refused, naming the field.
        let e = join(r#"{"name":"a","properties":{"channel":"c","tts":{"vendor":"elevenlabs","params":{"key":"k"}}}}"#)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("properties.tts.vendor"), "{}", e.message);
    }

    #[test]
    fn uids_and_local_llm() {
        let spec =
            join(r#"{"name":"a","properties":{"channel":"c","agent_rtc_uid":"0","remote_rtc_uids":["*"]}}"#).unwrap();
        assert!(spec.agent_uid.as_str().parse::<u32>().unwrap() > 0);
        assert_eq!(spec.remote_uids, model::RemoteUids::Any);
        let spec = join(
            r#"{"name":"a","properties":{"channel":"c","enable_string_uid":true,"agent_rtc_uid":"bot","remote_rtc_uids":["alice"],
            "llm":{"url":"local://","system_messages":[{"role":"user","content":"earlier"}]}}}"#,
        )
        .unwrap();
        assert_eq!(spec.agent_uid.as_str(), "bot");
        assert_eq!(spec.remote_uids, model::RemoteUids::Only(vec![Uid::new("alice").unwrap()]));
        assert_eq!(
            spec.llm.provider,
            model::LlmProvider::Local { model: model::LlmProvider::DEFAULT_LOCAL_MODEL.into() }
        );
        assert_eq!(spec.llm.system_messages[0].role, model::PromptRole::User);
    }

    #[test]
    fn speak_checks_priority_and_length() {
        let speak = |body: &str| speak_from_request(colloquy_http::extract::parse_json(body.as_bytes())?);
        assert_eq!(
            speak(r#"{"text":"hi","priority":"APPEND","interruptable":false}"#).unwrap(),
            model::AgentCommand::Speak {
                text: "hi".into(),
                priority: model::SpeakPriority::Append,
                interruptible: false
            }
        );
        assert_eq!(speak(r#"{"text":"hi","priority":"LOUD"}"#).unwrap_err().field.as_deref(), Some("priority"));
        let long = format!(r#"{{"text":"{}"}}"#, "é".repeat(257));
        assert_eq!(speak(&long).unwrap_err().field.as_deref(), Some("text"));
    }
}
