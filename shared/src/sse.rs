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

    /// Feeds bytes; appends every event completed by them to `out`. An event that is not UTF-8
    /// stops the parsing with an error; it is dropped, and a later `feed` resumes after it.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.buf.extend_from_slice(bytes);
        let mut event_start = 0;
        let mut scanned = self.buf.len();
        let mut failed = None;
        let line_ends = self.buf.iter().enumerate().skip(self.scanned);
        for i in line_ends.filter(|(_, b)| **b == b'\n').map(|(i, _)| i) {
            // `line_start <= i`: it is the end of an earlier line, or where the unscanned bytes
            // begin.
            if matches!(self.buf.get(self.line_start..i), Some(b"" | b"\r")) {
                // An empty line ends the event; a blank line with no event before it is skipped.
                if self.line_start > event_start {
                    match self.buf.get(event_start..=i).map(parse_event) {
                        Some(Ok(event)) => out.push(event),
                        Some(Err(e)) => failed = Some(e),
                        None => {}
                    }
                }
                event_start = i + 1;
            }
            self.line_start = i + 1;
            if failed.is_some() {
                scanned = i + 1;
                break;
            }
        }
        self.buf.drain(..event_start);
        self.line_start -= event_start;
        self.scanned = scanned - event_start;
        if let Some(e) = failed {
            return Err(e);
        }
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

    #[test]
    fn a_bad_event_is_refused_and_parsing_resumes_after_it() {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        assert_eq!(
            p.feed(b"data: a\n\ndata: \xff\n\ndata: b\n\n", &mut out),
            Err(SseError::InvalidUtf8)
        );
        assert_eq!(
            out.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        // The bad event is dropped; what followed it in the same chunk and what comes next parse.
        out.clear();
        p.feed(b"data: c\n\n", &mut out).expect("parse");
        assert_eq!(
            out.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert_eq!(p.pending(), 0);
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
