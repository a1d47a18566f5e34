//! `properties.llm`: the provider (the embedded model or an OpenAI-compatible URL), the prompt,
//! its parameters, the greeting and the failure message.

use std::collections::BTreeMap;

use colloquy_http::fields::{
    EndpointFields, LocalModels, Warnings, local_llm, prompt_length, prompt_role, short_text, text, u32_in_range,
};
use serde_json::Value;

use colloquy_http::error::{ApiError, ErrorCode};
use colloquy_model as model;
use colloquy_model::AgentSpec;

use super::{CHAT_COMPLETIONS, f32_field, substitute};
use super::{Checked, invalid, unsupported};
use crate::agora::wire;

pub(super) fn prompt_messages(
    field: &str,
    messages: Vec<wire::Message>,
    vars: &BTreeMap<String, String>,
) -> Checked<Vec<model::PromptMessage>> {
    prompt_length(field, messages.len())?;
    messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            let role = prompt_role(&format!("{field}[{i}].role"), &message.role)?;
            Ok(model::PromptMessage {
                role,
                content: text(&format!("{field}[{i}].content"), substitute(message.content, vars))?,
            })
        })
        .collect()
}

/// `llm.params`: the sampling parameters this server uses, and the model name. Starts from the
/// defaults, as Agora's `params` replaces the whole object.
pub(super) fn llm_params(field: &str, params: &BTreeMap<String, Value>, w: &mut Warnings) -> Checked<model::LlmParams> {
    let mut out = model::LlmParams::DEFAULT;
    for (key, value) in params {
        let path = format!("{field}.{key}");
        match key.as_str() {
            "temperature" => {
                let v = value.as_f64().ok_or_else(|| invalid(&path, format!("{path} must be a number")))?;
                out.temperature = f32_field(&path, v, model::LlmParams::TEMPERATURE_RANGE)?;
            }
            "top_p" => {
                let v = value.as_f64().ok_or_else(|| invalid(&path, format!("{path} must be a number")))?;
                out.top_p = f32_field(&path, v, model::LlmParams::TOP_P_RANGE)
                    .map_err(|_| invalid(&path, format!("{path} must be greater than 0 and at most 1")))?;
            }
            "max_tokens" | "max_completion_tokens" => {
                let v = value.as_i64().ok_or_else(|| invalid(&path, format!("{path} must be an integer")))?;
                out.max_tokens = u32_in_range(&path, v, model::LlmParams::MAX_TOKENS_RANGE)?;
            }
            "model" | "stream" => {}
            _ => w.ignored(path, "not passed to the LLM; only model, temperature, top_p and max_tokens are"),
        }
    }
    Ok(out)
}

fn model_name(params: Option<&BTreeMap<String, Value>>) -> Checked<Option<String>> {
    match params.and_then(|p| p.get("model")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(m)) => Ok(Some(short_text("llm.params.model", m.clone(), 256)?)),
        Some(_) => Err(invalid("llm.params.model", "llm.params.model must be a string")),
    }
}

/// `properties.llm` into the model's LLM, greeting, failure message and history length.
/// Refuses the `llm` features this server cannot honour.
fn refuse_llm_features(llm: &wire::Llm, w: &mut Warnings) -> Checked<()> {
    if let Some(url) = &llm.greeting_audio_url
        && !url.is_empty()
    {
        return Err(unsupported("llm.greeting_audio_url", "greetings are synthesised from llm.greeting_message"));
    }
    if llm.mcp_servers.as_ref().is_some_and(|servers| !servers.is_empty()) {
        return Err(unsupported("llm.mcp_servers", "the agent cannot call tools"));
    }
    if let Some(style) = llm.style.as_deref()
        && style != "openai"
    {
        return Err(unsupported("llm.style", "only the OpenAI chat-completions style (\"openai\") is spoken"));
    }
    if let Some(modalities) = &llm.input_modalities
        && modalities.iter().any(|m| m != "text")
    {
        w.ignored("llm.input_modalities", "the LLM receives text only");
    }
    if let Some(modalities) = &llm.output_modalities
        && !modalities.iter().any(|m| m == "text")
    {
        return Err(unsupported("llm.output_modalities", "the LLM must answer in text, which is synthesised"));
    }
    Ok(())
}

/// `llm.vendor` and `llm.url`: the embedded model (`local`, or a `local://MODEL` URL) or an
/// OpenAI-compatible endpoint.
fn llm_provider(
    llm: &wire::Llm,
    model: Option<String>,
    w: &mut Warnings,
    models: &dyn LocalModels,
) -> Checked<model::LlmProvider> {
    let vendor = llm.vendor.as_deref().unwrap_or("openai");
    let is_local = vendor == "local" || llm.url.as_deref().is_none_or(|url| url.starts_with("local://"));
    if is_local {
        local_provider(llm, model, w, models)
    } else {
        match vendor {
            "openai" | "azure" | "xai" => {}
            "custom" => w.ignored("llm.vendor", "\"custom\" requests carry no turn_id or timestamp here"),
            other => {
                return Err(invalid(
                    "llm.vendor",
                    format!("llm.vendor is {other:?}; expected openai, azure, xai, custom or local"),
                ));
            }
        }
        let (base, deployment) = chat_base_url(llm.url.as_deref().unwrap_or_default())?;
        let fields = EndpointFields {
            url: Some(base),
            api_key: llm.api_key.clone().filter(|k| !k.is_empty()),
            headers: llm.headers.clone(),
            timeout_ms: None,
            max_retries: None,
        };
        // Azure OpenAI names the model by its deployment, in the URL.
        let model = model.or(deployment).ok_or_else(|| {
            ApiError::field(ErrorCode::MissingField, "llm.params.model", "llm.params.model is required with llm.url")
        })?;
        let mut endpoint = fields.into_endpoint("llm", model)?;
        if vendor == "azure" {
            endpoint.key_header = model::KeyHeader::ApiKey;
        }
        Ok(model::LlmProvider::OpenAiCompatible(endpoint))
    }
}

