//! A tenant's deny terms, matched by hand. The specification is the regex `rules::deny_pattern`
//! builds (`(?i)\b{start-half}(?:term|...)\b{end-half}`, longest term first, whitespace in a term
//! matching 1-8 whitespace characters), which the tests hold this matcher to. Why by hand: that
//! regex's Unicode word boundaries keep regex's lazy DFA off non-ASCII text (100 terms scanned
//! at ~450 ms per MB), a list of ~150 terms exceeded its compiled-size limit although a config
//! may hold 1,000, and every config load compiled it (~7 ms for 100 terms).

use crate::guard::patterns::CompiledGuard;
use crate::guard::skip::{ByteSkip, SKIP_BYTES};

use super::is_word;

/// Most whitespace characters one space in a term stands for.
const GAP_MAX: usize = 8;
/// UTF-8 bytes of the longest whitespace character (U+2028, U+3000, ...).
const SPACE_MAX_BYTES: usize = 3;

/// The compiled term list: a trie of the terms' case keys, so each start position is walked
/// once whatever the number of terms.
#[derive(Debug)]
pub(crate) struct DenyTerms {
    trie: Trie,
    /// The root has a child for the ASCII key `b`: the scan's quick test.
    ascii_first: [bool; 128],
    /// Every byte a match can start with, when there are at most [`SKIP_BYTES`]: the scan then
    /// skips to them with `memchr3` instead of walking each byte.
    start_bytes: Option<Vec<u8>>,
    /// Whether any term holds whitespace (then whitespace can be part of a match).
    has_gap: bool,
    folding: Folding,
    /// Longest possible match, in bytes.
    max_len: usize,
}

/// The key standing for a run of 1-8 whitespace characters (term keys are never whitespace).
const GAP: char = ' ';

/// A node of the trie as it is built: the terms' keys that continue the path here, and the term
/// the path spells.
#[derive(Debug, Default)]
struct Node {
    /// Sorted by key.
    children: Vec<(char, u32)>,
    /// The earliest term in the regex's alternation order (most characters first, then as
    /// configured) that ends here.
    term: Option<u32>,
}

/// The trie, built: node `n`'s children are the `len` edges from `edges[first]`, sorted by key,
/// and node 0 is the root. Twelve bytes a node and eight an edge: 1,000 terms of 128 characters
/// take ~2.5 MB, where a vector of children per node took ~14 MB.
#[derive(Debug)]
struct Trie {
    nodes: Vec<Packed>,
    edges: Vec<(char, u32)>,
}

#[derive(Debug, Clone, Copy)]
struct Packed {
    first: u32,
    len: u32,
    /// The earliest term ending here, plus one; 0 when none does.
    term: u32,
}

impl Trie {
    fn of(nodes: &[Node]) -> Trie {
        let mut trie = Trie {
            nodes: Vec::with_capacity(nodes.len()),
            edges: Vec::with_capacity(nodes.len().saturating_sub(1)),
        };
        for node in nodes {
            trie.nodes.push(Packed {
                first: trie.edges.len() as u32,
                len: node.children.len() as u32,
                term: node.term.map_or(0, |t| t + 1),
            });
            trie.edges.extend_from_slice(&node.children);
        }
        trie
    }

    fn children(&self, node: Packed) -> &[(char, u32)] {
        let from = node.first as usize;
        self.edges
            .get(from..from + node.len as usize)
            .unwrap_or(&[])
    }

    fn node(&self, id: u32) -> Option<Packed> {
        self.nodes.get(id as usize).copied()
    }

    fn child(&self, node: Packed, key: char) -> Option<Packed> {
        let children = self.children(node);
        let i = children.binary_search_by_key(&key, |&(k, _)| k).ok()?;
        self.node(children.get(i)?.1)
    }

    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.nodes.capacity() * size_of::<Packed>()
            + self.edges.capacity() * size_of::<(char, u32)>()
    }
}

impl Packed {
    /// The earliest term (in alternation order) ending here.
    fn term(self) -> Option<u32> {
        self.term.checked_sub(1)
    }
}

/// The case classes of the terms' characters: every character that `(?i)` (Unicode simple case
/// folding, regex's own tables) treats as one of them, mapped to one key per class. A character
/// outside every class cannot match a term character.
#[derive(Debug, Default)]
struct Folding {
    /// Non-ASCII members of the classes with their keys, sorted by character.
    others: Vec<(char, char)>,
    /// Every key, sorted.
    keys: Vec<char>,
}

impl Folding {
    /// The key of `c`'s class; `c` itself when no term character shares its class.
    fn key(&self, c: char) -> char {
        if c.is_ascii() {
            return c.to_ascii_lowercase();
        }
        match self.others.binary_search_by_key(&c, |&(d, _)| d) {
            Ok(i) => self.others.get(i).map_or(c, |&(_, key)| key),
            Err(_) => c,
        }
    }

