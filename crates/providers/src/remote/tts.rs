//! `POST {url}/audio/speech` with `"response_format": "pcm"`: 16-bit mono PCM (24 kHz at OpenAI),
//! yielded as it arrives. A server that answers WAV instead is read from its header.

use colloquy_model::RemoteEndpoint;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::OpenAiClient;
use crate::tts::{TtsChunk, TtsProvider, TtsRequest};
use crate::{ProviderError, ProviderStream, TurnId};

/// OpenAI's raw PCM rate.
pub const OPENAI_PCM_RATE: u32 = 24_000;

/// Any OpenAI-compatible speech server.
#[derive(Debug)]
pub struct RemoteTts {
    client: OpenAiClient,
}

impl RemoteTts {
    pub fn new(endpoint: RemoteEndpoint) -> Result<RemoteTts, ProviderError> {
        Ok(RemoteTts { client: OpenAiClient::new(endpoint)? })
    }
}

struct State {
    turn: TurnId,
    start: Option<(OpenAiClient, serde_json::Value)>,
    bytes: Option<(BoxStream<'static, reqwest::Result<bytes::Bytes>>, std::time::Duration)>,
    /// An odd byte left from the last chunk, or an unfinished WAV header.
    pending: Vec<u8>,
    rate: Option<u32>,
    received: usize,
}

impl TtsProvider for RemoteTts {
    fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk> {
        let body = serde_json::json!({
            "model": self.client.endpoint().model,
            "input": request.text,
            "voice": request.voice,
            "response_format": "pcm",
            "speed": request.speed,
        });
        let state = State {
            turn: request.turn,
            start: Some((self.client.clone(), body)),
            bytes: None,
            pending: Vec::new(),
            rate: None,
            received: 0,
        };
        Box::pin(futures_util::stream::unfold(state, next))
    }
}

async fn next(mut state: State) -> Option<(Result<TtsChunk, ProviderError>, State)> {
    if let Some((client, body)) = state.start.take() {
        match client.send("audio/speech", &|r| r.json(&body)).await {
            Ok(response) => state.bytes = Some((response.bytes_stream().boxed(), client.timeout())),
            Err(e) => return Some((Err(e), state)),
        }
    }
    loop {
        let timeout = state.bytes.as_ref()?.1;
        let next = {
            let (bytes, _) = state.bytes.as_mut()?;
            tokio::time::timeout(timeout, bytes.next()).await
        };
        let chunk = match next {
            Err(_) => {
                state.bytes = None;
                return Some((Err(ProviderError::CutStream(format!("no audio for {timeout:?}"))), state));
            }
            Ok(None) => {
                state.bytes = None;
                if state.received == 0 {
                    return Some((Err(ProviderError::BadResponse("the speech answer was empty".into())), state));
                }
                return None;
            }
            Ok(Some(Err(e))) => {
                state.bytes = None;
                return Some((Err(ProviderError::CutStream(super::describe(e))), state));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        state.received += chunk.len();
        state.pending.extend_from_slice(&chunk);
        if state.rate.is_none() {
            match wav_header(&state.pending) {
                WavHeader::NotWav => state.rate = Some(OPENAI_PCM_RATE),
                WavHeader::Incomplete => continue,
                WavHeader::Pcm16 { rate, data_start } => {
                    state.pending.drain(..data_start);
                    state.rate = Some(rate);
                }
                WavHeader::Unsupported(why) => {
                    state.bytes = None;
                    return Some((Err(ProviderError::BadResponse(why)), state));
                }
            }
        }
        let whole = state.pending.len() / 2 * 2;
        if whole == 0 {
            continue;
        }
        let pcm: Vec<i16> = state.pending[..whole].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        state.pending.drain(..whole);
        let chunk = TtsChunk { turn: state.turn, sample_rate: state.rate.unwrap_or(OPENAI_PCM_RATE), pcm };
        return Some((Ok(chunk), state));
    }
}

enum WavHeader {
    NotWav,
    Incomplete,
    Pcm16 { rate: u32, data_start: usize },
    Unsupported(String),
}

/// Reads a RIFF/WAVE header far enough to find 16-bit mono PCM data.
fn wav_header(bytes: &[u8]) -> WavHeader {
    if bytes.len() < 4 {
        return WavHeader::Incomplete;
    }
    if &bytes[..4] != b"RIFF" {
        return WavHeader::NotWav;
    }
    let mut at = 12;
    let mut rate = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]) as usize;
        if id == b"fmt " {
            if bytes.len() < at + 8 + 16 {
                return WavHeader::Incomplete;
            }
            let f = &bytes[at + 8..];
            let (format, channels) = (u16::from_le_bytes([f[0], f[1]]), u16::from_le_bytes([f[2], f[3]]));
            let bits = u16::from_le_bytes([f[14], f[15]]);
            if format != 1 || channels != 1 || bits != 16 {
                return WavHeader::Unsupported(format!(
                    "WAV speech must be 16-bit mono PCM, not format {format}, {channels} channels, {bits} bits"
                ));
            }
            rate = Some(u32::from_le_bytes([f[4], f[5], f[6], f[7]]));
        } else if id == b"data" {
            return match rate {
                Some(rate) => WavHeader::Pcm16 { rate, data_start: at + 8 },
                None => WavHeader::Unsupported("WAV data before its format".into()),
            };
        }
        at += 8 + len + len % 2;
    }
    WavHeader::Incomplete
}
