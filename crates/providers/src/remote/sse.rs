//! Server-sent events, as far as chat completions use them: `data:` lines, events separated by a
//! blank line, comments ignored.

#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The data of the next complete event, if one is complete.
    pub fn next_event(&mut self) -> Option<String> {
        loop {
            let (end, separator) = find_blank_line(&self.buffer)?;
            let raw: Vec<u8> = self.buffer.drain(..end + separator).collect();
            let text = String::from_utf8_lossy(&raw[..end]);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                return Some(data.join("\n"));
            }
        }
    }
}

/// The end of the first event and the length of its separator (`\n\n` or `\r\n\r\n`).
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut parser = SseParser::default();
        parser.push(b": keep-alive\n\ndata: {\"a\"");
        assert_eq!(parser.next_event(), None);
        parser.push(b":1}\n\ndata: [DONE]\r\n\r\n");
        assert_eq!(parser.next_event().as_deref(), Some("{\"a\":1}"));
        assert_eq!(parser.next_event().as_deref(), Some("[DONE]"));
        assert_eq!(parser.next_event(), None);
        parser.push(b"data: half");
        assert_eq!(parser.next_event(), None);
    }
}
