//! The embedded WebRTC channel server (str0m, one UDP socket), RTC tokens, and the audio plumbing
//! (Opus, WAV, resampling) that the server, agents and the `colloquy call` client share.
//!
//! **API boundary:** this crate knows WebRTC, Opus and RTC tokens. It knows nothing of HTTP (the
//! HTTP crate carries WHIP offers to [`server::ChannelServer::join`]) and nothing of agents' minds:
//! an agent is a participant that reads and writes PCM frames.

pub mod audio;
pub mod server;
pub mod stun;
pub mod token;
