//! The prompt-injection rule's matcher: `(?i-u)\b(?:phrase|phrase|...)\b`, the phrases of
//! `rules::INJECTION_PHRASES` with each space read as `(?-u:\s){1,3}` (`rules::injection_pattern`).
//! The phrases are read once into words, whitespace and `(?:a|b)` / `(?:a |b )?` groups, and matched
//! by backtracking in the regex's order (phrases in order, a group's choices in order, an optional
//! group taken before skipped), which is leftmost-first: the first way that matches is the match.
//! Whitespace needs no choice: a run of one to three is taken whole, since a word must follow it.

use std::sync::OnceLock;

use super::{is_word, no_word_before};
use crate::guard::rules::INJECTION_PHRASES;

enum Tok {
    /// Lowercase ASCII letters, matched without regard to ASCII case.
    Word(&'static str),
    /// `(?-u:\s){1,3}`.
    Space,
    Group {
        choices: Vec<Vec<Tok>>,
        optional: bool,
    },
}

// A phrase is a bit in a `u32`.
const _: () = assert!(INJECTION_PHRASES.len() <= 32);

struct Phrases {
    phrases: Vec<Vec<Tok>>,
    /// The words a phrase can start with, grouped by their first two letters.
    first_words: Vec<FirstWord>,
    /// By a word's first two bytes (ASCII-lowercased, `26 * a + b` over `a..=z`): its group in
    /// `first_words`. A match starts at a word whose first two bytes are letters (every phrase's
    /// words have at least two).
    by_start: [(u16, u16); 26 * 26],
}

/// A word some phrases start with.
struct FirstWord {
    word: &'static str,
    /// The phrases (bits) that can start with it.
    phrases: u32,
    /// Its [`prefix`] and the bytes of it that count: compared before the whole word.
    head: (u32, u32),
}

fn phrases() -> &'static Phrases {
    static PHRASES: OnceLock<Phrases> = OnceLock::new();
    PHRASES.get_or_init(|| {
        let phrases: Vec<Vec<Tok>> = INJECTION_PHRASES.iter().map(|p| parse(p)).collect();
        let mut first_words: Vec<FirstWord> = Vec::new();
        for (i, p) in phrases.iter().enumerate() {
            let mut words = Vec::new();
            starts_of(p, &mut words);
            for w in words {
                match first_words.iter_mut().find(|f| f.word == w) {
                    Some(f) => f.phrases |= 1 << i,
                    None => first_words.push(FirstWord {
                        word: w,
                        phrases: 1 << i,
                        head: prefix_of(w),
                    }),
                }
            }
        }
        first_words.retain(|f| pair(f.word.as_bytes()).is_some());
        first_words.sort_by_key(|f| pair(f.word.as_bytes()));
        let mut by_start = [(0u16, 0u16); 26 * 26];
        for (k, f) in first_words.iter().enumerate() {
            if let Some(slot) = pair(f.word.as_bytes()).and_then(|p| by_start.get_mut(p)) {
                let k = u16::try_from(k).unwrap_or(u16::MAX);
                *slot = if slot.1 == 0 {
                    (k, k + 1)
                } else {
                    (slot.0, k + 1)
                };
            }
        }
        Phrases {
            phrases,
            first_words,
            by_start,
        }
    })
}

/// A byte's letter index in `a..=z` (either case), or `None`.
#[inline(always)]
fn letter(c: u8) -> Option<usize> {
    match c {
        b'a'..=b'z' => Some(usize::from(c - b'a')),
        b'A'..=b'Z' => Some(usize::from(c - b'A')),
        _ => None,
    }
}

/// The index of a word's first two bytes in [`Phrases::by_start`], if both are ASCII letters.
#[inline(always)]
fn pair(b: &[u8]) -> Option<usize> {
    Some(letter(*b.first()?)? * 26 + letter(*b.get(1)?)?)
}

/// Reads a phrase: lowercase words, spaces and non-nested `(?:...)` groups, optionally `?`.
fn parse(phrase: &'static str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut rest = phrase;
    while !rest.is_empty() {
        if let Some(group) = rest.strip_prefix("(?:") {
            let close = group.find(')').unwrap_or(group.len());
            let choices = group[..close].split('|').map(parse).collect();
            rest = group.get(close + 1..).unwrap_or_default();
            let optional = rest.starts_with('?');
            if optional {
                rest = &rest[1..];
            }
            out.push(Tok::Group { choices, optional });
        } else if let Some(r) = rest.strip_prefix(' ') {
            out.push(Tok::Space);
            rest = r;
        } else {
            let end = rest.find([' ', '(']).unwrap_or(rest.len());
            out.push(Tok::Word(&rest[..end]));
            rest = &rest[end..];
        }
    }
    out
}

/// The words `toks` can start with.
fn starts_of(toks: &[Tok], out: &mut Vec<&'static str>) {
    match toks.first() {
        Some(Tok::Word(w)) => out.push(w),
        Some(Tok::Group { choices, optional }) => {
            for c in choices {
                starts_of(c, out);
            }
            if *optional {
                starts_of(toks.get(1..).unwrap_or_default(), out);
            }
        }
        Some(Tok::Space) | None => {}
    }
}

