//! Tenants' custom patterns, compiled where the build can compile them. A build with the
//! `compile-patterns` feature (the control plane's Worker, Spin, the CLI, the tests) compiles them
//! itself; the request plane's Worker has no regex compiler and gets them, once per config
//! version, from the control plane ([`CompiledPatterns::to_wire`] there, [`from_wire`] here).
//!
//! [`from_wire`]: CompiledPatterns::from_wire

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::automaton::PatternAutomaton;
use super::policy::{MAX_CUSTOM_PATTERNS, MAX_PATTERN_SOURCE};

/// Compiled custom patterns by their source text (or why one cannot be used).
#[derive(Clone, Default)]
pub struct CompiledPatterns {
    given: HashMap<String, Result<Arc<PatternAutomaton>, String>>,
}

/// On the wire, each source's entry is a tag byte ([`COMPILED`] or [`INVALID`]), a 4-byte
/// little-endian length and that many bytes: the automaton's bytes, or why the pattern cannot be
/// used (UTF-8). Binary rather than JSON: a JSON answer needed base64 and serde's enum code in the
/// request plane, ~4 KB of its gzip size.
const COMPILED: u8 = 1;
const INVALID: u8 = 2;

impl CompiledPatterns {
    /// Patterns compiled by this build as they are asked for (without the `compile-patterns`
    /// feature every pattern is refused: such a build gets them from elsewhere).
    pub fn local() -> CompiledPatterns {
        CompiledPatterns::default()
    }

    /// Compiles `sources` (the request the control plane answers).
    #[cfg(feature = "compile-patterns")]
    pub fn compile(sources: &[String]) -> CompiledPatterns {
        let given = sources
            .iter()
            .map(|s| {
                let compiled = super::automaton_build::compile_pattern(s).map(Arc::new);
                (s.clone(), compiled)
            })
            .collect();
        CompiledPatterns { given }
    }

    /// The answer to a request for `sources`: one entry per source, in order.
    #[cfg(feature = "compile-patterns")]
    pub fn to_wire(&self, sources: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for source in sources {
            let (tag, bytes) = match self.get(source) {
                Ok(p) => (COMPILED, p.to_bytes()),
                Err(why) => (INVALID, why.into_bytes()),
            };
            out.push(tag);
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Reads the control plane's answer for `sources`. An answer that is not one entry per
    /// source, or whose bytes do not load, is an error: the config is not validated with it.
    pub fn from_wire(sources: &[String], mut answer: &[u8]) -> Result<CompiledPatterns, String> {
        let mut given = HashMap::new();
        for source in sources {
            let (&tag, rest) = answer.split_first().ok_or("truncated answer")?;
            let (len, rest) = rest.split_first_chunk::<4>().ok_or("truncated answer")?;
            let len = u32::from_le_bytes(*len) as usize;
            if rest.len() < len {
                return Err("truncated answer".into());
            }
            let (bytes, rest) = rest.split_at(len);
            answer = rest;
            let compiled = match tag {
                COMPILED => Ok(Arc::new(
                    PatternAutomaton::from_bytes(bytes)
                        .map_err(|e| format!("a compiled pattern does not load: {e}"))?,
                )),
                INVALID => Err(String::from_utf8_lossy(bytes).into_owned()),
                _ => return Err(format!("unknown entry {tag}")),
            };
            given.insert(source.clone(), compiled);
        }
        if !answer.is_empty() {
            return Err("more entries than sources".into());
        }
        Ok(CompiledPatterns { given })
    }

    /// `source` compiled, or why it cannot be used.
    pub(crate) fn get(&self, source: &str) -> Result<Arc<PatternAutomaton>, String> {
        if let Some(found) = self.given.get(source) {
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
}

/// The custom patterns' sources of a config document (`guardrails.custom_patterns[].regex`), to
/// compile before it is validated; none for a document that is not even JSON of that shape (its
/// validation reports why).
pub fn custom_pattern_sources(config: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Doc {
        guardrails: Option<Guard>,
    }
    #[derive(Deserialize)]
    struct Guard {
        custom_patterns: Option<Vec<Pattern>>,
    }
    #[derive(Deserialize)]
    struct Pattern {
        regex: Option<String>,
    }
    let Ok(doc) = serde_json::from_slice::<Doc>(config) else {
        return Vec::new();
    };
    // Only what validation can accept: a longer list or source is refused before compiling.
    doc.guardrails
        .and_then(|g| g.custom_patterns)
        .unwrap_or_default()
        .into_iter()
        .take(MAX_CUSTOM_PATTERNS)
        .filter_map(|p| p.regex)
        .filter(|s| !s.is_empty() && s.len() <= MAX_PATTERN_SOURCE)
        .collect()
}

/// A request for more sources than a config may hold, or for longer ones: the compiler refuses
/// it rather than compile what no valid config holds.
pub fn sources_within_limits(sources: &[String]) -> bool {
    sources.len() <= MAX_CUSTOM_PATTERNS
        && sources
            .iter()
            .all(|s| !s.is_empty() && s.len() <= MAX_PATTERN_SOURCE)
}
