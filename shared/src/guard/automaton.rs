//! A tenant's custom pattern as the request plane runs it: two table DFAs (forward for a match's
//! end, reverse for its start), built where configs are compiled (`automaton_build.rs`, from
//! regex-automata's dense DFAs) and shipped as bytes. The request plane's Worker carries this
//! search loop and a loader that checks every index, not a regex compiler: the compiler and
//! engines were ~150 KB of its gzip size (docs/benchmarks.md).
//!
//! The search is regex-automata's leftmost-first DFA search: matches are reported one byte late
//! (a state reached after byte `i` that is a match state means a match ending at `i`), the state
//! at the search's start depends on the byte before it (word boundaries, line anchors), and the
//! end of the text is one more transition. As there, the states the loop must stop at (dead,
//! match, and those that only a few bytes leave) are numbered first, so one comparison per byte
//! tells them apart; in a state that at most nine bytes leave, `memchr3` skips to the next of
//! them (`MRN-[0-9]{8}` skips to each `M`, `(?:EMP|CUS|ORD|INV)-...` to each `E`, `C`, `O`, `I`).

use super::charset::CharSet;
use super::skip::{ByteSkip, SKIP_BYTES};

const MAGIC: &[u8; 4] = b"ASCP";
pub(crate) const FLAG_MATCH: u8 = 1;
pub(crate) const FLAG_DEAD: u8 = 2;
/// The state's accelerator (`accel`) lists every byte that leaves it.
pub(crate) const FLAG_ACCEL: u8 = 4;
/// Most bytes an accelerated state may name.
pub(crate) const ACCEL_BYTES: usize = SKIP_BYTES;
/// An accelerator: how many bytes leave the state, then those bytes.
pub(crate) type Accel = [u8; ACCEL_BYTES + 1];
/// Start states: one per possible byte before the search's start, then one for the text's start.
pub(crate) const STARTS: usize = 257;

/// One direction's DFA. State ids are premultiplied (`index << shift`): the successor of `s` on
/// byte `b` is `next[s + classes[b]]`, on the end of the text `next[s + alphabet - 1]`. States
/// below `special` (dead, match, accelerated) are the only ones with flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableDfa {
    classes: [u8; 256],
    /// Byte classes plus one for the end of the text.
    alphabet: usize,
    shift: u32,
    starts: Vec<u32>,
    special: usize,
    flags: Vec<u8>,
    /// Per state: how many bytes leave it (1-9) and those bytes, when it is accelerated.
    accel: Vec<Accel>,
    next: Vec<u32>,
}

/// One direction's DFA as plain indexes, as built and as sent: `rows[i]` holds state `i`'s
/// successors by class, the end of the text last; states below `special` are the flagged ones.
pub(crate) struct Parts {
    pub classes: [u8; 256],
    pub starts: Vec<u32>,
    pub special: usize,
    pub flags: Vec<u8>,
    pub accel: Vec<Accel>,
    pub rows: Vec<u32>,
}

