//! Tools an agent's LLM may call in the middle of a turn: what each one is (the function the LLM
//! sees, and where a call goes), the calls the LLM asks for, their outcomes, and the rounds of a
//! turn (calls asked, results given back) that go with the next request to the LLM.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// An agent's tools and how the conversation uses them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tools {
    /// The tools the LLM is offered, each name once.
    pub available: Vec<Tool>,
    /// How many rounds of calls one turn may make; the request after the last round says that no
    /// more calls may be made, so the model answers in words.
    pub max_rounds: u32,
    /// How long a round of calls may run before the agent says a filler.
    pub filler_after_ms: u32,
    /// What the agent says while a tool runs (one of them, once per turn); none when empty.
    pub fillers: Vec<String>,
    /// Each call's end is posted to the agent's callbacks (native: `agent.tool_called`).
    #[serde(default)]
    pub webhooks: bool,
}

impl Tools {
    pub const DEFAULT_MAX_ROUNDS: u32 = 3;
    pub const MAX_ROUNDS_RANGE: RangeInclusive<u32> = 1..=10;
    pub const DEFAULT_FILLER_AFTER_MS: u32 = 800;
    pub const FILLER_AFTER_RANGE_MS: RangeInclusive<u32> = 0..=60_000;
    pub const DEFAULT_FILLER: &'static str = "One moment.";
    /// The most tools an agent may have.
    pub const MAX_TOOLS: usize = 64;

    /// No tools.
    pub fn none() -> Tools {
        Tools {
            available: Vec::new(),
            max_rounds: Self::DEFAULT_MAX_ROUNDS,
            filler_after_ms: Self::DEFAULT_FILLER_AFTER_MS,
            fillers: vec![Self::DEFAULT_FILLER.to_owned()],
            webhooks: false,
        }
    }

    pub fn find(&self, name: &str) -> Option<&Tool> {
        self.available.iter().find(|tool| tool.function.name == name)
    }

    /// The functions as the LLM is offered them.
    pub fn functions(&self) -> Vec<ToolFunction> {
        self.available.iter().map(|tool| tool.function.clone()).collect()
    }
}

impl Default for Tools {
    fn default() -> Tools {
        Tools::none()
    }
}

/// One tool: the function the LLM sees, and where its calls go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub function: ToolFunction,
    /// How long a call may take before it counts as failed (and the LLM is told so).
    pub timeout_ms: u32,
    pub kind: ToolKind,
}

impl Tool {
    pub const DEFAULT_TIMEOUT_MS: u32 = 5_000;
    pub const TIMEOUT_RANGE_MS: RangeInclusive<u32> = 100..=60_000;
    pub const END_CALL: &'static str = "end_call";

    /// The built-in `end_call` tool.
    pub fn end_call() -> Tool {
        Tool {
            function: ToolFunction {
                name: Self::END_CALL.to_owned(),
                description: "End the call, when the user says goodbye or the conversation is over. Say a short \
                     goodbye in the same answer."
                    .to_owned(),
                parameters: r#"{"type":"object","properties":{}}"#.to_owned(),
            },
            timeout_ms: Self::DEFAULT_TIMEOUT_MS,
            kind: ToolKind::EndCall,
        }
    }
}

/// What the LLM is told about a tool (OpenAI's `function` object).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolFunction {
    /// 1 to 64 of `a-z A-Z 0-9 _ -`, as OpenAI requires.
    pub name: String,
    pub description: String,
    /// A JSON Schema of the arguments (an object schema), as JSON text.
    pub parameters: String,
}

impl ToolFunction {
    pub const MAX_NAME_CHARS: usize = 64;

    /// Whether `name` is a valid tool name.
    pub fn valid_name(name: &str) -> bool {
        (1..=Self::MAX_NAME_CHARS).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }
}

/// Where a tool's calls go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// A POST of the arguments to `url`, signed with the agent's callback secret; the JSON answer
    /// is the result.
    Http { url: String },
    /// A tool the people in the channel implement (a web page showing a map, filling a form): a
    /// call goes to them as a data-channel `tool.call`, and the first `tool.result` naming its id
    /// is the result.
    Client,
    /// The built-in `end_call`: the agent says its goodbye and leaves (`ended_by_agent`). The
    /// conversation core answers it itself.
    EndCall,
}

/// A call the LLM asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The LLM's id of the call, which its result names.
    pub id: String,
    pub name: String,
    /// The arguments as the LLM wrote them (JSON text, not checked).
    pub arguments: String,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolOutcome {
    /// The tool's result, as JSON text.
    Ok(String),
    /// The call failed (an error, a timeout, an unknown tool); the LLM is told why.
    Failed(String),
}

impl ToolOutcome {
    /// The content of the `tool` message the LLM gets.
    pub fn content(&self) -> String {
        match self {
            ToolOutcome::Ok(result) => result.clone(),
            ToolOutcome::Failed(error) => serde_json::json!({ "error": error }).to_string(),
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, ToolOutcome::Ok(_))
    }

    /// A tool call with this outcome as the history keeps it: `{"call_id", "name", "arguments",
    /// "result" or "error", "tool_ms"}`, the arguments and result as the JSON text they were.
    pub fn history_content(&self, call: &ToolCall, tool_ms: u32) -> String {
        let mut entry = serde_json::json!({
            "call_id": call.id,
            "name": call.name,
            "arguments": call.arguments,
            "tool_ms": tool_ms,
        });
        match self {
            ToolOutcome::Ok(result) => entry["result"] = result.clone().into(),
            ToolOutcome::Failed(error) => entry["error"] = error.clone().into(),
        }
        entry.to_string()
    }
}

/// One round of a turn: what the LLM said and which calls it asked for, and each call's outcome,
/// in the order it asked for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolRound {
    /// Text the LLM wrote before asking (often empty).
    pub text: String,
    pub calls: Vec<(ToolCall, ToolOutcome)>,
}

/// Whether the LLM may ask for calls in an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// It may call tools or answer.
    Auto,
    /// It must answer in words (the turn's rounds are used up).
    None,
}

/// The tools side of one LLM request: what the model may call, the turn's rounds so far (each:
/// the calls asked, their results), and whether it may ask for more. A model that cannot call
/// tools refuses a request with any.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolUse {
    pub functions: Vec<ToolFunction>,
    /// Sent after the messages, in order.
    pub rounds: Vec<ToolRound>,
    pub choice: ToolChoice,
}

impl ToolUse {
    /// No tools at all.
    pub fn none() -> ToolUse {
        ToolUse { functions: Vec::new(), rounds: Vec::new(), choice: ToolChoice::None }
    }

    pub fn is_none(&self) -> bool {
        self.functions.is_empty() && self.rounds.is_empty()
    }
}
