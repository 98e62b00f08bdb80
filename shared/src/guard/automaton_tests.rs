//! The table DFAs against the regex crate, the specification: the same leftmost-first match from
//! every position, for patterns of the shapes tenants write.

use std::sync::LazyLock;

use proptest::prelude::*;
use regex::Regex;

use super::*;
use crate::guard::automaton_build::compile_pattern;
use crate::guard::patterns::{CompiledGuard, GuardSources};

/// Patterns with classes, alternations whose order decides the match, case folding, Unicode
/// classes, line anchors and word boundaries.
const PATTERNS: &[&str] = &[
    "MRN-[0-9]{8}",
    r"\b[A-Z]{2}[0-9]{6}\b",
    "(?:EMP|CUS|ORD|INV)-[0-9]{6,10}",
    "(?i)codename[ -]falcon",
    "a|ab|abc",
    "abc|ab|a",
    "(?:a|aa|a?a){1,20}b",
    r"\d{3}-\d{2}",
    r"[\p{L}]{2,5}",
    r"\w{2,4}x",
    r"(?m)^id:[a-z]{1,5}$",
    r"(?m)^[0-9]{2}",
    r"\Bab\B",
    r"\b{start}ab",
    r"x\b{end}",
    "é{1,3}ü",
    r"(?i)straße|K",
    r"[^a-z\s]{2,6}",
];

fn reference(pattern: &str) -> Regex {
    // A DFA sees ASCII word characters only: the specification is the pattern with its word
    // boundaries in ASCII form.
    let ascii = pattern
        .replace(r"\b{start}", "\u{1}")
        .replace(r"\b{end}", "\u{2}")
        .replace(r"\b", r"(?-u:\b)")
        .replace(r"\B", r"(?-u:\B)")
        .replace('\u{1}', r"(?-u:\b{start})")
        .replace('\u{2}', r"(?-u:\b{end})");
    Regex::new(&ascii).expect("compiles")
}

/// Each pattern compiled both ways, once.
static COMPILED: LazyLock<Vec<(&str, PatternAutomaton, Regex)>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .map(|p| (*p, compile_pattern(p).expect("compiles"), reference(p)))
        .collect()
});

fn check_all_positions(pattern: &str, automaton: &PatternAutomaton, re: &Regex, hay: &str) {
    for at in (0..=hay.len()).filter(|&i| hay.is_char_boundary(i)) {
        let want = re.find_at(hay, at).map(|m| (m.start(), m.end()));
        assert_eq!(
            automaton.find_at(hay, at),
            want,
            "{pattern:?} in {hay:?} from {at}"
        );
    }
}

fn text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "a", "b", "c", "x", "A", "B", "Z", "abc", "ab", "0", "1", "9", "-", " ", "\n", "\r", ":",
        "id:", "MRN-", "EMP-", "é", "ü", "ß", "SS", "K", "k", "\u{212A}", "Straße", "falcon",
        "CODENAME", "😀", "_",
    ]);
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn every_pattern_finds_what_regex_finds_from_every_position(hay in text()) {
        for (pattern, automaton, re) in COMPILED.iter() {
            check_all_positions(pattern, automaton, re, &hay);
        }
    }
}

#[test]
fn written_out_cases() {
    let find = |p: &str, hay: &str| compile_pattern(p).expect("compiles").find_at(hay, 0);
    assert_eq!(find("MRN-[0-9]{8}", "id MRN-12345678."), Some((3, 15)));
    assert_eq!(
        find("a|ab", "xab"),
        Some((1, 2)),
        "the earlier alternative wins"
    );
    assert_eq!(find("ab|a", "xab"), Some((1, 3)));
    assert_eq!(find("(?i)falcon", "FALCON"), Some((0, 6)));
    assert_eq!(
        find("(?i)k", "\u{212A}"),
        Some((0, 3)),
        "Kelvin sign folds to k"
    );
    assert_eq!(find("[0-9]{3}", "12"), None);
    // Word boundaries are ASCII: a non-ASCII letter is a non-word character beside them.
    assert_eq!(find(r"\bfoo\b", "éfoo"), Some((2, 5)));
    assert_eq!(find(r"\bfoo\b", "afoo"), None);
}

