//! What a config's guardrails need compiled where the build can compile it: tenants' custom
//! patterns (table DFAs) and the Unicode case classes of deny terms' non-ASCII characters
//! (regex's case-folding tables). A build with the `compile-patterns` feature (the control
//! plane's Worker, Spin, the CLI, the tests) makes them itself; the request plane's Worker carries
//! neither a regex compiler nor the tables (~165 KB of its gzip size together) and gets them,
//! once per config version an isolate loads, from the control plane
//! ([`CompiledGuard::to_wire`] there, [`from_wire`] here).
//!
//! [`from_wire`]: CompiledGuard::from_wire

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::automaton::PatternAutomaton;
use super::policy::{MAX_CUSTOM_PATTERNS, MAX_DENY_TERMS, MAX_DENY_TERM_CHARS, MAX_PATTERN_SOURCE};

/// What a config asks to have compiled: its custom patterns' sources and its deny terms'
/// distinct non-ASCII characters (an ASCII character's case class is known without tables:
/// [`ascii_case_class`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardSources {
    pub patterns: Vec<String>,
    pub fold: Vec<char>,
}

impl GuardSources {
    /// Of a config document (`guardrails.custom_patterns[].regex`, `guardrails.deny_terms`),
    /// taking what has the right shape and leaving the rest to validation, which reports it.
    /// Only what validation can accept: a longer list or source is refused before anything is
    /// compiled.
    pub fn of_config(config: &[u8]) -> GuardSources {
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(config) else {
            return GuardSources::default();
        };
        let list = |field: &str| {
            doc.get("guardrails")
                .and_then(|g| g.get(field))
                .and_then(serde_json::Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        let patterns = list("custom_patterns")
            .iter()
            .take(MAX_CUSTOM_PATTERNS)
            .filter_map(|p| p.get("regex").and_then(serde_json::Value::as_str))
            .filter(|s| !s.is_empty() && s.len() <= MAX_PATTERN_SOURCE)
            .map(str::to_string)
            .collect();
        let mut fold: Vec<char> = list("deny_terms")
            .iter()
            .take(MAX_DENY_TERMS)
            .filter_map(serde_json::Value::as_str)
            .flat_map(str::chars)
            .filter(|c| !c.is_ascii())
            .collect();
        fold.sort_unstable();
        fold.dedup();
        GuardSources { patterns, fold }
    }

    /// Nothing to compile.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.fold.is_empty()
    }

    /// No more or longer than a valid config holds: the compiler refuses a larger request rather
    /// than compile what no valid config needs.
    pub fn within_limits(&self) -> bool {
        self.patterns.len() <= MAX_CUSTOM_PATTERNS
            && self
                .patterns
                .iter()
                .all(|s| !s.is_empty() && s.len() <= MAX_PATTERN_SOURCE)
            && self.fold.len() <= MAX_DENY_TERMS * MAX_DENY_TERM_CHARS
    }
}

/// Compiled custom patterns by their source text (or why one cannot be used), and case classes
/// by character.
#[derive(Clone, Default)]
pub struct CompiledGuard {
    patterns: HashMap<String, Result<Arc<PatternAutomaton>, String>>,
    classes: HashMap<char, Vec<char>>,
}

/// On the wire, one entry per pattern, then one per character to fold, in the request's order:
/// a tag byte, a 4-byte little-endian length and that many bytes: the automaton's bytes, why the
/// pattern cannot be used (UTF-8), or the character's case class (UTF-8). Binary rather than
/// JSON: a JSON answer needed base64 and serde's enum code in the request plane, ~4 KB of its
/// gzip size.
const COMPILED: u8 = 1;
const INVALID: u8 = 2;
const CLASS: u8 = 3;

impl CompiledGuard {
    /// Compiled by this build as asked for (without the `compile-patterns` feature every pattern
    /// and non-ASCII case class is refused: such a build gets them from elsewhere).
    pub fn local() -> CompiledGuard {
        CompiledGuard::default()
    }

    /// Compiles `sources` (the request the control plane answers).
    #[cfg(feature = "compile-patterns")]
    pub fn compile(sources: &GuardSources) -> CompiledGuard {
        let patterns = sources
            .patterns
            .iter()
            .map(|s| {
                let compiled = super::automaton_build::compile_pattern(s).map(Arc::new);
                (s.clone(), compiled)
            })
            .collect();
        let classes = sources
            .fold
            .iter()
            .map(|&c| (c, super::automaton_build::case_class(c)))
            .collect();
        CompiledGuard { patterns, classes }
    }

