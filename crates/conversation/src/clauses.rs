//! Cutting a stream of LLM text into speakable clauses, so TTS can start on the first clause while
//! the model is still writing the rest.
//!
//! Rules, in order:
//! - A sentence end (`.`, `!`, `?`, `…`, and the CJK `。！？`) followed by white space (or, for CJK,
//!   immediately) ends a clause, unless the word before a `.` is a known abbreviation ("Dr.",
//!   "e.g."), a single letter (an initial, "J. R. R."), or a number ("1." of a list). A `.` between
//!   digits ("3.14") is never followed by white space, so decimals stay whole.
//! - `;`, `:` and a line break end a clause too.
//! - A comma (`,` `、` `，`) ends a clause only when the clause is already [`ClauseSplitter::MIN_COMMA_CHARS`]
//!   long, so "Yes, I" is not spoken as two fragments, but the first clause of a long sentence
//!   still starts early. A comma between digits ("1,000") never cuts.
//! - With no punctuation, a clause is cut at the last space before [`ClauseSplitter::MAX_CHARS`].
//!
//! The splitter only ever looks one character ahead, so a clause is emitted as soon as the
//! character after its punctuation arrives.

/// Splits streamed text into clauses. Feed deltas with [`push`](Self::push), then call
/// [`finish`](Self::finish) when the stream ends.
#[derive(Debug, Default)]
pub struct ClauseSplitter {
    /// Text received but not yet emitted as a clause.
    pending: String,
}

/// Words that end with a period without ending a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "approx", "no", "fig", "inc", "ltd",
    "co", "corp", "mt", "ft", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "a.m", "p.m", "u.s", "u.k",
];

impl ClauseSplitter {
    /// A comma cuts only a clause at least this long (in characters, before the comma).
    pub const MIN_COMMA_CHARS: usize = 24;
    /// A clause with no punctuation is cut at a space before it grows longer than this.
    pub const MAX_CHARS: usize = 160;

    pub fn new() -> ClauseSplitter {
        ClauseSplitter::default()
    }

    /// Adds a delta; returns the clauses it completed, trimmed, in order.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.pending.push_str(delta);
        let mut clauses = Vec::new();
        while let Some(end) = self.next_cut() {
            let clause: String = self.pending.drain(..end).collect();
            let clause = clause.trim();
            if !clause.is_empty() {
                clauses.push(clause.to_owned());
            }
        }
        clauses
    }

    /// Ends the stream; returns what is left as a last clause, if anything speakable is.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }

    /// Forgets any pending text (the turn was cancelled).
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// The byte index just past the first complete clause in `pending`, if there is one.
    fn next_cut(&self) -> Option<usize> {
        let text = &self.pending;
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut last_space = None;
        for (i, &(at, c)) in chars.iter().enumerate() {
            let after = at + c.len_utf8();
            let next = chars.get(i + 1).map(|&(_, n)| n);
            let clause_chars = i + 1;
            match c {
                '。' | '！' | '？' | '；' | '\n' => return Some(after),
                '，' | '、' if clause_chars >= Self::MIN_COMMA_CHARS / 3 => return Some(after),
                '.' | '!' | '?' | '…' | ';' | ':' | ',' => {
                    // One character of lookahead: without it we cannot tell "3." from "3.5".
                    let next = next?;
                    if !next.is_whitespace() {
                        continue;
                    }
                    let cuts = match c {
                        '.' => !Self::period_is_not_an_end(&text[..at]),
                        ',' => clause_chars >= Self::MIN_COMMA_CHARS,
                        ':' => !text[..at].trim_end().ends_with(|d: char| d.is_ascii_digit()),
                        _ => true,
                    };
                    if cuts {
                        return Some(after);
                    }
                }
                c if c.is_whitespace() => last_space = Some(at),
                _ => {}
            }
            if clause_chars >= Self::MAX_CHARS
                && let Some(space) = last_space
                && space > 0
            {
                return Some(space);
            }
        }
        None
    }

    /// Whether a `.` after `before` belongs to an abbreviation, an initial or a list number.
    fn period_is_not_an_end(before: &str) -> bool {
        let word = before.rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"').next().unwrap_or("");
        if word.is_empty() {
            return false;
        }
        let lower = word.to_lowercase();
        if ABBREVIATIONS.contains(&lower.as_str()) {
            return true;
        }
        // An initial: one letter ("J."), possibly after others ("U.S" is covered above).
        if word.chars().count() == 1 && word.chars().all(char::is_alphabetic) {
            return true;
        }
        // A list number at the start of a clause: "1." followed by the item.
        word.chars().all(|c| c.is_ascii_digit()) && before.trim_start().len() == word.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` in pieces of `step` characters and collects every clause.
    fn split(text: &str, step: usize) -> Vec<String> {
        let mut splitter = ClauseSplitter::new();
        let chars: Vec<char> = text.chars().collect();
        let mut clauses = Vec::new();
        for piece in chars.chunks(step) {
            clauses.extend(splitter.push(&piece.iter().collect::<String>()));
        }
        clauses.extend(splitter.finish());
        clauses
    }

    #[test]
    fn clauses_are_cut_the_same_whatever_the_delta_size() {
        let cases: &[(&str, &[&str])] = &[
            ("Hello there. How are you?", &["Hello there.", "How are you?"]),
            ("Pi is about 3.14159, as you know.", &["Pi is about 3.14159, as you know."]),
            ("Dr. Smith met Mr. Jones at 5 p.m. today.", &["Dr. Smith met Mr. Jones at 5 p.m. today."]),
            ("It costs $1,000.50 in total! Wow.", &["It costs $1,000.50 in total!", "Wow."]),
            ("J. R. R. Tolkien wrote it.", &["J. R. R. Tolkien wrote it."]),
            ("1. Flour\n2. Eggs", &["1. Flour", "2. Eggs"]),
            ("Yes, I can.", &["Yes, I can."]),
            (
                "The weather in Paris today is mild and sunny, with a light breeze in the afternoon.",
                &["The weather in Paris today is mild and sunny,", "with a light breeze in the afternoon."],
            ),
            ("Note: it starts at 10:30 sharp.", &["Note:", "it starts at 10:30 sharp."]),
            ("Wait… what?", &["Wait…", "what?"]),
            ("你好。今天天气很好！", &["你好。", "今天天气很好！"]),
            ("No punctuation at all", &["No punctuation at all"]),
            ("Trailing space. ", &["Trailing space."]),
        ];
        for (text, expected) in cases {
            for step in [1, 2, 3, 7, 1000] {
                assert_eq!(split(text, step), *expected, "{text:?} in pieces of {step}");
            }
        }
    }

    #[test]
    fn a_long_run_without_punctuation_is_cut_at_a_space() {
        let text = "word ".repeat(100);
        let clauses = split(&text, 5);
        assert!(clauses.len() > 1);
        for clause in &clauses {
            assert!(clause.chars().count() <= ClauseSplitter::MAX_CHARS, "{clause:?}");
        }
        assert_eq!(clauses.join(" "), text.trim());
    }

    #[test]
    fn a_clause_is_emitted_as_soon_as_the_character_after_it_arrives() {
        let mut splitter = ClauseSplitter::new();
        assert!(splitter.push("Sure.").is_empty(), "a period alone may still be a decimal point");
        assert_eq!(splitter.push(" "), vec!["Sure."]);
        assert!(splitter.push("Next").is_empty());
        splitter.clear();
        assert_eq!(splitter.finish(), None);
    }
}
