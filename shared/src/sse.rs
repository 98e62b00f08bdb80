//! An incremental Server-Sent Events parser: bytes in as they arrive (a chunk boundary may fall
//! anywhere, even inside a UTF-8 character), complete events out. Memory is bounded by the largest
//! event allowed. Lines end in `\n` or `\r\n` (the providers ASC fronts never send a lone `\r`).

/// One complete event, with the exact bytes it arrived as (so a pass-through relay can forward it
/// untouched, unknown fields included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// One event grew past the limit without ending.
    EventTooLarge,
    /// An event's bytes were not UTF-8.
    InvalidUtf8,
}

pub struct SseParser {
    buf: Vec<u8>,
    /// Where scanning resumes: bytes before it hold no unseen line end.
    scanned: usize,
    /// Where the current (unfinished) line starts.
    line_start: usize,
    max_event_bytes: usize,
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            scanned: 0,
            line_start: 0,
            max_event_bytes,
        }
    }

    /// Feeds bytes; appends every event completed by them to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.buf.extend_from_slice(bytes);
        let mut event_start = 0;
        for i in self.scanned..self.buf.len() {
            if self.buf[i] != b'\n' {
                continue;
            }
            let line = &self.buf[self.line_start..i];
            if line.is_empty() || line == b"\r" {
                // An empty line ends the event; a blank line with no event before it is skipped.
                if self.line_start > event_start {
                    out.push(parse_event(&self.buf[event_start..=i])?);
                }
                event_start = i + 1;
            }
            self.line_start = i + 1;
        }
        self.buf.drain(..event_start);
        self.line_start -= event_start;
        self.scanned = self.buf.len();
        if self.buf.len() > self.max_event_bytes {
            return Err(SseError::EventTooLarge);
        }
        Ok(())
    }

    /// Bytes received that do not yet form a complete event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Parses one event's lines. Comment-only events (`: ping`) come back with empty data so a relay
/// can still forward keep-alives.
fn parse_event(raw: &[u8]) -> Result<SseEvent, SseError> {
    let text = std::str::from_utf8(raw).map_err(|_| SseError::InvalidUtf8)?;
    let mut event = None;
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            "event" => event = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(SseEvent {
        event,
        data: data.unwrap_or_default(),
        raw: raw.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).expect("parse");
        }
        out
    }

    #[test]
    fn parses_data_and_event_fields() {
        let evs = parse_all(&[b"event: message_start\ndata: {\"a\":1}\n\ndata: x\ndata: y\n\n"]);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].event.as_deref(), Some("message_start"));
        assert_eq!(evs[0].data, "{\"a\":1}");
        assert_eq!(evs[1].data, "x\ny");
        assert_eq!(evs[1].raw, b"data: x\ndata: y\n\n");
    }

    #[test]
    fn crlf_line_endings() {
        let evs = parse_all(&[b"data: one\r\n\r\ndata: two\r\n\r\n"]);
        assert_eq!(
            evs.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
    }

    #[test]
    fn split_inside_a_utf8_character() {
        let text = "data: {\"c\":\"héllo ✓\"}\n\n".as_bytes();
        let at = text.iter().position(|b| *b == 0xc3).expect("é") + 1;
        let evs = parse_all(&[&text[..at], &text[at..]]);
        assert_eq!(evs[0].data, "{\"c\":\"héllo ✓\"}");
    }

    #[test]
    fn an_unfinished_event_stays_pending() {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        p.feed(b"data: partial", &mut out).expect("ok");
        assert!(out.is_empty());
        assert_eq!(p.pending(), 13);
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert_eq!(
            p.feed(b"data: 0123456789abcdef", &mut out),
            Err(SseError::EventTooLarge)
        );
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(cuts in proptest::collection::vec(0usize..200, 0..8)) {
            let stream = "data: {\"id\":\"1\",\"x\":\"é✓\"}\n\n: keep-alive\n\nevent: e\r\ndata: a\r\ndata: b\r\n\r\ndata: [DONE]\n\n".as_bytes();
            let whole = parse_all(&[stream]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for c in cuts { pieces.push(&stream[last..c]); last = c; }
            pieces.push(&stream[last..]);
            prop_assert_eq!(parse_all(&pieces), whole);
        }
    }
}