    /// The answer to `sources`: its entries in the request's order.
    #[cfg(feature = "compile-patterns")]
    pub fn to_wire(&self, sources: &GuardSources) -> Vec<u8> {
        let mut out = Vec::new();
        let mut entry = |tag: u8, bytes: &[u8]| {
            out.push(tag);
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(bytes);
        };
        for source in &sources.patterns {
            match self.pattern(source) {
                Ok(p) => entry(COMPILED, &p.to_bytes()),
                Err(why) => entry(INVALID, why.as_bytes()),
            }
        }
        for &c in &sources.fold {
            let class: String = self.case_class(c).unwrap_or_default().into_iter().collect();
            entry(CLASS, class.as_bytes());
        }
        out
    }

    /// Reads the control plane's answer to `sources`. An answer that is not one entry per
    /// pattern and character, or whose bytes do not load, is an error: the config is not
    /// validated with it.
    pub fn from_wire(sources: &GuardSources, mut answer: &[u8]) -> Result<CompiledGuard, String> {
        let mut next = || -> Result<(u8, &[u8]), String> {
            let (&tag, rest) = answer.split_first().ok_or("truncated answer")?;
            let (len, rest) = rest.split_first_chunk::<4>().ok_or("truncated answer")?;
            let len = u32::from_le_bytes(*len) as usize;
            if rest.len() < len {
                return Err("truncated answer".into());
            }
            let (bytes, rest) = rest.split_at(len);
            answer = rest;
            Ok((tag, bytes))
        };
        let mut out = CompiledGuard::default();
        for source in &sources.patterns {
            let compiled = match next()? {
                (COMPILED, bytes) => Ok(Arc::new(
                    PatternAutomaton::from_bytes(bytes)
                        .map_err(|e| format!("a compiled pattern does not load: {e}"))?,
                )),
                (INVALID, bytes) => Err(String::from_utf8_lossy(bytes).into_owned()),
                (tag, _) => return Err(format!("unexpected entry {tag} for a pattern")),
            };
            out.patterns.insert(source.clone(), compiled);
        }
        for &c in &sources.fold {
            let class = match next()? {
                (CLASS, bytes) => std::str::from_utf8(bytes)
                    .map_err(|_| "a case class is not UTF-8")?
                    .chars()
                    .collect::<Vec<char>>(),
                (tag, _) => return Err(format!("unexpected entry {tag} for a case class")),
            };
            if !class.contains(&c) {
                return Err(format!("the case class of {c:?} does not hold it"));
            }
            out.classes.insert(c, class);
        }
        if next().is_ok() {
            return Err("more entries than asked for".into());
        }
        Ok(out)
    }

    /// `source` compiled, or why it cannot be used.
    pub(crate) fn pattern(&self, source: &str) -> Result<Arc<PatternAutomaton>, String> {
        if let Some(found) = self.patterns.get(source) {
            return found.clone();
        }
        #[cfg(feature = "compile-patterns")]
        {
            super::automaton_build::compile_pattern(source).map(Arc::new)
        }
        #[cfg(not(feature = "compile-patterns"))]
        {
            Err("was not compiled (this build compiles no patterns)".into())
        }
    }

    /// Every character `(?i)` treats as `c` (Unicode simple case folding, regex's tables), `c`
    /// included; `None` for a non-ASCII character this build has no class for.
    pub(crate) fn case_class(&self, c: char) -> Option<Vec<char>> {
        if c.is_ascii() {
            return Some(ascii_case_class(c));
        }
        if let Some(found) = self.classes.get(&c) {
            return Some(found.clone());
        }
        #[cfg(feature = "compile-patterns")]
        {
            Some(super::automaton_build::case_class(c))
        }
        #[cfg(not(feature = "compile-patterns"))]
        {
            None
        }
    }
}

/// An ASCII character's case class without tables: the other-case letter, and the two non-ASCII
/// characters that simple case folding puts with ASCII letters, the Kelvin sign with `k` and the
/// long s with `s` (a test holds this to regex's tables for all 128).
pub(crate) fn ascii_case_class(c: char) -> Vec<char> {
    let mut class = vec![c];
    if c.is_ascii_alphabetic() {
        class.push(if c.is_ascii_lowercase() {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
    }
    match c {
        'k' | 'K' => class.push('\u{212A}'),
        's' | 'S' => class.push('\u{17F}'),
        _ => {}
    }
    class.sort_unstable();
    class
}