    /// Adds `class`, `c`'s case class; returns its key: the ASCII lowercase member if it has
    /// one, else the smallest.
    fn add(&mut self, c: char, class: &[char]) -> char {
        let key = class.iter().find(|m| m.is_ascii()).map_or_else(
            || class.first().copied().unwrap_or(c),
            |a| a.to_ascii_lowercase(),
        );
        self.others
            .extend(class.iter().filter(|m| !m.is_ascii()).map(|&m| (m, key)));
        self.keys.push(key);
        key
    }

    fn finish(&mut self) {
        self.others.sort_unstable();
        self.others.dedup();
        self.keys.sort_unstable();
        self.keys.dedup();
    }
}

impl DenyTerms {
    /// The trie of `terms`, their characters' case classes from `guard`; an error names a
    /// character it has no class for (not sent by the control plane).
    pub(crate) fn new(terms: &[String], guard: &CompiledGuard) -> Result<DenyTerms, String> {
        let mut sorted: Vec<&String> = terms.iter().collect();
        // Stable: terms of equal length keep their configured order, as in the regex.
        sorted.sort_by_key(|t| std::cmp::Reverse(t.chars().count()));
        let mut nodes = vec![Node::default()];
        let mut out = DenyTerms {
            trie: Trie::of(&[]),
            ascii_first: [false; 128],
            start_bytes: None,
            has_gap: false,
            folding: Folding::default(),
            max_len: 0,
        };
        for (order, term) in sorted.into_iter().enumerate() {
            let mut keys = Vec::new();
            let mut len = 0;
            for (w, word) in term.split_whitespace().enumerate() {
                if w > 0 {
                    keys.push(GAP);
                    len += GAP_MAX * SPACE_MAX_BYTES;
                    out.has_gap = true;
                }
                for c in word.chars() {
                    let class = guard
                        .case_class(c)
                        .ok_or_else(|| format!("the case class of {c:?} was not compiled"))?;
                    keys.push(out.folding.add(c, &class));
                    len += max_fold_len(c);
                }
            }
            let Some(&first) = keys.first() else {
                continue; // blank terms are refused by validation
            };
            if let Some(slot) = out.ascii_first.get_mut(first as usize) {
                *slot = true;
            }
            out.max_len = out.max_len.max(len);
            insert(&mut nodes, &keys, order as u32);
        }
        out.trie = Trie::of(&nodes);
        out.folding.finish();
        out.start_bytes = out.first_bytes().filter(|bytes| bytes.len() <= SKIP_BYTES);
        Ok(out)
    }

    /// The first bytes of every character whose key starts a term: both cases of an ASCII key,
    /// and the leading byte of each non-ASCII member of a first key's class (the Kelvin sign's
    /// for `k`).
    fn first_bytes(&self) -> Option<Vec<u8>> {
        let mut bytes = Vec::new();
        let root = self.trie.node(0)?;
        for &(key, _) in self.trie.children(root) {
            if let Ok(b) = u8::try_from(key) {
                if b.is_ascii() {
                    bytes.extend([b.to_ascii_lowercase(), b.to_ascii_uppercase()]);
                }
            }
            let members = self.folding.others.iter().filter(|&&(_, k)| k == key);
            for &(member, _) in members {
                let mut utf8 = [0; 4];
                bytes.extend(member.encode_utf8(&mut utf8).as_bytes().first());
            }
        }
        bytes.sort_unstable();
        bytes.dedup();
        Some(bytes)
    }

