//! Deepgram: live streaming recognition (`listen.rs`, `/v1/listen`) and Aura streaming synthesis
//! (`speak.rs`, `/v1/speak`), both WebSocket with `Authorization: Token <key>`.

pub mod listen;
pub mod speak;

pub(super) use listen::ASR;
pub(super) use speak::TTS;
