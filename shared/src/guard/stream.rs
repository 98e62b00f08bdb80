//! Incremental redaction of a response's text deltas. The stream keeps flowing: each `push`
//! returns all text that no later delta can change, holding back only what could still be part of
//! a match (at most the longest match of any rule plus a few bytes of look-ahead, and usually far
//! less: only a trailing run of characters that a match can consist of). For any split of a text
//! into deltas, the concatenated output equals [`Scanner::redact`] of the whole text on the
//! response side, and the findings receives the same decisions.

use std::sync::Arc;

use super::findings::Findings;
use super::scanner::{floor_boundary, Lane, Scanner, CONTEXT};
use super::{Action, Side};

/// Redacts one stream of text (one choice's content, or one tool call's arguments).
pub struct StreamRedactor {
    scanner: Arc<Scanner>,
    /// Text not yet fully decided, after up to [`CONTEXT`] bytes already passed on.
    buf: String,
    /// Where the redaction lane continues, in `buf`.
    pos: usize,
    /// Where the flag lane continues, in `buf`.
    flag_pos: usize,
}

impl std::fmt::Debug for StreamRedactor {
    /// Shows how much is held back, never the text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRedactor")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl StreamRedactor {
    pub fn new(scanner: Arc<Scanner>) -> Self {
        StreamRedactor {
            scanner,
            buf: String::new(),
            pos: 0,
            flag_pos: 0,
        }
    }

    /// Takes the next delta; returns the text that is safe to emit now (possibly empty).
    pub fn push(&mut self, delta: &str, findings: &mut Findings) -> String {
        self.buf.push_str(delta);
        self.advance(false, findings)
    }

    /// The stream ended: returns everything still held back, redacted.
    pub fn finish(&mut self, findings: &mut Findings) -> String {
        let out = self.advance(true, findings);
        self.buf.clear();
        self.pos = 0;
        self.flag_pos = 0;
        out
    }

    /// Bytes currently held back (not yet emitted).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn advance(&mut self, last: bool, findings: &mut Findings) -> String {
        let scanner = &*self.scanner;
        let frontier = |lane| {
            if last {
                usize::MAX
            } else {
                scanner.frontier(lane, &self.buf)
            }
        };
        let mut out = String::new();
        let f = frontier(Lane::ResponseRedact);
        let mut cache = Vec::new();
        while let Some(h) =
            scanner.next_hit(Lane::ResponseRedact, &self.buf, self.pos, f, &mut cache)
        {
            out.push_str(&self.buf[self.pos..h.start]);
            out.push_str(&scanner.replace(h, &self.buf, Side::Response, findings));
            self.pos = h.end;
        }
        let clean = f.min(self.buf.len());
        if clean > self.pos {
            out.push_str(&self.buf[self.pos..clean]);
            self.pos = clean;
        }

        let f = frontier(Lane::Flag);
        let mut cache = Vec::new();
        while let Some(h) = scanner.next_hit(Lane::Flag, &self.buf, self.flag_pos, f, &mut cache) {
            findings.record(Side::Response, scanner.rule(h.rule), Action::Flag);
            self.flag_pos = h.end;
        }
        self.flag_pos = self.flag_pos.max(f.min(self.buf.len()));

        // Keep CONTEXT bytes before the earlier lane's position for look-behind.
        let keep = floor_boundary(
            &self.buf,
            self.pos.min(self.flag_pos).saturating_sub(CONTEXT),
        );
        if keep > 0 {
            self.buf.drain(..keep);
            self.pos -= keep;
            self.flag_pos -= keep;
        }
        out
    }
}
