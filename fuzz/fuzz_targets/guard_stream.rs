//! Splits the input at fuzzer-chosen points and checks that streaming redaction equals the
//! whole-text redaction (output and decisions), and that the held-back text stays bounded.
#![no_main]

use asc_core::guard::{Findings, Side, StreamRedactor};
use libfuzzer_sys::fuzz_target;

#[path = "policy.rs"]
mod policy;

fuzz_target!(|data: &[u8]| {
    // [selector][n cuts][n cut bytes][text]
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, text) = rest.split_at(n);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let scanner = policy::policy(selector).scanner();

    let mut whole_ledger = Findings::default();
    let whole = scanner
        .redact(text, Side::Response, &mut whole_ledger)
        .expect("responses are never blocked")
        .unwrap_or_else(|| text.to_string());

    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| {
            let mut i = usize::from(c) * text.len() / 256;
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        })
        .collect();
    points.sort_unstable();
    points.push(text.len());

    let mut ledger = Findings::default();
    let mut r = StreamRedactor::new(scanner.clone());
    let mut out = String::new();
    let mut prev = 0;
    for p in points {
        out.push_str(&r.push(&text[prev..p], &mut ledger));
        assert!(r.pending() <= scanner.max_holdback());
        prev = p;
    }
    out.push_str(&r.finish(&mut ledger));
    assert_eq!(out, whole);
    assert_eq!(ledger.decisions(), whole_ledger.decisions());
});
