//! Where the user's speech starts and ends, from VAD probabilities: the first half of turn-taking.
//!
//! A frame counts as speech when its probability reaches `vad_threshold`; once speech has started,
//! frames keep counting as speech down to [`HYSTERESIS`] below it (Silero's own recommendation), so
//! a soft syllable does not end a turn. Speech starts after `min_speech_ms` of speech frames (gaps
//! shorter than the same time are tolerated while it builds up); it ends after
//! `silence_duration_ms` of silence. Times are the ends of the frames that decided them.

use std::time::{Duration, Instant};

use colloquy_model::TurnDetection;

/// How far below the threshold a frame may fall and still continue speech that has started.
pub const HYSTERESIS: f32 = 0.15;

/// What one VAD result changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpeechChange {
    /// Nothing worth telling.
    None,
    /// Speech has lasted `min_speech_ms`: a turn (or an interruption) may begin. `began` is the
    /// start of its first speech frame.
    Started { began: Instant },
    /// `silence_duration_ms` of silence after speech. `last_speech` is the end of its last speech frame.
    Ended { last_speech: Instant },
}

#[derive(Clone, Copy, Debug)]
enum State {
    Quiet,
    /// Speech frames are adding up, not yet to `min_speech_ms`.
    Building {
        began: Instant,
        speech: Duration,
        gap: Duration,
    },
    /// Speech has started; `silence` is how long it has been quiet since `last_speech`.
    Speaking {
        began: Instant,
        last_speech: Instant,
        silence: Duration,
    },
}

/// The speech detector of one session.
#[derive(Clone, Debug)]
pub struct SpeechDetector {
    config: TurnDetection,
    state: State,
}

impl SpeechDetector {
    pub fn new(config: TurnDetection) -> SpeechDetector {
        SpeechDetector { config, state: State::Quiet }
    }

    /// Whether the user is speaking (speech has started and not yet ended).
    pub fn is_speaking(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    /// How long the current speech has lasted, from its first frame to its latest speech frame
    /// (silence after it does not count); zero when quiet.
    pub fn speech_duration(&self) -> Duration {
        match self.state {
            State::Speaking { began, last_speech, .. } => last_speech.saturating_duration_since(began),
            State::Building { speech, .. } => speech,
            State::Quiet => Duration::ZERO,
        }
    }

    /// Forgets speech in progress (the session stopped listening).
    pub fn reset(&mut self) {
        self.state = State::Quiet;
    }

    /// Takes the VAD result of the frame that ended at `end` and lasted `length`.
    pub fn push(&mut self, probability: f32, end: Instant, length: Duration) -> SpeechChange {
        let threshold = self.config.vad_threshold;
        let min_speech = Duration::from_millis(self.config.min_speech_ms.into());
        let silence_needed = Duration::from_millis(self.config.silence_duration_ms.into());
        match self.state {
            State::Quiet => {
                if probability >= threshold {
                    let began = end.checked_sub(length).unwrap_or(end);
                    self.state = State::Building { began, speech: length, gap: Duration::ZERO };
                    return self.check_built(end, min_speech);
                }
                SpeechChange::None
            }
            State::Building { began, speech, gap } => {
                if probability >= threshold {
                    self.state = State::Building { began, speech: speech + length, gap: Duration::ZERO };
                    self.check_built(end, min_speech)
                } else {
                    let gap = gap + length;
                    // A gap as long as the speech needed is the end of a click, not a pause.
                    self.state = if gap > min_speech.max(length) {
                        State::Quiet
                    } else {
                        State::Building { began, speech, gap }
                    };
                    SpeechChange::None
                }
            }
            State::Speaking { began, last_speech, silence } => {
                if probability >= threshold - HYSTERESIS {
                    self.state = State::Speaking { began, last_speech: end, silence: Duration::ZERO };
                    SpeechChange::None
                } else {
                    let silence = silence + length;
                    if silence >= silence_needed {
                        self.state = State::Quiet;
                        SpeechChange::Ended { last_speech }
                    } else {
                        self.state = State::Speaking { began, last_speech, silence };
                        SpeechChange::None
                    }
                }
            }
        }
    }

    fn check_built(&mut self, end: Instant, min_speech: Duration) -> SpeechChange {
        if let State::Building { began, speech, .. } = self.state
            && speech >= min_speech
        {
            self.state = State::Speaking { began, last_speech: end, silence: Duration::ZERO };
            return SpeechChange::Started { began };
        }
        SpeechChange::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(32);

    /// Runs a pattern of probabilities (one per 32 ms frame) and returns the changes with the index
    /// of the frame that caused each.
    fn run(config: TurnDetection, probabilities: &[f32]) -> Vec<(usize, SpeechChange)> {
        let start = Instant::now();
        let mut detector = SpeechDetector::new(config);
        probabilities
            .iter()
            .enumerate()
            .map(|(i, p)| (i, detector.push(*p, start + FRAME * (i as u32 + 1), FRAME)))
            .filter(|(_, change)| *change != SpeechChange::None)
            .collect()
    }

    #[test]
    fn speech_starts_after_the_minimum_and_ends_after_the_silence() {
        let config = TurnDetection { min_speech_ms: 96, silence_duration_ms: 320, ..TurnDetection::DEFAULT };
        let mut pattern = vec![0.1; 3];
        pattern.extend([0.9; 10]);
        pattern.extend([0.1; 12]);
        let changes = run(config, &pattern);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].0, 5, "three speech frames of 32 ms reach 96 ms");
        assert_eq!(changes[1].0, 22, "ten silent frames of 32 ms reach 320 ms");
    }

    #[test]
    fn a_click_does_not_start_speech_and_a_soft_syllable_does_not_end_it() {
        let config = TurnDetection { min_speech_ms: 96, silence_duration_ms: 320, ..TurnDetection::DEFAULT };
        assert!(run(config, &[0.9, 0.1, 0.1, 0.1, 0.1, 0.1]).is_empty(), "one frame is a click");
        // Speech, then frames just under the threshold (within the hysteresis), then silence.
        let mut pattern = vec![0.9; 4];
        pattern.extend([0.4; 20]);
        let changes = run(config, &pattern);
        assert_eq!(changes.len(), 1, "0.4 continues speech with a 0.5 threshold: {changes:?}");
    }

    #[test]
    fn a_short_gap_while_speech_builds_up_is_tolerated() {
        let config = TurnDetection { min_speech_ms: 96, ..TurnDetection::DEFAULT };
        let changes = run(config, &[0.9, 0.9, 0.2, 0.9]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, 3);
    }
}
