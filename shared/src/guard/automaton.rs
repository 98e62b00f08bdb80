//! A tenant's custom pattern as the request plane runs it: two table DFAs (forward for a match's
//! end, reverse for its start), built where configs are compiled (`automaton_build.rs`, from
//! regex-automata's dense DFAs) and shipped as bytes. The request plane's Worker carries this
//! search loop and a loader that checks every index, not a regex compiler: the compiler and
//! engines were ~150 KB of its gzip size (docs/benchmarks.md).
//!
//! The search is regex-automata's leftmost-first DFA search without its accelerations: matches are
//! reported one byte late (a state reached after byte `i` that is a match state means a match
//! ending at `i`), the state at the search's start depends on the byte before it (word
//! boundaries, line anchors), and the end of the text is one more transition.

use super::charset::CharSet;

const MAGIC: &[u8; 4] = b"ASCP";
const FLAG_MATCH: u8 = 1;
const FLAG_DEAD: u8 = 2;
/// Start states: one per possible byte before the search's start, then one for the text's start.
const STARTS: usize = 257;

/// One direction's DFA: state `s`'s successor on byte `b` is `next[s * stride + classes[b]]`; on
/// the end of the text, `next[s * stride + stride - 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableDfa {
    pub(crate) classes: [u8; 256],
    pub(crate) stride: usize,
    pub(crate) starts: Vec<u32>,
    pub(crate) flags: Vec<u8>,
    pub(crate) next: Vec<u32>,
}

#[allow(
    clippy::indexing_slicing,
    reason = "every state index in the tables is below the state count and every class below the \
              stride (`read` checks both of bytes from elsewhere; the builder makes them so), and \
              `hay` is indexed below its length: the search's hot loop stays free of branches \
              for errors that cannot happen"
)]
impl TableDfa {
    fn start(&self, before: Option<u8>) -> usize {
        self.starts[before.map_or(256, usize::from)] as usize
    }

    fn step(&self, state: usize, byte: u8) -> usize {
        self.next[state * self.stride + usize::from(self.classes[usize::from(byte)])] as usize
    }

    fn step_eoi(&self, state: usize) -> usize {
        self.next[state * self.stride + self.stride - 1] as usize
    }

    fn is_match(&self, state: usize) -> bool {
        self.flags[state] & FLAG_MATCH != 0
    }

    fn is_dead(&self, state: usize) -> bool {
        self.flags[state] & FLAG_DEAD != 0
    }

    /// The end of the leftmost-first match starting at or after `at`.
    fn find_end(&self, hay: &[u8], at: usize) -> Option<usize> {
        let mut state = self.start(at.checked_sub(1).map(|i| hay[i]));
        let mut end = None;
        for (i, &b) in hay.iter().enumerate().skip(at) {
            state = self.step(state, b);
            if self.is_match(state) {
                end = Some(i);
            } else if self.is_dead(state) {
                return end;
            }
        }
        if self.is_match(self.step_eoi(state)) {
            end = Some(hay.len());
        }
        end
    }

    /// The leftmost start, at or after `at`, of a match ending at `end` (an anchored reverse
    /// search whose context is the byte after `end`).
    fn find_start(&self, hay: &[u8], at: usize, end: usize) -> Option<usize> {
        let mut state = self.start(hay.get(end).copied());
        let mut start = None;
        for i in (at..end).rev() {
            state = self.step(state, hay[i]);
            if self.is_match(state) {
                start = Some(i + 1);
            } else if self.is_dead(state) {
                return start;
            }
        }
        state = match at.checked_sub(1) {
            Some(i) => self.step(state, hay[i]),
            None => self.step_eoi(state),
        };
        if self.is_match(state) {
            start = Some(at);
        }
        start
    }

