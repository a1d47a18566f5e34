//! `POST {url}/chat/completions` with `"stream": true`.

use std::collections::VecDeque;

use colloquy_model::{PromptRole, RemoteEndpoint};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::OpenAiClient;
use super::sse::SseParser;
use crate::llm::{LlmEvent, LlmProvider, LlmRequest};
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
}

impl LlmProvider for RemoteLlm {
    fn chat(&self, request: LlmRequest) -> ProviderStream<LlmEvent> {
        let messages: Vec<_> =
            request.messages.iter().map(|m| serde_json::json!({"role": role(m.role), "content": m.content})).collect();
        let body = serde_json::json!({
            "model": self.client.endpoint().model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": request.params.temperature,
            "top_p": request.params.top_p,
            "max_tokens": request.params.max_tokens,
        });
        let state = State {
            turn: request.turn,
            phase: Phase::Start(self.client.clone(), body),
            parser: SseParser::default(),
            ready: VecDeque::new(),
            usage: None,
            deltas: 0,
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
                        Ok(Chunk { text, usage }) => {
                            if let Some(usage) = usage {
                                state.usage = Some(usage);
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
}

fn parse_chunk(data: &str) -> Result<Chunk, ProviderError> {
    let value: serde_json::Value = serde_json::from_str(data)
        .map_err(|e| ProviderError::BadResponse(format!("a stream chunk is not JSON ({e}): {:.200}", data)))?;
    if let Some(error) = value.get("error") {
        let message = error["message"].as_str().unwrap_or("unknown error");
        return Err(ProviderError::CutStream(format!("the provider reported an error mid-stream: {message}")));
    }
    let text = value["choices"][0]["delta"]["content"].as_str().map(str::to_owned);
    let usage = value.get("usage").filter(|u| u.is_object()).map(|u| {
        (u["prompt_tokens"].as_u64().unwrap_or(0) as u32, u["completion_tokens"].as_u64().unwrap_or(0) as u32)
    });
    Ok(Chunk { text, usage })
}