#[test]
fn a_compiled_pattern_survives_its_bytes_and_refuses_any_damage() {
    let automaton = compile_pattern(r"\b[A-Z]{2}[0-9]{6}\b").expect("compiles");
    let bytes = automaton.to_bytes();
    assert_eq!(PatternAutomaton::from_bytes(&bytes), Ok(automaton.clone()));
    for len in 0..bytes.len() {
        assert!(
            PatternAutomaton::from_bytes(&bytes[..len]).is_err(),
            "a truncation to {len} bytes loads"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(PatternAutomaton::from_bytes(&longer).is_err());
    // The last transition pointing past the last state.
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        PatternAutomaton::from_bytes(&bad),
        Err("state out of range")
    );
    // An accelerated state that names no byte would skip to the end of the text.
    let automaton = compile_pattern("MRN-[0-9]{8}").expect("compiles");
    let mut parts_bytes = automaton.to_bytes();
    let accel_at = accel_offset(&parts_bytes);
    parts_bytes[accel_at] = 0;
    assert_eq!(
        PatternAutomaton::from_bytes(&parts_bytes),
        Err("malformed accelerator")
    );
}

/// Where the forward DFA's first accelerated state's byte count sits in `bytes` (`to_bytes`'s
/// layout: magic, max_len, ranges, then the forward DFA's states, special, classes, starts, flags,
/// accelerators).
fn accel_offset(bytes: &[u8]) -> usize {
    let u32_at =
        |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes")) as usize;
    let ranges = u32_at(8);
    let dfa = 12 + ranges * 8;
    let states = u32_at(dfa);
    let flags = dfa + 8 + 256 + STARTS * 4;
    let first = bytes[flags..flags + states]
        .iter()
        .position(|&f| f & FLAG_ACCEL != 0)
        .expect("an accelerated state");
    flags + states + first * (ACCEL_BYTES + 1)
}

#[test]
fn patterns_and_case_classes_travel_compiled_and_invalid_ones_keep_their_reason() {
    let sources = GuardSources {
        patterns: vec!["MRN-[0-9]{8}".to_string(), "a+".to_string()],
        fold: vec!['é', 'ſ'],
    };
    let wire = CompiledGuard::compile(&sources).to_wire(&sources);
    let got = CompiledGuard::from_wire(&sources, &wire).expect("reads");
    let mrn = got.pattern("MRN-[0-9]{8}").expect("compiled");
    assert_eq!(mrn.find_at("x MRN-00000001", 0), Some((2, 14)));
    let why = got.pattern("a+").expect_err("refused");
    assert!(why.contains("unbounded"), "{why}");
    assert_eq!(got.case_class('é'), Some(vec!['É', 'é']));
    assert_eq!(got.case_class('ſ'), Some(vec!['S', 's', 'ſ']));
    // One entry per pattern and character, no more, no less; damaged bytes are refused.
    let fewer = GuardSources {
        fold: vec!['é'],
        ..sources.clone()
    };
    assert!(CompiledGuard::from_wire(&fewer, &wire).is_err());
    let more = GuardSources {
        fold: vec!['é', 'ſ', 'ü'],
        ..sources.clone()
    };
    assert!(CompiledGuard::from_wire(&more, &wire).is_err());
    for len in 0..wire.len() {
        assert!(
            CompiledGuard::from_wire(&sources, &wire[..len]).is_err(),
            "cut at {len}"
        );
    }
    let mut bad = wire.clone();
    bad[0] = 9;
    assert!(CompiledGuard::from_wire(&sources, &bad).is_err());
    // A class that does not hold its character is refused.
    let swapped = GuardSources {
        patterns: Vec::new(),
        fold: vec!['é'],
    };
    let other = GuardSources {
        patterns: Vec::new(),
        fold: vec!['ü'],
    };
    let wire = CompiledGuard::compile(&other).to_wire(&other);
    assert!(CompiledGuard::from_wire(&swapped, &wire).is_err());
}

#[test]
fn ascii_case_classes_are_regexs_without_its_tables() {
    for b in 0..128u8 {
        let c = char::from(b);
        assert_eq!(
            crate::guard::patterns::ascii_case_class(c),
            crate::guard::automaton_build::case_class(c),
            "{c:?}"
        );
    }
}

#[test]
fn a_config_asks_for_its_patterns_and_its_deny_terms_non_ascii_characters() {
    let doc = serde_json::json!({"guardrails": {
        "deny_terms": ["Über Projekt", "kelvin", "café über"],
        "custom_patterns": [{"name": "a", "regex": "x{1,3}"}, {"name": "b", "regex": 7}]
    }});
    let sources = GuardSources::of_config(doc.to_string().as_bytes());
    assert_eq!(
        sources.patterns,
        ["x{1,3}"],
        "what has the right shape; validation reports the rest"
    );
    assert_eq!(sources.fold, ['Ü', 'é', 'ü']);
    let doc = serde_json::json!({"guardrails": {
        "deny_terms": ["Über Projekt", "kelvin", "café über"],
        "custom_patterns": [{"name": "a", "regex": "x{1,3}"}]
    }});
    let sources = GuardSources::of_config(doc.to_string().as_bytes());
    assert_eq!(sources.patterns, ["x{1,3}"]);
    assert_eq!(
        sources.fold,
        ['Ü', 'é', 'ü'],
        "sorted, distinct, non-ASCII only"
    );
    let plain = serde_json::json!({"guardrails": {"deny_terms": ["project nightingale"]}});
    assert!(GuardSources::of_config(plain.to_string().as_bytes()).is_empty());
    assert!(GuardSources::of_config(b"not json").is_empty());
}

#[test]
fn a_pattern_too_large_for_a_table_is_refused_with_what_to_change() {
    let why = compile_pattern(r"\w{1,60}\w{1,60}x").expect_err("refused");
    assert!(why.contains("ASCII classes"), "{why}");
}

#[test]
fn a_config_whose_patterns_together_take_too_much_memory_is_refused() {
    let patterns = |n: usize| {
        let list: Vec<serde_json::Value> = (0..n)
            .map(|i| serde_json::json!({"name": format!("p{i}"), "regex": format!(r"\d{{1,{}}}", 100 - i), "mode": "redact"}))
            .collect();
        serde_json::json!({ "custom_patterns": list })
    };
    // One such pattern (~3.3 MiB of tables) fits; three do not.
    crate::guard::GuardPolicy::from_json(&patterns(1)).expect("fits");
    let Err(errs) = crate::guard::GuardPolicy::from_json(&patterns(3)) else {
        panic!("three are refused");
    };
    let text = format!("{errs:?}");
    assert!(
        text.contains("guardrails.custom_patterns") && text.contains("at most 8 MiB"),
        "{text}"
    );
}
