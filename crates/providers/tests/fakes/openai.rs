//! OpenAI's chat completions stream (`POST /v1/chat/completions` with `"stream": true`), after
//! OpenAI's API reference "Create chat completion" and "The chat completion chunk object", and the
//! function-calling guide's "Streaming" section: one `chat.completion.chunk` per SSE event; a tool
//! call's first piece brings its `index`, `id`, `type` and `function.name` with empty
//! `arguments`, later pieces more `function.arguments` under the same `index`; the pieces of
//! parallel calls may interleave; the last choice chunk has `finish_reason: "tool_calls"` (or
//! `"stop"`), a usage chunk with no choices follows when `stream_options.include_usage` asked for
//! it, then `data: [DONE]`.

// Each test binary uses part of it.
#![allow(dead_code)]

use serde_json::{Value, json};

fn chunk(delta: Value, finish_reason: Option<&str>) -> String {
    let body = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_765_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    });
    format!("data: {body}\n\n")
}

fn ending(finish_reason: &str) -> Vec<String> {
    let usage = json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_765_000_000, "model": "gpt-4o-mini",
        "choices": [], "usage": {"prompt_tokens": 42, "completion_tokens": 9, "total_tokens": 51},
    });
    vec![chunk(json!({}), Some(finish_reason)), format!("data: {usage}\n\n"), "data: [DONE]\n\n".to_owned()]
}

/// The events of an answer that calls `calls` (id, name, arguments) in parallel, their arguments
/// in pieces of at most `piece` characters, the calls' pieces interleaved.
pub fn tool_call_events(calls: &[(&str, &str, &str)], piece: usize) -> Vec<String> {
    let mut events = Vec::new();
    for (index, (id, name, _)) in calls.iter().enumerate() {
        let call = json!({"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}});
        let mut delta = json!({"tool_calls": [call]});
        if index == 0 {
            delta["role"] = "assistant".into();
            delta["content"] = Value::Null;
        }
        events.push(chunk(delta, None));
    }
    let pieces: Vec<Vec<String>> = calls
        .iter()
        .map(|(_, _, arguments)| {
            let chars: Vec<char> = arguments.chars().collect();
            chars.chunks(piece.max(1)).map(|c| c.iter().collect()).collect()
        })
        .collect();
    let longest = pieces.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..longest {
        for (index, call_pieces) in pieces.iter().enumerate() {
            if let Some(arguments) = call_pieces.get(round) {
                let call = json!({"index": index, "function": {"arguments": arguments}});
                events.push(chunk(json!({"tool_calls": [call]}), None));
            }
        }
    }
    events.extend(ending("tool_calls"));
    events
}

/// The events of an answer that says `text`, a word per chunk.
pub fn text_events(text: &str) -> Vec<String> {
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    events.extend(text.split_inclusive(' ').map(|word| chunk(json!({"content": word}), None)));
    events.extend(ending("stop"));
    events
}
