//! The internal model of colloquy: what an agent is, how it is configured, which lifecycle state it
//! is in, and what its conversation left behind (turns and history).
//!
//! Every dialect at the HTTP edge (native `/v1`, and the vendor dialects) translates its requests into
//! these types and its responses out of them. Nothing here knows HTTP, JSON dialects, SQL, sockets or
//! clocks. The serde derives exist only so that the store can keep a record of a configuration; they
//! are not a wire format and no dialect exposes them directly.

mod commands;
mod config;
mod ids;
mod lifecycle;
mod profile;
mod records;
pub mod signature;
mod tools;
mod vendor;

pub use commands::*;
pub use config::*;
pub use ids::*;
pub use lifecycle::*;
pub use profile::*;
pub use records::*;
pub use tools::*;
pub use vendor::*;

/// A point in wall-clock time, in milliseconds since the Unix epoch. Records carry these; the model
/// never reads a clock itself: whoever creates a record passes the time in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub i64);
