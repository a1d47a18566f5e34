//! The checks of an agent's tools, whichever API carried them: names (OpenAI's rule, each once),
//! parameters as a JSON Schema of an object, timeouts, the tool options, and that the agent's LLM
//! can call tools at all. Each refusal names the field by its path in the caller's API.

use colloquy_model as model;
use colloquy_model::{AgentSpec, Tool, ToolFunction, Tools};
use serde_json::Value;

use crate::error::ApiError;
use crate::fields::{Checked, in_range, short_text, text};

/// The longest tool description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 1024;
/// The largest parameters schema, in bytes of JSON.
const MAX_SCHEMA_BYTES: usize = 16 * 1024;
/// The types a JSON Schema may name.
const SCHEMA_TYPES: &[&str] = &["object", "array", "string", "number", "integer", "boolean", "null"];

/// One tool's fields as any API carries them; `field` is where the API has the tool
/// (`tools[2]`).
#[derive(Debug)]
pub struct ToolFields {
    pub field: String,
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
    pub timeout_ms: Option<u32>,
    pub kind: model::ToolKind,
}

/// Checks one tool.
pub fn tool(fields: ToolFields) -> Checked<Tool> {
    let ToolFields { field, name, description, parameters, timeout_ms, kind } = fields;
    if !ToolFunction::valid_name(&name) {
        return Err(ApiError::invalid(
            format!("{field}.name"),
            format!("{field}.name must be 1 to 64 of a-z, A-Z, 0-9, _ and -"),
        ));
    }
    let description = match description {
        Some(description) if !description.is_empty() => {
            short_text(&format!("{field}.description"), description, MAX_DESCRIPTION_CHARS)?
        }
        _ => String::new(),
    };
    let parameters = match parameters {
        Some(schema) => {
            object_schema(&format!("{field}.parameters"), &schema)?;
            let text = schema.to_string();
            if text.len() > MAX_SCHEMA_BYTES {
                return Err(ApiError::invalid(
                    format!("{field}.parameters"),
                    format!("{field}.parameters is {} bytes of JSON; the maximum is {MAX_SCHEMA_BYTES}", text.len()),
                ));
            }
            text
        }
        None => r#"{"type":"object","properties":{}}"#.to_owned(),
    };
    let timeout_ms = match timeout_ms {
        Some(ms) => in_range(&format!("{field}.timeout_ms"), ms, Tool::TIMEOUT_RANGE_MS)?,
        None => Tool::DEFAULT_TIMEOUT_MS,
    };
    Ok(Tool { function: ToolFunction { name, description, parameters }, timeout_ms, kind })
}

/// The tool options as any API carries them.
#[derive(Debug, Default)]
pub struct ToolOptions {
    pub max_rounds: Option<u32>,
    pub filler_after_ms: Option<u32>,
    pub fillers: Option<Vec<String>>,
}

/// Checks an agent's tools (`list` is where the API has them: `tools`) and options (`options`,
/// e.g. `tool_options`).
pub fn tools(list: &str, available: Vec<Tool>, options: &str, given: ToolOptions) -> Checked<Tools> {
    if available.len() > Tools::MAX_TOOLS {
        return Err(ApiError::invalid(
            list,
            format!("{list} has {} tools; the maximum is {}", available.len(), Tools::MAX_TOOLS),
        ));
    }
    for (i, tool) in available.iter().enumerate() {
        if available[..i].iter().any(|t| t.function.name == tool.function.name) {
            return Err(ApiError::invalid(
                format!("{list}[{i}].name"),
                format!(
                    "{list}[{i}].name {:?} is the name of an earlier tool; names must be unique",
                    tool.function.name
                ),
            ));
        }
    }
    let mut tools = Tools { available, ..Tools::none() };
    if let Some(rounds) = given.max_rounds {
        tools.max_rounds = in_range(&format!("{options}.max_rounds"), rounds, Tools::MAX_ROUNDS_RANGE)?;
    }
    if let Some(ms) = given.filler_after_ms {
        tools.filler_after_ms = in_range(&format!("{options}.filler_after_ms"), ms, Tools::FILLER_AFTER_RANGE_MS)?;
    }
    if let Some(fillers) = given.fillers {
        tools.fillers = fillers
            .into_iter()
            .enumerate()
            .map(|(i, filler)| text(&format!("{options}.fillers[{i}]"), filler))
            .collect::<Checked<_>>()?;
    }
    Ok(tools)
}