#[allow(
    clippy::indexing_slicing,
    reason = "every state id in the tables is below `next.len()` and every class below the \
              alphabet (`from_parts` checks both of any input), and `hay` is indexed below its \
              length: the search's hot loop stays free of branches for errors that cannot happen"
)]
impl TableDfa {
    /// Checks `parts` and lays them out for the search. The only constructor: a table from
    /// elsewhere cannot make the search index out of bounds or skip a flagged state.
    pub(crate) fn from_parts(parts: Parts) -> Result<TableDfa, &'static str> {
        let Parts {
            classes,
            starts,
            special,
            flags,
            accel,
            rows,
        } = parts;
        let states = flags.len();
        let alphabet = alphabet_of(&classes);
        if states == 0 || accel.len() != states || states.checked_mul(alphabet) != Some(rows.len())
        {
            return Err("malformed table sizes");
        }
        if starts.len() != STARTS || special > states {
            return Err("malformed start states");
        }
        let unflagged_special = flags.iter().take(special).any(|&f| f == 0);
        let flagged_ordinary = flags.iter().skip(special).any(|&f| f != 0);
        if unflagged_special || flagged_ordinary || flags.iter().any(|&f| f > 7) {
            return Err("malformed state flags");
        }
        // An accelerated state names one to nine bytes: with none, the search would skip to
        // the end of the text.
        let accelerated = flags.iter().map(|&f| f & FLAG_ACCEL != 0);
        if accel
            .iter()
            .zip(accelerated)
            .any(|(a, on)| usize::from(a[0]) > ACCEL_BYTES || (on && a[0] == 0))
        {
            return Err("malformed accelerator");
        }
        let shift = alphabet.next_power_of_two().trailing_zeros();
        // Premultiplied ids are u32s.
        if states
            .checked_mul(1 << shift)
            .is_none_or(|cells| cells > u32::MAX as usize)
        {
            return Err("too many states");
        }
        let id = |i: u32| -> Result<u32, &'static str> {
            if (i as usize) < states {
                Ok(i << shift)
            } else {
                Err("state out of range")
            }
        };
        let starts = starts.into_iter().map(id).collect::<Result<_, _>>()?;
        let mut next = vec![0u32; states << shift];
        for (row, out) in rows.chunks(alphabet).zip(next.chunks_mut(1 << shift)) {
            for (cell, &i) in out.iter_mut().zip(row) {
                *cell = id(i)?;
            }
        }
        Ok(TableDfa {
            classes,
            alphabet,
            shift,
            starts,
            special: special << shift,
            flags,
            accel,
            next,
        })
    }

    fn start(&self, before: Option<u8>) -> usize {
        self.starts[before.map_or(256, usize::from)] as usize
    }

    #[inline(always)]
    fn step(&self, state: usize, byte: u8) -> usize {
        self.next[state + usize::from(self.classes[usize::from(byte)])] as usize
    }

    fn step_eoi(&self, state: usize) -> usize {
        self.next[state + self.alphabet - 1] as usize
    }

    fn flags(&self, state: usize) -> u8 {
        if state < self.special {
            self.flags[state >> self.shift]
        } else {
            0
        }
    }

    /// The next position at or after `from` holding a byte that leaves the accelerated `state`
    /// (the end of the text if none does). `seen` keeps the skip while the search stays in one
    /// state.
    fn skip(
        &self,
        state: usize,
        hay: &[u8],
        from: usize,
        seen: &mut Option<(usize, ByteSkip)>,
    ) -> usize {
        if seen.as_ref().is_none_or(|(s, _)| *s != state) {
            let accel = &self.accel[state >> self.shift];
            let bytes = &accel[1..=usize::from(accel[0]).min(ACCEL_BYTES)];
            *seen = ByteSkip::new(bytes).map(|skip| (state, skip));
        }
        match seen {
            Some((_, skip)) => skip.next_from(hay, from).unwrap_or(hay.len()),
            // Refused at load: an accelerated state names one to nine bytes.
            None => from,
        }
    }

    /// The end of the leftmost-first match starting at or after `at`.
    fn find_end(&self, hay: &[u8], at: usize) -> Option<usize> {
        let mut state = self.start(at.checked_sub(1).map(|i| hay[i]));
        let mut end = None;
        let mut i = at;
        let mut seen = None;
        if self.flags(state) & FLAG_ACCEL != 0 {
            i = self.skip(state, hay, i, &mut seen);
        }
        while i < hay.len() {
            state = self.step(state, hay[i]);
            if state < self.special {
                let flags = self.flags[state >> self.shift];
                if flags & FLAG_MATCH != 0 {
                    end = Some(i);
                } else if flags & FLAG_DEAD != 0 {
                    return end;
                } else if flags & FLAG_ACCEL != 0 {
                    i = self.skip(state, hay, i + 1, &mut seen);
                    continue;
                }
            }
            i += 1;
        }
        if self.flags(self.step_eoi(state)) & FLAG_MATCH != 0 {
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
            let flags = self.flags(state);
            if flags & FLAG_MATCH != 0 {
                start = Some(i + 1);
            } else if flags & FLAG_DEAD != 0 {
                return start;
            }
        }
        state = match at.checked_sub(1) {
            Some(i) => self.step(state, hay[i]),
            None => self.step_eoi(state),
        };
        if self.flags(state) & FLAG_MATCH != 0 {
            start = Some(at);
        }
        start
    }

    #[cfg(feature = "compile-patterns")]
    fn write(&self, out: &mut Vec<u8>) {
        let states = self.flags.len();
        put_u32(out, states);
        put_u32(out, self.special >> self.shift);
        out.extend_from_slice(&self.classes);
        self.starts
            .iter()
            .for_each(|&s| put_u32(out, (s >> self.shift) as usize));
        out.extend_from_slice(&self.flags);
        self.accel.iter().for_each(|a| out.extend_from_slice(a));
        for row in self.next.chunks(1 << self.shift) {
            row.iter()
                .take(self.alphabet)
                .for_each(|&s| put_u32(out, (s >> self.shift) as usize));
        }
    }

    /// Reads one DFA as [`write`](Self::write) wrote it.
    fn read(input: &mut Reader<'_>) -> Result<TableDfa, &'static str> {
        let states = input.u32()? as usize;
        let special = input.u32()? as usize;
        let mut classes = [0u8; 256];
        classes.copy_from_slice(input.take(256)?);
        let alphabet = alphabet_of(&classes);
        let starts = (0..STARTS).map(|_| input.u32()).collect::<Result<_, _>>()?;
        let flags = input.take(states)?.to_vec();
        let accel_len = states
            .checked_mul(ACCEL_BYTES + 1)
            .ok_or("too many states")?;
        let accel = input
            .take(accel_len)?
            .chunks_exact(ACCEL_BYTES + 1)
            .map(|a| Accel::try_from(a).map_err(|_| "truncated"))
            .collect::<Result<_, _>>()?;
        let cells = states.checked_mul(alphabet).ok_or("too many states")?;
        if input.rest() < cells.saturating_mul(4) {
            return Err("truncated transitions");
        }
        let rows = (0..cells).map(|_| input.u32()).collect::<Result<_, _>>()?;
        TableDfa::from_parts(Parts {
            classes,
            starts,
            special,
            flags,
            accel,
            rows,
        })
    }
}

/// The classes of `classes` plus one for the end of the text: a row's width.
fn alphabet_of(classes: &[u8; 256]) -> usize {
    usize::from(classes.iter().copied().max().unwrap_or(0)) + 2
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

    /// Bytes its tables take in memory (what a config's limit counts).
    pub(crate) fn table_bytes(&self) -> usize {
        [&self.forward, &self.reverse]
            .iter()
            .map(|d| d.next.len() * 4 + d.flags.len() * (ACCEL_BYTES + 2) + STARTS * 4 + 256)
            .sum()
    }

    #[cfg(feature = "compile-patterns")]
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let tables = [&self.forward, &self.reverse]
            .iter()
            .map(|d| d.next.len() * 4 + d.flags.len() * (ACCEL_BYTES + 2) + STARTS * 4 + 264)
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