/// `(?-u:\s)`: the ASCII whitespace of regex's Perl class, vertical tab included.
fn space(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | b' ')
}

/// The end of `toks` at `i`, then `then`, trying choices in the regex's order.
fn seq(b: &[u8], i: usize, toks: &[Tok], then: &dyn Fn(usize) -> Option<usize>) -> Option<usize> {
    let Some((tok, rest)) = toks.split_first() else {
        return then(i);
    };
    match tok {
        Tok::Word(w) => {
            let end = i + w.len();
            let hit = b
                .get(i..end)
                .is_some_and(|s| s.eq_ignore_ascii_case(w.as_bytes()));
            if hit {
                seq(b, end, rest, then)
            } else {
                None
            }
        }
        Tok::Space => {
            let run = b
                .get(i..)
                .map_or(0, |r| r.iter().take(4).take_while(|&&c| space(c)).count());
            if (1..=3).contains(&run) {
                seq(b, i + run, rest, then)
            } else {
                None
            }
        }
        Tok::Group { choices, optional } => {
            let after = |j: usize| seq(b, j, rest, then);
            choices
                .iter()
                .find_map(|c| seq(b, i, c, &after))
                .or_else(|| optional.then(|| seq(b, i, rest, then)).flatten())
        }
    }
}

/// The leftmost match from `at`: at each word start, the phrases its first two letters allow.
/// Word starts are found eight bytes at a time: in prose, finding them is most of the cost.
pub(super) fn injection(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let p = phrases();
    // Every phrase ends with a letter: `\b` there is no word byte after it.
    let ends_word = |e: usize| b.get(e).is_none_or(|&c| !is_word(c)).then_some(e);
    let mut prev_word = u64::from(!no_word_before(b, at));
    let mut i = at;
    while i < b.len() {
        let chunk = match b.get(i..i + 8) {
            Some(c) => <[u8; 8]>::try_from(c).unwrap_or_default(),
            None => {
                // The last chunk, padded with zero bytes (not word bytes).
                let mut last = [0u8; 8];
                for (to, from) in last.iter_mut().zip(b.get(i..).unwrap_or_default()) {
                    *to = *from;
                }
                last
            }
        };
        let word = word_bytes(u64::from_le_bytes(chunk));
        // A word byte whose previous byte (in this chunk, or the last one of the chunk before)
        // is not one.
        let mut starts = word & !((word << 8) | (prev_word << 7));
        prev_word = word >> 63;
        while starts != 0 {
            let s = i + (starts.trailing_zeros() / 8) as usize;
            starts &= starts - 1;
            let hay = b.get(s..).unwrap_or_default();
            let (from, to) = pair(hay)
                .and_then(|k| p.by_start.get(k))
                .copied()
                .unwrap_or((0, 0));
            let mut mask = 0;
            if from < to {
                let head = prefix(hay);
                for f in p
                    .first_words
                    .get(usize::from(from)..usize::from(to))
                    .unwrap_or_default()
                {
                    // Four bytes compared at once first: most words that share the first two
                    // letters of a phrase's first word do not share its next two.
                    let (want, care) = f.head;
                    if head & care == want
                        && hay
                            .get(..f.word.len())
                            .is_some_and(|h| h.eq_ignore_ascii_case(f.word.as_bytes()))
                    {
                        mask |= f.phrases;
                    }
                }
            }
            while mask != 0 {
                let phrase = p.phrases.get(mask.trailing_zeros() as usize);
                mask &= mask - 1;
                if let Some(e) = phrase.and_then(|phrase| seq(b, s, phrase, &ends_word)) {
                    return Some((s, e));
                }
            }
        }
        i += 8;
    }
    None
}

/// Up to the first four bytes of `hay`, with bit 5 of each set (ASCII letters lowercased).
#[inline(always)]
fn prefix(hay: &[u8]) -> u32 {
    let four = match hay.get(..4) {
        Some(head) => <[u8; 4]>::try_from(head).unwrap_or_default(),
        None => {
            let mut short = [0u8; 4];
            for (to, from) in short.iter_mut().zip(hay) {
                *to = *from;
            }
            short
        }
    };
    u32::from_le_bytes(four) | 0x2020_2020
}

/// A first word's [`prefix`] and the bytes of it that count (a word shorter than four bytes).
fn prefix_of(w: &str) -> (u32, u32) {
    let n = w.len().min(4);
    let care = if n == 4 {
        u32::MAX
    } else {
        (1u32 << (8 * n)) - 1
    };
    (prefix(w.as_bytes()) & care, care)
}

/// The high bit of each byte of `x` that is a word byte (`[0-9A-Za-z_]`).
#[inline(always)]
fn word_bytes(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte, on its low seven bits (no carry crosses into the next byte): the high bit of
    // `at_least(c)` is set for bytes >= c.
    let low = x & !HIGH;
    let at_least = |c: u8| low + ONES * u64::from(0x80 - c);
    let within = |lo: u8, hi: u8| at_least(lo) & !at_least(hi + 1);
    (within(b'0', b'9') | within(b'A', b'Z') | within(b'_', b'_') | within(b'a', b'z')) & !x & HIGH
}