    #[cfg(feature = "compile-patterns")]
    fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.flags.len());
        put_u32(out, self.stride);
        out.extend_from_slice(&self.classes);
        self.starts.iter().for_each(|&s| put_u32(out, s as usize));
        out.extend_from_slice(&self.flags);
        self.next.iter().for_each(|&s| put_u32(out, s as usize));
    }

    /// Reads one DFA, checking every index the search will follow.
    fn read(input: &mut Reader<'_>) -> Result<TableDfa, &'static str> {
        let states = input.u32()? as usize;
        let stride = input.u32()? as usize;
        let mut classes = [0u8; 256];
        classes.copy_from_slice(input.take(256)?);
        if states == 0 || stride < 2 || classes.iter().any(|&c| usize::from(c) + 1 >= stride) {
            return Err("malformed byte classes");
        }
        let index = |input: &mut Reader<'_>| -> Result<u32, &'static str> {
            let s = input.u32()?;
            if (s as usize) < states {
                Ok(s)
            } else {
                Err("state out of range")
            }
        };
        let starts = (0..STARTS)
            .map(|_| index(input))
            .collect::<Result<_, _>>()?;
        let flags = input.take(states)?.to_vec();
        if flags.iter().any(|&f| f > FLAG_MATCH | FLAG_DEAD) {
            return Err("malformed state flags");
        }
        let cells = states.checked_mul(stride).ok_or("too many states")?;
        if input.rest() < cells.saturating_mul(4) {
            return Err("truncated transitions");
        }
        let next = (0..cells).map(|_| index(input)).collect::<Result<_, _>>()?;
        Ok(TableDfa {
            classes,
            stride,
            starts,
            flags,
            next,
        })
    }
}

/// A compiled custom pattern: its longest match (bytes), the characters a match can hold, and its
/// two DFAs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternAutomaton {
    pub(crate) max_len: usize,
    pub(crate) class: CharSet,
    pub(crate) forward: TableDfa,
    pub(crate) reverse: TableDfa,
}

impl PatternAutomaton {
    /// The leftmost-first match starting at or after `at`, as `regex::Regex::find_at` would find
    /// it (the tests hold the two to the same answers).
    pub(crate) fn find_at(&self, hay: &str, at: usize) -> Option<(usize, usize)> {
        let bytes = hay.as_bytes();
        let end = self.forward.find_end(bytes, at)?;
        let start = self.reverse.find_start(bytes, at, end)?;
        Some((start, end))
    }

    #[cfg(feature = "compile-patterns")]
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let tables = [&self.forward, &self.reverse]
            .iter()
            .map(|d| d.next.len() * 4 + d.flags.len() + STARTS * 4 + 264)
            .sum::<usize>();
        let mut out = Vec::with_capacity(12 + self.class.ranges().len() * 8 + tables);
        out.extend_from_slice(MAGIC);
        put_u32(&mut out, self.max_len);
        let ranges = self.class.ranges();
        put_u32(&mut out, ranges.len());
        for &(lo, hi) in ranges {
            put_u32(&mut out, lo as usize);
            put_u32(&mut out, hi as usize);
        }
        self.forward.write(&mut out);
        self.reverse.write(&mut out);
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote. Bytes from elsewhere are refused, never
    /// trusted: every state index is checked here, so the search cannot index out of bounds.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<PatternAutomaton, &'static str> {
        let mut input = Reader(bytes);
        if input.take(4)? != MAGIC {
            return Err("not a compiled pattern");
        }
        let max_len = input.u32()? as usize;
        let n = input.u32()? as usize;
        if input.rest() < n.saturating_mul(8) {
            return Err("truncated character set");
        }
        let mut ranges = Vec::with_capacity(n);
        for _ in 0..n {
            let lo = char::from_u32(input.u32()?).ok_or("not a character")?;
            let hi = char::from_u32(input.u32()?).ok_or("not a character")?;
            if lo > hi || ranges.last().is_some_and(|&(_, h)| h >= lo) {
                return Err("unsorted character set");
            }
            ranges.push((lo, hi));
        }
        let forward = TableDfa::read(&mut input)?;
        let reverse = TableDfa::read(&mut input)?;
        if input.rest() != 0 {
            return Err("trailing bytes");
        }
        Ok(PatternAutomaton {
            max_len,
            class: CharSet::from_ranges(ranges),
            forward,
            reverse,
        })
    }
}

#[cfg(feature = "compile-patterns")]
fn put_u32(out: &mut Vec<u8>, v: usize) {
    // Sizes are bounded far below 2^32 by the build's DFA size limit.
    out.extend_from_slice(&u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let b = <[u8; 4]>::try_from(self.take(4)?).map_err(|_| "truncated")?;
        Ok(u32::from_le_bytes(b))
    }

    fn rest(&self) -> usize {
        self.0.len()
    }
}

#[cfg(all(test, feature = "compile-patterns"))]
#[path = "automaton_tests.rs"]
mod tests;
