//! Whisper's vocabulary as CTranslate2 ships it (`vocabulary.txt`, one token a line, the id is the
//! line's index) and the way back from tokens to text.
//!
//! Text tokens are GPT-2 byte-level BPE strings: each byte is written as one printable character
//! (`Ġ` for a space, `Ċ` for a newline, …), so decoding maps the characters back to bytes and reads
//! the bytes as UTF-8. Ids from `<|endoftext|>` on are special (task, language, timestamp tokens)
//! and never text.

use std::collections::HashMap;
use std::path::Path;

use crate::models::ModelError;

#[derive(Debug)]
pub(super) struct Vocabulary {
    tokens: Vec<String>,
    /// The ids of the `<|…|>` tokens other than timestamps.
    special: HashMap<String, u32>,
    /// GPT-2's byte ↔ unicode map, backwards: the byte each character up to U+0143 stands for.
    bytes_of: Vec<Option<u8>>,
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68 bytes (in
/// order) for U+0100 onwards.
fn byte_decoder() -> Vec<Option<u8>> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table = vec![None; 256 + 68];
    let mut next = 256;
    for b in 0..=255u8 {
        if printable(b) {
            table[usize::from(b)] = Some(b);
        } else {
            table[next] = Some(b);
            next += 1;
        }
    }
    table
}

impl Vocabulary {
    pub fn read(path: &Path) -> Result<Vocabulary, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::unusable(path, e.to_string()))?;
        Vocabulary::parse(&text).map_err(|problem| ModelError::unusable(path, problem))
    }

    pub fn parse(text: &str) -> Result<Vocabulary, String> {
        let tokens: Vec<String> = text.lines().map(str::to_owned).collect();
        let special = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.starts_with("<|") && t.ends_with("|>") && !t[2..].starts_with(|c: char| c.is_ascii_digit())
            })
            .map(|(id, t)| (t.clone(), id as u32))
            .collect();
        let vocabulary = Vocabulary { tokens, special, bytes_of: byte_decoder() };
        vocabulary.id("<|endoftext|>").ok_or("the vocabulary has no <|endoftext|>")?;
        Ok(vocabulary)
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The id of a special token such as `<|en|>`.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.special.get(token).copied()
    }

    /// The text of `ids`, skipping special tokens, trimmed.
    pub fn decode(&self, ids: &[u32]) -> String {
        let end_of_text = self.id("<|endoftext|>").unwrap_or(u32::MAX);
        let mut bytes = Vec::new();
        for &id in ids.iter().filter(|id| **id < end_of_text) {
            let token = self.tokens.get(id as usize).map(String::as_str).unwrap_or_default();
            bytes.extend(token.chars().filter_map(|c| self.bytes_of.get(c as usize).copied().flatten()));
        }
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary() -> Vocabulary {
        let text = [
            "Hello",
            "Ġworld",
            ",",
            "ĠcafÃ©",
            "Ċ",
            "ĠâĢĶ",
            "<|endoftext|>",
            "<|startoftranscript|>",
            "<|en|>",
            "<|0.00|>",
        ]
        .join("\n");
        Vocabulary::parse(&text).unwrap()
    }

    #[test]
    fn decodes_byte_level_tokens() {
        let v = vocabulary();
        assert_eq!(v.decode(&[0, 2, 1]), "Hello, world");
        assert_eq!(v.decode(&[0, 1, 2, 3]), "Hello world, café");
        // A newline and an em dash (three bytes) come through; special tokens do not.
        assert_eq!(v.decode(&[7, 0, 4, 5, 1, 6, 9]), "Hello\n — world");
    }

    #[test]
    fn finds_special_tokens_but_not_timestamps() {
        let v = vocabulary();
        assert_eq!(
            (v.id("<|endoftext|>"), v.id("<|en|>"), v.id("<|0.00|>"), v.id("Hello")),
            (Some(6), Some(8), None, None)
        );
        assert_eq!(v.len(), 10);
        assert!(Vocabulary::parse("a\nb").is_err());
    }

    #[test]
    fn the_byte_map_covers_every_byte_once() {
        let table = byte_decoder();
        let mut seen: Vec<u8> = table.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..=255).collect::<Vec<u8>>());
        assert_eq!(table['Ġ' as usize], Some(b' '));
        assert_eq!(table['Ċ' as usize], Some(b'\n'));
    }
}
