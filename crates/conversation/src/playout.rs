//! The agent's speech of one turn, clause by clause: audio waits here until its 20 ms frame is due,
//! and what has been played tells what the user actually heard.

use std::collections::VecDeque;

use crate::io::PLAYOUT_FRAME;

/// One clause: its text, the audio received for it, and how much of that has been played.
#[derive(Debug)]
struct Clause {
    text: String,
    /// Audio received and not yet played.
    queued: VecDeque<i16>,
    received: usize,
    played: usize,
    /// TTS has sent all of its audio.
    complete: bool,
}

/// The speech of the turn being spoken.
#[derive(Debug, Default)]
pub struct Playout {
    clauses: Vec<Clause>,
    /// The clause being played.
    cursor: usize,
    /// No clause will be added: the turn's text is complete.
    closed: bool,
}

/// What [`Playout::next_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A full 20 ms frame, and whether it is the first of its clause.
    Audio { pcm: Vec<i16>, starts_clause: bool },
    /// The audio due next has not arrived yet.
    Waiting,
    /// Everything was played and nothing more will come.
    Finished,
}

impl Playout {
    /// Adds a clause to be spoken after the others; returns its index.
    pub fn add_clause(&mut self, text: String) -> u32 {
        self.clauses.push(Clause { text, queued: VecDeque::new(), received: 0, played: 0, complete: false });
        (self.clauses.len() - 1) as u32
    }

    pub fn clause_count(&self) -> u32 {
        self.clauses.len() as u32
    }

    /// No more clauses will be added.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Audio for clause `index`. Audio of an unknown clause is ignored.
    pub fn add_audio(&mut self, index: u32, pcm: &[i16]) {
        if let Some(clause) = self.clauses.get_mut(index as usize) {
            clause.queued.extend(pcm);
            clause.received += pcm.len();
        }
    }

    /// Clause `index` has all its audio.
    pub fn complete(&mut self, index: u32) {
        if let Some(clause) = self.clauses.get_mut(index as usize) {
            clause.complete = true;
        }
    }

    /// How many samples have been played.
    pub fn played_samples(&self) -> usize {
        self.clauses.iter().map(|c| c.played).sum()
    }

    /// Whether any audio has been played.
    pub fn started(&self) -> bool {
        self.clauses.iter().any(|c| c.played > 0)
    }

    /// The next 20 ms frame, if it is here. A clause's last frame is padded with silence; clauses
    /// with no audio at all (TTS had nothing to say) are skipped.
    pub fn next_frame(&mut self) -> Frame {
        loop {
            let Some(clause) = self.clauses.get_mut(self.cursor) else {
                return if self.closed { Frame::Finished } else { Frame::Waiting };
            };
            if clause.queued.len() >= PLAYOUT_FRAME || (clause.complete && !clause.queued.is_empty()) {
                let starts_clause = clause.played == 0;
                let n = clause.queued.len().min(PLAYOUT_FRAME);
                let mut pcm: Vec<i16> = clause.queued.drain(..n).collect();
                pcm.resize(PLAYOUT_FRAME, 0);
                clause.played += n;
                return Frame::Audio { pcm, starts_clause };
            }
            if clause.complete {
                self.cursor += 1;
                continue;
            }
            return Frame::Waiting;
        }
    }

    /// The text of the clauses that have started playing, for `assistant.transcription` while in
    /// progress.
    pub fn text_started(&self) -> String {
        join(self.clauses.iter().filter(|c| c.played > 0).map(|c| c.text.as_str()))
    }

    /// Every clause's text.
    pub fn full_text(&self) -> String {
        join(self.clauses.iter().map(|c| c.text.as_str()))
    }

    /// What the user heard: whole clauses that were played out, and of the clause cut off, the
    /// share of its words matching the share of its audio that was played (speech runs at a fairly
    /// even rate of words, so this is off by a word at most in practice).
    pub fn text_heard(&self) -> String {
        let mut parts = Vec::new();
        for clause in &self.clauses {
            if clause.played == 0 {
                break;
            }
            if clause.complete && clause.queued.is_empty() {
                parts.push(clause.text.clone());
                continue;
            }
            // Not all of its audio is known yet: judge by what arrived.
            let words: Vec<&str> = clause.text.split_whitespace().collect();
            let share = clause.played as f64 / clause.received.max(1) as f64;
            let heard = ((words.len() as f64) * share).floor() as usize;
            if heard > 0 {
                parts.push(words[..heard].join(" "));
            }
            break;
        }
        join(parts.iter().map(String::as_str))
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_whole_padded_at_the_end_of_a_clause_and_the_heard_text_follows_them() {
        let mut playout = Playout::default();
        let first = playout.add_clause("One two three four.".into());
        let second = playout.add_clause("Five six.".into());
        assert_eq!(playout.next_frame(), Frame::Waiting);
        playout.add_audio(first, &[1; 1500]);
        let Frame::Audio { pcm, starts_clause: true } = playout.next_frame() else { panic!() };
        assert_eq!(pcm.len(), PLAYOUT_FRAME);
        assert_eq!(playout.next_frame(), Frame::Waiting, "540 samples left but the clause is not complete");
        assert_eq!(playout.text_heard(), "One two three four".split(' ').take(2).collect::<Vec<_>>().join(" "));
        playout.complete(first);
        let Frame::Audio { pcm, starts_clause: false } = playout.next_frame() else { panic!() };
        assert_eq!(pcm[539..541], [1, 0], "the last frame is padded with silence");
        assert_eq!(playout.text_heard(), "One two three four.");
        playout.add_audio(second, &[2; 960]);
        playout.complete(second);
        assert!(matches!(playout.next_frame(), Frame::Audio { starts_clause: true, .. }));
        assert_eq!(playout.next_frame(), Frame::Waiting, "not closed: more clauses may come");
        playout.close();
        assert_eq!(playout.next_frame(), Frame::Finished);
        assert_eq!(playout.text_heard(), "One two three four. Five six.");
    }
}
