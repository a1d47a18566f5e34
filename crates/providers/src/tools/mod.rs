//! Running an agent's tools: where a call the LLM asked for goes, and what comes back as its
//! [`ToolOutcome`]. Every failure is an outcome too (the LLM is told and the turn goes on), never
//! an error of the agent.

mod http;

pub use http::{HttpToolCall, HttpTools};

/// The largest result passed on to the LLM, in bytes of JSON text; a larger one is a failed call.
pub const MAX_RESULT_BYTES: usize = 16 * 1024;

/// A result that is too large, as the LLM is told.
pub fn oversized(bytes: usize) -> String {
    format!("the result is {bytes} bytes, over the {MAX_RESULT_BYTES}-byte limit")
}
