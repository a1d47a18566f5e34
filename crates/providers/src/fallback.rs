//! Fallbacks: a chain of providers of one kind, where a failure moves the agent to the next link.
//!
//! The request that failed still fails (the engine reports it: `message.error`, the error webhook,
//! the metrics), and the next request goes to the next link: the next utterance for ASR, the next
//! clause for TTS — which, when the reply failed, is the agent's failure message. The last link
//! stays once reached. A TTS chain may also name a `failover` voice for the one request after a
//! failure when there is no next link, so that the failure message is heard even when the only
//! vendor is down: the embedded voice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::StreamExt;

use crate::ProviderStream;
use crate::asr::{AsrEvent, AsrProvider, AsrRequest};
use crate::tts::{TtsChunk, TtsProvider, TtsRequest};

/// Speech recognisers tried in order: a failure moves to the next from the next utterance.
#[derive(Debug)]
pub struct FallbackAsr {
    links: Vec<Arc<dyn AsrProvider>>,
    current: Arc<AtomicUsize>,
}

impl FallbackAsr {
    /// `links[0]` first. Panics on an empty chain.
    pub fn new(links: Vec<Arc<dyn AsrProvider>>) -> FallbackAsr {
        assert!(!links.is_empty(), "a fallback chain has at least one link");
        FallbackAsr { links, current: Arc::new(AtomicUsize::new(0)) }
    }

    /// The link now in use (0 is the first).
    pub fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }
}

impl AsrProvider for FallbackAsr {
    fn transcribe(&self, request: AsrRequest) -> ProviderStream<AsrEvent> {
        let link = self.current();
        let (current, last) = (Arc::clone(&self.current), self.links.len() - 1);
        let stream = self.links[link].transcribe(request);
        Box::pin(stream.inspect(move |event| {
            if let Err(error) = event {
                advance(&current, link, last, error);
            }
        }))
    }
}

/// One link of a TTS chain: the synthesiser and the voice it speaks with (`None`: the request's,
/// which the agent's updates change; only the first link has none).
#[derive(Debug, Clone)]
pub struct TtsLink {
    pub provider: Arc<dyn TtsProvider>,
    pub voice: Option<String>,
}

/// Speech synthesisers tried in order: a failure moves to the next from the next clause.
#[derive(Debug)]
pub struct FallbackTts {
    links: Vec<TtsLink>,
    current: Arc<AtomicUsize>,
    /// Speaks the one request after a failure of the last link.
    failover: Option<TtsLink>,
    failover_next: Arc<AtomicBool>,
}

impl FallbackTts {
    /// `links[0]` first; `failover` speaks once after the last link fails. Panics on an empty chain.
    pub fn new(links: Vec<TtsLink>, failover: Option<TtsLink>) -> FallbackTts {
        assert!(!links.is_empty(), "a fallback chain has at least one link");
        FallbackTts { links, current: Arc::new(AtomicUsize::new(0)), failover, failover_next: Arc::default() }
    }

    /// The link now in use (0 is the first).
    pub fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }
}

impl TtsProvider for FallbackTts {
    fn synthesize(&self, mut request: TtsRequest) -> ProviderStream<TtsChunk> {
        if let Some(failover) = &self.failover
            && self.failover_next.swap(false, Ordering::SeqCst)
        {
            if let Some(voice) = &failover.voice {
                request.voice = voice.clone();
            }
            return failover.provider.synthesize(request);
        }
        let link = self.current();
        let (current, last) = (Arc::clone(&self.current), self.links.len() - 1);
        let failover_next = self.failover.is_some().then(|| Arc::clone(&self.failover_next));
        if let Some(voice) = &self.links[link].voice {
            request.voice = voice.clone();
        }
        let stream = self.links[link].provider.synthesize(request);
        Box::pin(stream.inspect(move |chunk| {
            if let Err(error) = chunk {
                if link == last
                    && let Some(next) = &failover_next
                {
                    next.store(true, Ordering::SeqCst);
                }
                advance(&current, link, last, error);
            }
        }))
    }
}

/// After `link` failed, the chain moves on to the next link, if there is one and it has not
/// moved already.
fn advance(current: &AtomicUsize, link: usize, last: usize, error: &crate::ProviderError) {
    if link < last && current.compare_exchange(link, link + 1, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
        tracing::warn!(%error, from = link, to = link + 1, "a provider failed; its fallback takes over");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProviderError, TurnId};

    #[derive(Debug)]
    struct Voice {
        name: &'static str,
        fails: bool,
    }

    impl TtsProvider for Voice {
        fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk> {
            let result = if self.fails {
                Err(ProviderError::Unavailable(format!("{} is down", self.name)))
            } else {
                let pcm = vec![request.voice.len() as i16; 4];
                Ok(TtsChunk { turn: request.turn, sample_rate: 16_000, pcm })
            };
            Box::pin(futures_util::stream::iter([result]))
        }
    }

    fn link(name: &'static str, fails: bool, voice: Option<&str>) -> TtsLink {
        TtsLink { provider: Arc::new(Voice { name, fails }), voice: voice.map(str::to_owned) }
    }

    async fn say(tts: &FallbackTts, voice: &str) -> Result<Vec<i16>, ProviderError> {
        let request = TtsRequest { turn: TurnId(1), text: "hi".into(), voice: voice.into(), speed: 1.0 };
        let mut out = Vec::new();
        let mut chunks = tts.synthesize(request);
        while let Some(chunk) = chunks.next().await {
            out.extend(chunk?.pcm);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_failure_moves_the_next_request_to_the_next_link_with_its_voice() {
        let tts = FallbackTts::new(vec![link("vendor", true, None), link("local", false, Some("joe"))], None);
        assert!(say(&tts, "vendor-voice").await.is_err(), "the failed request still fails");
        assert_eq!(tts.current(), 1);
        assert_eq!(say(&tts, "vendor-voice").await.unwrap(), [3; 4], "the fallback speaks with its own voice");
        assert_eq!(tts.current(), 1, "and stays");
    }

    #[tokio::test]
    async fn without_a_next_link_the_failover_speaks_once() {
        let tts = FallbackTts::new(vec![link("vendor", true, None)], Some(link("local", false, Some("joe"))));
        assert!(say(&tts, "v").await.is_err());
        assert_eq!(say(&tts, "v").await.unwrap(), [3; 4], "the failure message is heard");
        assert!(say(&tts, "v").await.is_err(), "then the vendor is tried again");
    }
}