    /// About what the trie and its case classes hold in memory (a cache weighs its config by it).
    pub(crate) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.trie.heap_bytes()
            + self.folding.others.capacity() * size_of::<(char, char)>()
            + self.folding.keys.capacity() * size_of::<char>()
            + self.start_bytes.as_ref().map_or(0, Vec::capacity)
    }

    /// Longest possible match, in bytes.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether a match can hold `c`.
    pub(crate) fn holds(&self, c: char) -> bool {
        (self.has_gap && c.is_whitespace())
            || self
                .folding
                .keys
                .binary_search(&self.folding.key(c))
                .is_ok()
    }

    /// The leftmost match starting at or after `at` (a char boundary), as the regex finds it;
    /// the character before `at` decides only the start boundary.
    pub(crate) fn find_at(&self, hay: &str, at: usize) -> Option<(usize, usize)> {
        if let Some(bytes) = &self.start_bytes {
            return self.skip_to_starts(hay, at, bytes);
        }
        let b = hay.as_bytes();
        let mut prev_word = word_before(hay, at);
        let mut i = at;
        // Byte by byte through ASCII (most text), a character at a time elsewhere: at opt-level
        // "z" an iterator of chars stays a call per character.
        while let Some(&byte) = b.get(i) {
            if byte.is_ascii() {
                let listed = self.ascii_first.get(usize::from(byte.to_ascii_lowercase()));
                if !prev_word && listed == Some(&true) {
                    if let Some(found) = self.match_at(hay, i, char::from(byte)) {
                        return Some(found);
                    }
                }
                prev_word = is_word(byte);
                i += 1;
                continue;
            }
            let c = next_char(hay, i)?;
            if !prev_word {
                if let Some(found) = self.match_at(hay, i, c) {
                    return Some(found);
                }
            }
            prev_word = is_word_char(c);
            i += c.len_utf8();
        }
        None
    }

    /// [`DenyTerms::find_at`] for a list whose matches start with one of a few `bytes`.
    fn skip_to_starts(&self, hay: &str, at: usize, bytes: &[u8]) -> Option<(usize, usize)> {
        let mut skip = ByteSkip::new(bytes)?;
        let mut pos = at;
        loop {
            let i = skip.next_from(hay.as_bytes(), pos)?;
            if !word_before(hay, i) {
                // A candidate byte is ASCII or leads a multi-byte character: a char boundary.
                let c = next_char(hay, i)?;
                if let Some(found) = self.match_at(hay, i, c) {
                    return Some(found);
                }
            }
            pos = i + 1;
        }
    }

    /// The match at `start` (whose character is `c`) of the earliest term in alternation order
    /// that matches there and is followed by no word character.
    fn match_at(&self, hay: &str, start: usize, c: char) -> Option<(usize, usize)> {
        let trie = &self.trie;
        let mut node = trie.child(trie.node(0)?, self.folding.key(c))?;
        let mut i = start + c.len_utf8();
        let mut best: Option<(u32, usize)> = None;
        loop {
            let next = next_char(hay, i);
            if let Some(order) = node.term() {
                if best.is_none_or(|(o, _)| order < o) && !next.is_some_and(is_word_char) {
                    best = Some((order, i));
                }
            }
            let Some(c) = next else { break };
            let child = if c.is_whitespace() {
                // `\s{1,8}` is greedy and the next word starts with a non-space: no backtracking.
                let Some(gap) = trie.child(node, GAP) else {
                    break;
                };
                let mut spaces = 0;
                while spaces < GAP_MAX {
                    match next_char(hay, i) {
                        Some(s) if s.is_whitespace() => {
                            i += s.len_utf8();
                            spaces += 1;
                        }
                        _ => break,
                    }
                }
                gap
            } else {
                let Some(n) = trie.child(node, self.folding.key(c)) else {
                    break;
                };
                i += c.len_utf8();
                n
            };
            node = child;
        }
        best.map(|(_, end)| (start, end))
    }
}

/// Adds the path of `keys` to the trie under construction, ending at term `order`.
fn insert(nodes: &mut Vec<Node>, keys: &[char], order: u32) {
    let mut at = 0;
    for &key in keys {
        let Some(node) = nodes.get(at) else {
            return;
        };
        at = match node.children.binary_search_by_key(&key, |&(k, _)| k) {
            Ok(i) => node.children.get(i).map_or(0, |&(_, n)| n as usize),
            Err(i) => {
                let next = nodes.len();
                nodes.push(Node::default());
                if let Some(node) = nodes.get_mut(at) {
                    node.children.insert(i, (key, next as u32));
                }
                next
            }
        };
    }
    if let Some(node) = nodes.get_mut(at) {
        // Terms come in alternation order: the first one to end here wins.
        node.term.get_or_insert(order);
    }
}

/// Whether a word character ends right before byte `i` (a char boundary): the start boundary.
/// Most candidates follow a letter of the same word, decided on one byte.
#[inline(always)]
fn word_before(hay: &str, i: usize) -> bool {
    match i.checked_sub(1).and_then(|p| hay.as_bytes().get(p)) {
        None => false,
        Some(&p) if p.is_ascii() => is_word(p),
        Some(_) => hay
            .get(..i)
            .and_then(|h| h.chars().next_back())
            .is_some_and(is_word_char),
    }
}

/// The character starting at byte `i` (a char boundary).
#[inline(always)]
fn next_char(hay: &str, i: usize) -> Option<char> {
    match hay.as_bytes().get(i) {
        Some(&b) if b.is_ascii() => Some(char::from(b)),
        Some(_) => hay.get(i..)?.chars().next(),
        None => None,
    }
}

/// The most UTF-8 bytes a character that folds to the same class as `c` can take.
fn max_fold_len(c: char) -> usize {
    match c {
        // The Kelvin sign (3 bytes) and the long s (2 bytes) fold with ASCII letters.
        'k' | 'K' => 3,
        's' | 'S' => 2,
        _ if c.is_ascii() => 1,
        _ => 4,
    }
}

/// `\w` in Unicode mode, as regex's word boundaries see it.
pub(crate) fn is_word_char(c: char) -> bool {
    if let Some(b) = u8::try_from(c).ok().filter(u8::is_ascii) {
        is_word(b)
    } else {
        regex_syntax::is_word_character(c)
    }
}

#[cfg(test)]
#[path = "deny_tests.rs"]
mod tests;