/// The embedded LLM: `local://NAME` names a model this node must have (400 naming those it has);
/// `params.model`, which Agora's SDK builders always send, is used when it names one and
/// otherwise gives way to the default model, with a warning.
fn local_provider(
    llm: &wire::Llm,
    model: Option<String>,
    w: &mut Warnings,
    models: &dyn LocalModels,
) -> Checked<model::LlmProvider> {
    let default = model::LlmProvider::DEFAULT_LOCAL_MODEL;
    let from_url = llm.url.as_deref().and_then(|url| url.strip_prefix("local://")).filter(|m| !m.is_empty());
    let model = match (from_url, model) {
        (Some(name), _) => {
            local_llm("llm.url", name, models)?;
            name.to_owned()
        }
        (None, Some(name)) if models.has_llm(&name) => name,
        (None, Some(name)) => {
            w.ignored(
                "llm.params.model",
                format!("{name:?} is not a local model here; the default local model {default} answers"),
            );
            default.to_owned()
        }
        (None, None) => default.to_owned(),
    };
    Ok(model::LlmProvider::Local { model: short_text("llm.params.model", model, 4096)? })
}

/// Agora's `llm.url` is the whole chat-completions URL, query included (Azure OpenAI's
/// `…/openai/deployments/NAME/chat/completions?api-version=…`): the endpoint's base URL is it
/// without `/chat/completions`, its query kept; with it, an Azure deployment's name.
fn chat_base_url(url: &str) -> Checked<(String, Option<String>)> {
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (url, None),
    };
    let base = path.trim_end_matches('/').strip_suffix(CHAT_COMPLETIONS).ok_or_else(|| {
        invalid("llm.url", format!("llm.url must be an OpenAI-compatible chat-completions URL, ending in {CHAT_COMPLETIONS} (a query may follow)"))
    })?;
    let deployment = base
        .rsplit_once("/deployments/")
        .map(|(_, name)| name.to_owned())
        .filter(|n| !n.is_empty() && !n.contains('/'));
    let base = match query {
        Some(query) if !query.is_empty() => format!("{base}?{query}"),
        _ => base.to_owned(),
    };
    Ok((base, deployment))
}

/// `llm.greeting_message` with `llm.greeting_configs`.
fn greeting(
    configs: Option<&wire::GreetingConfigs>,
    message: Option<String>,
    vars: &BTreeMap<String, String>,
    w: &mut Warnings,
) -> Checked<Option<model::Greeting>> {
    if let Some(configs) = configs {
        if configs.mode.as_deref().is_some_and(|mode| mode == "single_every") {
            w.ignored("llm.greeting_configs.mode", "the greeting is said once, when the first user joins");
        } else if let Some(mode) = configs.mode.as_deref().filter(|mode| *mode != "single_first") {
            return Err(invalid(
                "llm.greeting_configs.mode",
                format!("llm.greeting_configs.mode is {mode:?}; expected single_every or single_first"),
            ));
        }
        if configs.delay_ms.is_some_and(|d| d != 0) {
            w.ignored("llm.greeting_configs.delay_ms", "the greeting is said as soon as the user joins");
        }
    }
    let Some(greeting) = message.filter(|g| !g.is_empty()) else { return Ok(None) };
    Ok(Some(model::Greeting {
        text: text("llm.greeting_message", substitute(greeting, vars))?,
        interruptible: configs.and_then(|c| c.interruptable).unwrap_or(true),
    }))
}

pub(super) fn llm(
    spec: &mut AgentSpec,
    llm: wire::Llm,
    w: &mut Warnings,
    models: &dyn LocalModels,
) -> Checked<BTreeMap<String, String>> {
    let vars = llm.template_variables.clone().unwrap_or_default();
    refuse_llm_features(&llm, w)?;
    let model = model_name(llm.params.as_ref())?;
    spec.llm.provider = llm_provider(&llm, model, w, models)?;
    if let Some(messages) = llm.system_messages {
        spec.llm.system_messages = prompt_messages("llm.system_messages", messages, &vars)?;
    }
    if let Some(params) = &llm.params {
        spec.llm.params = llm_params("llm.params", params, w)?;
    }
    if let Some(max) = llm.max_history {
        spec.max_history = u32_in_range("llm.max_history", max, AgentSpec::MAX_HISTORY_RANGE)?;
    }
    if let Some(greeting) = greeting(llm.greeting_configs.as_ref(), llm.greeting_message, &vars, w)? {
        spec.greeting = Some(greeting);
    }
    if let Some(message) = llm.failure_message.filter(|m| !m.is_empty()) {
        spec.failure_message = Some(text("llm.failure_message", substitute(message, &vars))?);
    }
    if llm.silence_message.is_some() {
        w.ignored("llm.silence_message", "deprecated; use parameters.silence_config");
    }
    Ok(vars)
}