/// An agent with tools needs an LLM that can call them: the embedded model cannot.
pub fn llm_can_call(list: &str, spec: &AgentSpec) -> Checked<()> {
    if !spec.tools.available.is_empty() && matches!(spec.llm.provider, model::LlmProvider::Local { .. }) {
        return Err(ApiError::invalid(
            list,
            format!("the embedded LLM cannot call tools; {list} needs an OpenAI-compatible LLM"),
        ));
    }
    Ok(())
}

/// The top of a parameters schema: an object schema, as OpenAI requires.
fn object_schema(field: &str, schema: &Value) -> Checked<()> {
    let Some(object) = schema.as_object() else {
        return Err(ApiError::invalid(field, format!("{field} must be a JSON Schema object")));
    };
    if object.get("type").is_some_and(|t| t != "object") {
        return Err(ApiError::invalid(format!("{field}.type"), format!("{field}.type must be \"object\"")));
    }
    subschema(field, schema)
}

/// The structure of the keywords a tool schema uses: `type` names JSON Schema types,
/// `properties` maps names to schemas, `required` lists strings, `items` is a schema, `enum` is
/// a list, `description` a string. Other keywords pass as they are.
fn subschema(field: &str, schema: &Value) -> Checked<()> {
    let Some(object) = schema.as_object() else {
        return Err(ApiError::invalid(field, format!("{field} must be a JSON Schema (an object)")));
    };
    let bad = |key: &str, what: &str| {
        let at = format!("{field}.{key}");
        Err(ApiError::invalid(at.clone(), format!("{at} {what}")))
    };
    if let Some(kind) = object.get("type") {
        let names: Vec<&Value> = match kind {
            Value::Array(names) => names.iter().collect(),
            name => vec![name],
        };
        if names.is_empty() || !names.iter().all(|n| n.as_str().is_some_and(|n| SCHEMA_TYPES.contains(&n))) {
            return bad("type", &format!("must be one of {} (or a list of them)", SCHEMA_TYPES.join(", ")));
        }
    }
    if let Some(properties) = object.get("properties") {
        let Some(properties) = properties.as_object() else { return bad("properties", "must be an object") };
        for (name, property) in properties {
            subschema(&format!("{field}.properties.{name}"), property)?;
        }
    }
    if let Some(required) = object.get("required")
        && !required.as_array().is_some_and(|r| r.iter().all(Value::is_string))
    {
        return bad("required", "must be a list of property names");
    }
    if let Some(items) = object.get("items") {
        subschema(&format!("{field}.items"), items)?;
    }
    if object.get("enum").is_some_and(|e| !e.is_array()) {
        return bad("enum", "must be a list");
    }
    if object.get("description").is_some_and(|d| !d.is_string()) {
        return bad("description", "must be a string");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(schema: Value) -> Option<String> {
        object_schema("tools[0].parameters", &schema).err().and_then(|e| e.field)
    }

    #[test]
    fn a_bad_schema_is_refused_naming_the_keyword() {
        let good = json!({"type": "object", "properties": {"city": {"type": "string", "description": "A city."},
            "days": {"type": ["integer", "null"]}, "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["city"]});
        assert_eq!(field_of(good), None);
        assert_eq!(field_of(json!("object")).as_deref(), Some("tools[0].parameters"));
        assert_eq!(field_of(json!({"type": "string"})).as_deref(), Some("tools[0].parameters.type"));
        let wrong_type = json!({"type": "object", "properties": {"city": {"type": "text"}}});
        assert_eq!(field_of(wrong_type).as_deref(), Some("tools[0].parameters.properties.city.type"));
        let required = json!({"type": "object", "required": "city"});
        assert_eq!(field_of(required).as_deref(), Some("tools[0].parameters.required"));
        let items = json!({"type": "object", "properties": {"t": {"type": "array", "items": [1]}}});
        assert_eq!(field_of(items).as_deref(), Some("tools[0].parameters.properties.t.items"));
    }
}
