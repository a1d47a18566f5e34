//! The conversation core: one agent's voice conversation as a sans-IO state machine.
//!
//! [`Conversation`] takes [`Input`]s (audio and VAD results from the people it listens to, ASR
//! partials and finals, LLM deltas, TTS audio, API commands), each with the time it happened, and
//! produces [`Output`]s in the order they must be carried out (provider commands, 20 ms frames to
//! play, client events, records to keep) and the next deadline. It never reads a clock, never
//! blocks and owns no thread or socket, so a whole conversation runs on virtual time in a test, the
//! way str0m tests WebRTC:
//!
//! ```no_run
//! # use colloquy_conversation::{Conversation, Input, Output};
//! # fn drive(mut conversation: Conversation, mut next_input: impl FnMut(std::time::Instant) -> Option<(std::time::Instant, Input)>) {
//! loop {
//!     match conversation.poll_output() {
//!         Output::Timeout(deadline) => match next_input(deadline) {
//!             Some((at, input)) => conversation.handle_input(at, input),
//!             None => conversation.handle_timeout(deadline),
//!         },
//!         _other => { /* carry it out */ }
//!     }
//! }
//! # }
//! ```
//!
//! Behaviour, by module: [`speech`] finds where speech starts and ends (VAD threshold, minimum
//! speech, silence duration); [`clauses`] cuts the LLM's text into speakable clauses; [`playout`]
//! paces the agent's audio and knows what the user heard; [`conversation`] is turn-taking itself:
//! barge-in, keywords, append and ignore, greetings, `speak`/`think`/`interrupt`, the failure
//! message, the silence prompt, the idle timeout, and per-turn metrics.
//!
//! **Invariant:** nothing here touches a socket, a thread, a file or a clock; outside unit tests,
//! `crates/colloquy/tests/architecture.rs` checks the sources for any clock read or I/O module.

pub mod clauses;
pub mod conversation;
pub mod io;
pub mod playout;
pub mod speech;

pub use conversation::{Conversation, PROVIDER_STALL};
pub use io::*;

/// Lowercase words without punctuation, for matching keywords in transcripts.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || (c.is_ascii_punctuation() && c != '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}
