//! Tool calls as a chat completion stream sends them: `choices[0].delta.tool_calls`, a list of
//! pieces, each naming the `index` of its call; the first piece of a call brings its `id` and
//! `function.name`, later ones more of `function.arguments`, and pieces of parallel calls may
//! interleave. The calls are complete when the stream ends (`finish_reason: "tool_calls"`, then
//! `[DONE]`).

use colloquy_model::ToolCall;
use serde_json::Value;

use crate::ProviderError;

/// The calls of one answer, assembled from their pieces.
#[derive(Debug, Default)]
pub(super) struct ToolCallAssembler {
    /// By `index`, in the order first seen.
    calls: Vec<(u64, ToolCall)>,
}

impl ToolCallAssembler {
    /// Adds the pieces of one chunk's `delta.tool_calls`.
    pub(super) fn push(&mut self, pieces: &Value) -> Result<(), ProviderError> {
        let Some(pieces) = pieces.as_array() else {
            return Err(ProviderError::BadResponse(format!("tool_calls is not a list: {:.200}", pieces.to_string())));
        };
        for (position, piece) in pieces.iter().enumerate() {
            // Some servers leave `index` out when they send one call per chunk.
            let index = piece["index"].as_u64().unwrap_or(position as u64);
            let function = &piece["function"];
            let slot = match self.calls.iter().position(|(i, _)| *i == index) {
                Some(slot) => slot,
                None => {
                    let call = ToolCall { id: String::new(), name: String::new(), arguments: String::new() };
                    self.calls.push((index, call));
                    self.calls.len() - 1
                }
            };
            let call = &mut self.calls[slot].1;
            if let Some(id) = piece["id"].as_str().filter(|id| !id.is_empty()) {
                call.id = id.to_owned();
            }
            if let Some(name) = function["name"].as_str() {
                call.name.push_str(name);
            }
            if let Some(arguments) = function["arguments"].as_str() {
                call.arguments.push_str(arguments);
            }
        }
        Ok(())
    }

    /// The complete calls, in the model's order. A call without a name is a broken stream; one
    /// without an id gets one (its result must name it).
    pub(super) fn finish(self) -> Result<Vec<ToolCall>, ProviderError> {
        let mut calls = self.calls;
        calls.sort_by_key(|(index, _)| *index);
        calls
            .into_iter()
            .map(|(index, mut call)| {
                if call.name.is_empty() {
                    return Err(ProviderError::BadResponse(format!("tool call {index} has no function name")));
                }
                if call.id.is_empty() {
                    call.id = format!("call_{index}");
                }
                if call.arguments.trim().is_empty() {
                    call.arguments = "{}".into();
                }
                Ok(call)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn interleaved_pieces_of_parallel_calls_come_out_whole_and_in_order() {
        let mut calls = ToolCallAssembler::default();
        let first =
            json!([{"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}]);
        calls.push(&first).unwrap();
        calls.push(&json!([{"index": 0, "function": {"arguments": "{\"city\": \"Pa"}}])).unwrap();
        let second =
            json!([{"index": 1, "id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}]);
        calls.push(&second).unwrap();
        calls.push(&json!([{"index": 0, "function": {"arguments": "ris\"}"}}])).unwrap();
        assert_eq!(
            calls.finish().unwrap(),
            [
                ToolCall { id: "call_a".into(), name: "weather".into(), arguments: "{\"city\": \"Paris\"}".into() },
                ToolCall { id: "call_b".into(), name: "time".into(), arguments: "{}".into() },
            ]
        );
    }

    #[test]
    fn a_call_without_a_name_is_a_bad_response() {
        let mut calls = ToolCallAssembler::default();
        calls.push(&json!([{"index": 0, "id": "x", "function": {"arguments": "{}"}}])).unwrap();
        assert!(calls.finish().is_err());
        assert!(ToolCallAssembler::default().push(&json!({"index": 0})).is_err());
    }
}
