//! `POST {url}/chat/completions` with `"stream": true`.

use std::collections::VecDeque;

use colloquy_model::{PromptRole, RemoteEndpoint, ToolChoice};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::OpenAiClient;
use super::sse::SseParser;
use super::tool_calls::ToolCallAssembler;
use crate::llm::{LlmEvent, LlmProvider, LlmRequest, ToolUse};
use crate::{ProviderError, ProviderStream, TurnId};

/// Any OpenAI-compatible chat completions server.
#[derive(Debug)]
pub struct RemoteLlm {
    client: OpenAiClient,
}

impl RemoteLlm {
    pub fn new(endpoint: RemoteEndpoint) -> Result<RemoteLlm, ProviderError> {
        Ok(RemoteLlm { client: OpenAiClient::new(endpoint)? })
    }
}

fn role(role: PromptRole) -> &'static str {
    match role {
        PromptRole::System => "system",
        PromptRole::User => "user",
        PromptRole::Assistant => "assistant",
    }
}

enum Phase {
    Start(OpenAiClient, serde_json::Value),
    Streaming(BoxStream<'static, reqwest::Result<bytes::Bytes>>, std::time::Duration),
    Over,
}

struct State {
    turn: TurnId,
    phase: Phase,
    parser: SseParser,
    /// Events parsed and not yet yielded.
    ready: VecDeque<Result<LlmEvent, ProviderError>>,
    usage: Option<(u32, u32)>,
    deltas: usize,
    tool_calls: ToolCallAssembler,
}

impl LlmProvider for RemoteLlm {
    fn chat(&self, request: LlmRequest) -> ProviderStream<LlmEvent> {
        let mut messages: Vec<_> =
            request.messages.iter().map(|m| serde_json::json!({"role": role(m.role), "content": m.content})).collect();
        messages.extend(tool_messages(&request.tools));
        let mut body = serde_json::json!({
            "model": self.client.endpoint().model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": request.params.temperature,
            "top_p": request.params.top_p,
            "max_tokens": request.params.max_tokens,
        });
        if !request.tools.functions.is_empty() {
            body["tools"] = request.tools.functions.iter().map(tool_json).collect();
            body["tool_choice"] = serde_json::Value::from(match request.tools.choice {
                ToolChoice::Auto => "auto",
                ToolChoice::None => "none",
            });
        }
        let state = State {
            turn: request.turn,
            phase: Phase::Start(self.client.clone(), body),
            parser: SseParser::default(),
            ready: VecDeque::new(),
            usage: None,
            deltas: 0,
            tool_calls: ToolCallAssembler::default(),
        };
        Box::pin(futures_util::stream::unfold(state, next))
    }
}

async fn next(mut state: State) -> Option<(Result<LlmEvent, ProviderError>, State)> {
    loop {
        if let Some(event) = state.ready.pop_front() {
            return Some((event, state));
        }
        match std::mem::replace(&mut state.phase, Phase::Over) {
            Phase::Over => return None,
            Phase::Start(client, body) => match client.send("chat/completions", &|r| r.json(&body)).await {
                Ok(response) => state.phase = Phase::Streaming(response.bytes_stream().boxed(), client.timeout()),
                Err(e) => state.ready.push_back(Err(e)),
            },
            Phase::Streaming(mut bytes, timeout) => {
                while let Some(data) = state.parser.next_event() {
                    if data.trim() == "[DONE]" {
                        match std::mem::take(&mut state.tool_calls).finish() {
                            Ok(calls) => state.ready.extend(
                                calls.into_iter().map(|call| Ok(LlmEvent::ToolCall { turn: state.turn, call })),
                            ),
                            Err(e) => {
                                state.ready.push_back(Err(e));
                                break;
                            }
                        }
                        if let Some((prompt_tokens, completion_tokens)) = state.usage {
                            state.ready.push_back(Ok(LlmEvent::Usage {
                                turn: state.turn,
                                prompt_tokens,
                                completion_tokens,
                            }));
                        }
                        state.ready.push_back(Ok(LlmEvent::Done { turn: state.turn }));
                        break;
                    }
                    match parse_chunk(&data) {
                        Ok(Chunk { text, usage, tool_calls }) => {
                            if let Some(usage) = usage {
                                state.usage = Some(usage);
                            }
                            if let Some(pieces) = tool_calls
                                && let Err(e) = state.tool_calls.push(&pieces)
                            {
                                state.ready.push_back(Err(e));
                                break;
                            }
                            if let Some(text) = text.filter(|t| !t.is_empty()) {
                                state.deltas += 1;
                                state.ready.push_back(Ok(LlmEvent::Delta { turn: state.turn, text }));
                            }
                        }
                        Err(e) => {
                            state.ready.push_back(Err(e));
                            break;
                        }
                    }
                }
                let finished = state.ready.back().is_some_and(|e| matches!(e, Ok(LlmEvent::Done { .. }) | Err(_)));
                if finished || !state.ready.is_empty() {
                    if !finished {
                        state.phase = Phase::Streaming(bytes, timeout);
                    }
                    continue;
                }
                match tokio::time::timeout(timeout, bytes.next()).await {
                    Err(_) => state.ready.push_back(Err(ProviderError::CutStream(format!(
                        "no data for {timeout:?} after {} deltas",
                        state.deltas
                    )))),
                    Ok(None) => state.ready.push_back(Err(ProviderError::CutStream(format!(
                        "the stream ended without [DONE] after {} deltas",
                        state.deltas
                    )))),
                    Ok(Some(Err(e))) => state.ready.push_back(Err(ProviderError::CutStream(format!(
                        "{} after {} deltas",
                        super::describe(e),
                        state.deltas
                    )))),
                    Ok(Some(Ok(chunk))) => {
                        state.parser.push(&chunk);
                        state.phase = Phase::Streaming(bytes, timeout);
                    }
                }
            }
        }
    }
}

/// What one chunk of a chat completion stream carries.
struct Chunk {
    text: Option<String>,
    /// Prompt and completion tokens, in the chunk that reports usage.
    usage: Option<(u32, u32)>,
    /// Pieces of tool calls (`delta.tool_calls`).
    tool_calls: Option<serde_json::Value>,
}

fn parse_chunk(data: &str) -> Result<Chunk, ProviderError> {
    let value: serde_json::Value = serde_json::from_str(data)
        .map_err(|e| ProviderError::BadResponse(format!("a stream chunk is not JSON ({e}): {:.200}", data)))?;
    if let Some(error) = value.get("error") {
        let message = error["message"].as_str().unwrap_or("unknown error");
        return Err(ProviderError::CutStream(format!("the provider reported an error mid-stream: {message}")));
    }
    let delta = &value["choices"][0]["delta"];
    let text = delta["content"].as_str().map(str::to_owned);
    let tool_calls = delta.get("tool_calls").filter(|t| !t.is_null()).cloned();
    let usage = value.get("usage").filter(|u| u.is_object()).map(|u| {
        (u["prompt_tokens"].as_u64().unwrap_or(0) as u32, u["completion_tokens"].as_u64().unwrap_or(0) as u32)
    });
    Ok(Chunk { text, usage, tool_calls })
}

/// A tool as the `tools` list offers it. Its parameters were checked to be JSON when the agent
/// was started; a schema that is not (it cannot happen) is sent as an empty object schema.
fn tool_json(function: &colloquy_model::ToolFunction) -> serde_json::Value {
    let parameters = serde_json::from_str::<serde_json::Value>(&function.parameters)
        .unwrap_or_else(|_| serde_json::json!({"type": "object", "properties": {}}));
    serde_json::json!({
        "type": "function",
        "function": {"name": function.name, "description": function.description, "parameters": parameters},
    })
}

/// Each round of the turn: the assistant's message asking for its calls, then one `tool` message
/// per call with its result.
fn tool_messages(tools: &ToolUse) -> Vec<serde_json::Value> {
    let mut messages = Vec::new();
    for round in &tools.rounds {
        let calls: Vec<_> = round
            .calls
            .iter()
            .map(|(call, _)| {
                serde_json::json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                })
            })
            .collect();
        let content = if round.text.is_empty() { serde_json::Value::Null } else { round.text.clone().into() };
        messages.push(serde_json::json!({"role": "assistant", "content": content, "tool_calls": calls}));
        for (call, outcome) in &round.calls {
            messages.push(serde_json::json!({"role": "tool", "tool_call_id": call.id, "content": outcome.content()}));
        }
    }
    messages
}
