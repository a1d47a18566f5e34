//! Word error rate, for testing and benchmarking speech recognition: the word-level edit distance
//! (substitutions + deletions + insertions) between a reference transcript and a hypothesis,
//! divided by the number of reference words.
//!
//! Both sides are normalised first ([`words`]): lower case, punctuation dropped (an apostrophe
//! inside a word stays: `don't`), hyphens split words (`well-known` is two), numbers stay as written
//! (`3.5` and `1,000` → `1000` are numbers, `three` is a word; no spelling out).

/// The normalised words of `text`.
pub fn words(text: &str) -> Vec<String> {
    let chars: Vec<char> =
        text.chars().map(|c| if matches!(c, '\u{2018}' | '\u{2019}' | '\u{02bc}') { '\'' } else { c }).collect();
    let mut words = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let before = i.checked_sub(1).and_then(|i| chars.get(i)).copied();
        let after = chars.get(i + 1).copied();
        let between = |test: fn(&char) -> bool| before.as_ref().is_some_and(test) && after.as_ref().is_some_and(test);
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if (c == '\'' && between(|c| c.is_alphanumeric())) || (c == '.' && between(char::is_ascii_digit)) {
            word.push(c);
        } else if c == ',' && between(char::is_ascii_digit) {
            // A thousands separator: 1,000 is 1000.
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The edit distance (substitutions, deletions, insertions) between two sequences: of words for
/// the word error rate, of letters for a letter error rate.
pub fn edits<T: PartialEq>(reference: &[T], hypothesis: &[T]) -> usize {
    // One row of the Levenshtein table at a time: row[j] = distance(reference[..i], hypothesis[..j]).
    let mut row: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let substitution = diagonal + usize::from(r != h);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[hypothesis.len()]
}

/// (substitutions + deletions + insertions) / reference words, after normalising both. An empty
/// reference counts as one word, so any hypothesis words are all errors.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let (reference, hypothesis) = (words(reference), words(hypothesis));
    edits(&reference, &hypothesis) as f64 / reference.len().max(1) as f64
}

/// (letter edits) / reference letters, over the lowercase letters and digits of both texts (spaces
/// and punctuation ignored): kinder than the word error rate to a word heard split in two
/// ("France is" as "Francis" is one letter of eight, and two words of two).
pub fn letter_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let letters = |t: &str| t.to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect::<Vec<_>>();
    let (reference, hypothesis) = (letters(reference), letters(hypothesis));
    edits(&reference, &hypothesis) as f64 / reference.len().max(1) as f64
}

/// The word error rate of a corpus of `(reference, hypothesis)` pairs: all edits over all reference
/// words (long utterances weigh more than short ones).
pub fn corpus_word_error_rate(pairs: &[(String, String)]) -> f64 {
    let (mut errors, mut total) = (0, 0);
    for (reference, hypothesis) in pairs {
        let reference = words(reference);
        errors += edits(&reference, &words(hypothesis));
        total += reference.len();
    }
    errors as f64 / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_letter_error_rate_counts_edits_over_letters() {
        assert_eq!(letter_error_rate("The capital of France is Paris.", "The capital of France is Paris"), 0.0);
        assert_eq!(letter_error_rate("France is", "Francis"), 1.0 / 8.0);
        assert_eq!(letter_error_rate("abc", ""), 1.0);
    }

    #[test]
    fn words_are_normalised() {
        assert_eq!(words("Hello, World!"), ["hello", "world"]);
        assert_eq!(
            words("It's a well-known fact: 'quoted' rock'n'roll — isn’t it?"),
            ["it's", "a", "well", "known", "fact", "quoted", "rock'n'roll", "isn't", "it"]
        );
        assert_eq!(
            words("Mr. Smith paid $1,000.50, or 3.5%... In 1999."),
            ["mr", "smith", "paid", "1000.50", "or", "3.5", "in", "1999"]
        );
        assert_eq!(words("  \n "), Vec::<String>::new());
        assert_eq!(words("Ça VA, Æsir"), ["ça", "va", "æsir"]);
    }

    #[test]
    fn word_error_rates_by_hand() {
        assert_eq!(word_error_rate("the cat sat on the mat", "the cat sat on the mat"), 0.0);
        // One deletion in six words.
        assert_eq!(word_error_rate("the cat sat on the mat", "the cat sat on mat"), 1.0 / 6.0);
        // A substitution and an insertion in three words.
        assert_eq!(word_error_rate("a b c", "a x c d"), 2.0 / 3.0);
        // Case and punctuation do not count; hyphens split.
        assert_eq!(word_error_rate("Hello world. Cold-hearted!", "hello, world cold hearted"), 0.0);
        // Everything deleted; everything inserted.
        assert_eq!(word_error_rate("one two three", ""), 1.0);
        assert_eq!(word_error_rate("", ""), 0.0);
        assert_eq!(word_error_rate("", "uh huh"), 2.0);
        // More errors than reference words is possible.
        assert_eq!(word_error_rate("yes", "no no no"), 3.0);
        // Transposition costs two.
        assert_eq!(word_error_rate("a b", "b a"), 1.0);
    }

    #[test]
    fn the_corpus_rate_weighs_by_reference_length() {
        let pairs = [("a b c d", "a b c d"), ("e f", "x")].map(|(r, h)| (r.to_owned(), h.to_owned()));
        // Sentence rates 0 and 1; the corpus: two edits in six words.
        assert_eq!(corpus_word_error_rate(&pairs), 2.0 / 6.0);
        assert_eq!(corpus_word_error_rate(&[]), 0.0);
    }
}
