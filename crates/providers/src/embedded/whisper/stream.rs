//! The streaming path: audio in as it arrives, partial transcripts while it does, the final one
//! when the sender is dropped. Decodes run on tokio's blocking pool; the stream polls them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

use super::{Inner, WhisperAsr};
use crate::asr::{ASR_SAMPLE_RATE, AsrEvent, AsrProvider, AsrRequest};
use crate::{ProviderError, ProviderStream, TurnId};

/// A decode's result: the text, or `None` if it was stopped.
type Outcome = Result<Option<String>, ProviderError>;

impl AsrProvider for WhisperAsr {
    fn transcribe(&self, request: AsrRequest) -> ProviderStream<AsrEvent> {
        let prompt = match self.inner.prompt(&request.language) {
            Ok(prompt) => Arc::new(prompt),
            Err(e) => return futures_util::stream::once(async move { Err(e) }).boxed(),
        };
        let interval = self.partial_interval.map(|d| (d.as_secs_f64() * f64::from(ASR_SAMPLE_RATE)).max(1.0) as usize);
        let session = Session {
            inner: Arc::clone(&self.inner),
            prompt,
            interval,
            turn: request.turn,
            audio: Some(request.audio),
            samples: Vec::new(),
            partial: None,
            last: None,
            cancelled: Arc::new(AtomicBool::new(false)),
            done: false,
        };
        futures_util::stream::unfold(session, |mut session| async move {
            let event = session.next().await?;
            Some((event, session))
        })
        .boxed()
    }
}

/// A partial decode in flight.
struct Partial {
    handle: JoinHandle<Outcome>,
    /// Set to abandon it (the audio ended; the final decode supersedes it).
    stop: Arc<AtomicBool>,
    /// How many samples it decodes.
    samples: usize,
}

struct Session {
    inner: Arc<Inner>,
    prompt: Arc<Vec<u32>>,
    /// New samples between partial decodes; `None`: no partials.
    interval: Option<usize>,
    turn: TurnId,
    /// `None` once the utterance has ended.
    audio: Option<mpsc::Receiver<Vec<f32>>>,
    samples: Vec<f32>,
    partial: Option<Partial>,
    /// The last partial's sample count and text.
    last: Option<(usize, String)>,
    /// Set when the stream is dropped: every decode of the session stops at its next step.
    cancelled: Arc<AtomicBool>,
    done: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

enum Step {
    Audio(Option<Vec<f32>>),
    Partial(Result<Outcome, JoinError>),
}

impl Session {
    async fn next(&mut self) -> Option<Result<AsrEvent, ProviderError>> {
        if self.done {
            return None;
        }
        while let Some(audio) = self.audio.as_mut() {
            let partial = &mut self.partial;
            let step = tokio::select! {
                chunk = audio.recv() => Step::Audio(chunk),
                decoded = async { (&mut partial.as_mut().expect("guarded by the condition").handle).await },
                    if partial.is_some() => Step::Partial(decoded),
            };
            match step {
                Step::Audio(Some(chunk)) => {
                    self.samples.extend_from_slice(&chunk);
                    self.start_partial();
                }
                Step::Audio(None) => self.audio = None,
                Step::Partial(decoded) => {
                    let samples = self.partial.take().map(|p| p.samples).unwrap_or_default();
                    match flatten(decoded) {
                        Ok(Some(text)) => {
                            let changed = self.last.as_ref().is_none_or(|(_, last)| *last != text);
                            self.last = Some((samples, text.clone()));
                            self.start_partial();
                            if changed && !text.is_empty() {
                                return Some(Ok(AsrEvent::Partial { turn: self.turn, text }));
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
            }
        }
        // The utterance ended: abandon the partial in flight, decode the whole.
        self.done = true;
        if let Some(partial) = self.partial.take() {
            partial.stop.store(true, Ordering::Relaxed);
        }
        // (Even when the last partial covered all the audio: partials skip the whole-window
        // fallback, and the final transcript is the same as `transcribe_blocking`'s.)
        let (inner, prompt, cancelled) =
            (Arc::clone(&self.inner), Arc::clone(&self.prompt), Arc::clone(&self.cancelled));
        let samples = std::mem::take(&mut self.samples);
        let decoded = tokio::task::spawn_blocking(move || {
            inner.transcribe(&samples, &prompt, true, &|| cancelled.load(Ordering::Relaxed))
        })
        .await;
        let text = match flatten(decoded) {
            Ok(Some(text)) => text,
            // Stopped: the stream was dropped, nobody is listening.
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(AsrEvent::Final { turn: self.turn, text }))
    }

    /// Starts a partial decode of everything so far, if there is enough new audio and none runs.
    fn start_partial(&mut self) {
        let Some(interval) = self.interval else { return };
        let decoded = self.last.as_ref().map(|(n, _)| *n).unwrap_or(0);
        if self.partial.is_some() || self.samples.len() < decoded + interval {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (inner, prompt, cancelled, abandoned) =
            (Arc::clone(&self.inner), Arc::clone(&self.prompt), Arc::clone(&self.cancelled), Arc::clone(&stop));
        let samples = self.samples.clone();
        let count = samples.len();
        let handle = tokio::task::spawn_blocking(move || {
            inner.transcribe(&samples, &prompt, false, &|| {
                cancelled.load(Ordering::Relaxed) || abandoned.load(Ordering::Relaxed)
            })
        });
        self.partial = Some(Partial { handle, stop, samples: count });
    }
}

fn flatten(decoded: Result<Outcome, JoinError>) -> Outcome {
    decoded.map_err(|e| ProviderError::Unavailable(format!("the Whisper task failed: {e}")))?
}
