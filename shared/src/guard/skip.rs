//! Skipping to the next of a few bytes: up to nine, as three `memchr`-family searches side by
//! side. Each group's next position is kept until the caller passes it, so a group whose bytes are
//! rare is not searched again from every position another group stops at. The deny-term scan
//! skips to the bytes terms start with; a custom pattern's DFA to the bytes that leave a state.

/// Most bytes a skip takes.
pub(crate) const SKIP_BYTES: usize = 9;

pub(crate) struct ByteSkip {
    /// Up to three groups of one to three bytes (`lens`).
    groups: [[u8; 3]; 3],
    lens: [usize; 3],
    /// Each group's next position at or after where it was last searched from; `None`: none.
    next: [Option<usize>; 3],
    /// No group searched yet.
    fresh: bool,
}

impl ByteSkip {
    /// A skip to `bytes`; `None` for none or more than [`SKIP_BYTES`].
    pub(crate) fn new(bytes: &[u8]) -> Option<ByteSkip> {
        if bytes.is_empty() || bytes.len() > SKIP_BYTES {
            return None;
        }
        let mut skip = ByteSkip {
            groups: [[0; 3]; 3],
            lens: [0; 3],
            next: [None; 3],
            fresh: true,
        };
        for ((slot, len), group) in skip
            .groups
            .iter_mut()
            .zip(skip.lens.iter_mut())
            .zip(bytes.chunks(3))
        {
            slot.get_mut(..group.len())?.copy_from_slice(group);
            *len = group.len();
        }
        Some(skip)
    }

    /// The first position at or after `from` holding one of the bytes. `from` must not go back
    /// between calls on one skip.
    pub(crate) fn next_from(&mut self, hay: &[u8], from: usize) -> Option<usize> {
        let rest = hay.get(from..).unwrap_or_default();
        let mut nearest = None;
        for ((g, &len), next) in self.groups.iter().zip(&self.lens).zip(&mut self.next) {
            if len == 0 {
                break;
            }
            if self.fresh || next.is_some_and(|p| p < from) {
                let found = match len {
                    1 => memchr::memchr(g[0], rest),
                    2 => memchr::memchr2(g[0], g[1], rest),
                    _ => memchr::memchr3(g[0], g[1], g[2], rest),
                };
                *next = found.map(|i| from + i);
            }
            nearest = match (nearest, *next) {
                (Some(a), Some(b)) => Some(usize::min(a, b)),
                (a, b) => a.or(b),
            };
        }
        self.fresh = false;
        nearest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_next_byte_from_every_position() {
        let hay = b"xxaxxbyyczzdqqqeffghiiijz";
        for bytes in [&b"a"[..], b"ab", b"abc", b"abcd", b"abcdefghi", b"z"] {
            let mut skip = ByteSkip::new(bytes).expect("a skip");
            for from in 0..=hay.len() {
                let want = (from..hay.len()).find(|&i| bytes.contains(&hay[i]));
                assert_eq!(skip.next_from(hay, from), want, "{bytes:?} from {from}");
            }
        }
        assert!(ByteSkip::new(b"").is_none());
        assert!(ByteSkip::new(b"abcdefghij").is_none());
    }
}
