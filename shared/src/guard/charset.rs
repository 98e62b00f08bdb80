//! The set of characters a regex can match, derived from its syntax tree. A stream redactor uses
//! it to release text early: a match still open at the end of the buffer consists of these
//! characters only, so text before the last character outside the set is decided.

#[cfg(any(test, feature = "compile-patterns"))]
use regex_syntax::hir::{Class, Hir, HirKind};

/// Sorted, merged, inclusive character ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CharSet(Vec<(char, char)>);

impl CharSet {
    #[cfg(any(test, feature = "compile-patterns"))]
    pub(crate) fn of(hir: &Hir) -> CharSet {
        let mut ranges = Vec::new();
        collect(hir, &mut ranges);
        ranges.sort_unstable();
        let mut merged: Vec<(char, char)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1).saturating_add(1) => {
                    last.1 = last.1.max(hi);
                }
                _ => merged.push((lo, hi)),
            }
        }
        CharSet(merged)
    }

    /// A set of ranges that are already sorted and merged (a compiled pattern's, a built-in
    /// rule's shape).
    pub(crate) fn from_ranges(ranges: Vec<(char, char)>) -> CharSet {
        CharSet(ranges)
    }

    #[cfg(any(test, feature = "compile-patterns"))]
    pub(crate) fn ranges(&self) -> &[(char, char)] {
        &self.0
    }

    pub(crate) fn contains(&self, c: char) -> bool {
        self.0
            .binary_search_by(|&(lo, hi)| {
                if hi < c {
                    std::cmp::Ordering::Less
                } else if lo > c {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    }
}

#[cfg(any(test, feature = "compile-patterns"))]
fn collect(hir: &Hir, out: &mut Vec<(char, char)>) {
    match hir.kind() {
        HirKind::Literal(lit) => match std::str::from_utf8(&lit.0) {
            Ok(s) => out.extend(s.chars().map(|c| (c, c))),
            // A literal that is not whole characters (bytes mode): be conservative.
            Err(_) => out.push(('\0', char::MAX)),
        },
        HirKind::Class(Class::Unicode(cls)) => {
            out.extend(cls.ranges().iter().map(|r| (r.start(), r.end())));
        }
        HirKind::Class(Class::Bytes(cls)) => {
            for r in cls.ranges() {
                if r.end() < 0x80 {
                    out.push((char::from(r.start()), char::from(r.end())));
                } else {
                    // Non-ASCII bytes belong to multi-byte characters: any of them.
                    out.push((char::from(r.start().min(0x7f)), char::MAX));
                }
            }
        }
        HirKind::Repetition(r) => collect(&r.sub, out),
        HirKind::Capture(c) => collect(&c.sub, out),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().for_each(|h| collect(h, out)),
        HirKind::Empty | HirKind::Look(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pattern: &str) -> CharSet {
        CharSet::of(&regex_syntax::parse(pattern).expect("parses"))
    }

    #[test]
    fn sets_hold_exactly_what_a_pattern_can_match() {
        let s = set(r"MRN-[0-9]{8}");
        for c in "MRN-0123456789".chars() {
            assert!(s.contains(c), "{c}");
        }
        for c in "mA ,/:".chars() {
            assert!(!s.contains(c), "{c}");
        }
        // Case-insensitive Unicode folding brings in the other cases (and the Kelvin sign).
        let s = set(r"(?i)k\s{1,2}ü");
        for c in ['k', 'K', '\u{212A}', 'ü', 'Ü', ' ', '\n', '\u{3000}'] {
            assert!(s.contains(c), "{c:?}");
        }
        assert!(!s.contains('x'));
        // ASCII classes in bytes mode.
        let s = set(r"(?-u:\b)[a-c]{1,3}(?-u:\s)");
        assert!(s.contains('b') && s.contains('\t') && !s.contains('d'));
    }
}
