use serde_json::json;

use super::*;

fn errors(v: serde_json::Value) -> Vec<String> {
    GuardPolicy::from_json(&v)
        .expect_err("invalid")
        .0
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

#[test]
fn the_default_enables_nothing() {
    let p = GuardPolicy::default();
    assert!(!p.scans_requests() && !p.scans_responses());
    assert_eq!(p.max_input_chars, None);
    assert_eq!(p.max_output_tokens, None);
    assert_eq!(GuardPolicy::from_json(&json!({})).expect("valid"), p);
}

#[test]
fn a_full_policy_validates() {
    let p = GuardPolicy::from_json(&json!({
        "max_input_chars": 200000,
        "max_output_tokens": 4096,
        "deny_terms": ["project x"],
        "deny_mode": "redact",
        "custom_patterns": [{"name": "mrn", "regex": "MRN-[0-9]{8}", "mode": "redact", "placeholder": "MRN"},
                            {"name": "case_id", "regex": "(?i)case #[0-9]{4,10}"}],
        "detectors": {"email": {"mode": "redact"}, "phone": {"mode": "flag"}, "credit_card": {"mode": "block"},
                      "iban": {"mode": "block"}, "us_ssn": {"mode": "block"}, "ip_address": {"mode": "flag"},
                      "secret": {"mode": "block"}, "prompt_injection": {"mode": "flag"}},
        "apply_to": {"requests": true, "responses": false}
    }))
    .expect("valid");
    assert_eq!(p.max_input_chars, Some(200_000));
    assert_eq!(p.max_output_tokens, Some(4096));
    assert!(p.scans_requests() && !p.scans_responses());
    let rules = p.scanner().rules();
    assert_eq!(rules.detectors.len(), 8);
    assert_eq!(rules.detectors[&Detector::CreditCard], Action::Block);
    assert_eq!(rules.deny_mode, Action::Redact);
    assert_eq!(rules.custom_patterns[1].placeholder, "CASE_ID");
    assert_eq!(rules.custom_patterns[1].mode, Action::Redact);
    // Bounded: a stream never holds back more than the longest rule plus context.
    let holdback = p.scanner().max_holdback();
    assert!((100..=4200).contains(&holdback), "{holdback}");
}

#[test]
fn every_error_has_its_path() {
    let errs = errors(json!({
        "max_input_chars": 0,
        "max_output_tokens": "lots",
        "deny_terms": ["ok", "  ", 7],
        "deny_mode": "shout",
        "custom_patterns": [
            {"name": "mrn", "regex": "MRN-[0-9]{8}"},
            {"name": "Bad Name", "regex": "x{1,3}", "mode": "redact"},
            {"name": "open", "regex": "MRN-[0-9", "mode": "redact"},
            {"name": "unbounded", "regex": "MRN-[0-9]+"},
            {"name": "mrn", "regex": "y", "placeholder": "lower"},
            {"name": "anchored", "regex": "^MRN"},
            {"name": "empty", "regex": "a{0,3}"},
            {"name": "big", "regex": "[0-9]{600}"},
            {"regex": "z", "colour": "red"}
        ],
        "detectors": {"email": {"mode": "hide"}, "fax": {"mode": "flag"},
                      "prompt_injection": {"mode": "block"}, "phone": {}},
        "apply_to": {"requests": "yes"},
        "extra": 1
    }));
    let want = [
        "guardrails.extra: unknown field",
        "guardrails.max_input_chars: must be between 1 and",
        "guardrails.max_output_tokens: must be a whole number",
        "guardrails.apply_to.requests: must be true or false",
        "guardrails.deny_terms[1]: must hold 1-128 characters",
        "guardrails.deny_terms[2]: must be a string",
        "guardrails.deny_mode: must be one of",
        "guardrails.detectors.fax: unknown field",
        "guardrails.detectors.email.mode: must be one of",
        "guardrails.detectors.phone.mode: is required",
        "guardrails.detectors.prompt_injection.mode: prompt_injection is a heuristic",
        "guardrails.custom_patterns[1].name: must be 1-32 of [a-z0-9_]",
        "guardrails.custom_patterns[4].name: duplicates the name \"mrn\"",
        "guardrails.custom_patterns[4].placeholder: must be 1-32 of [A-Z0-9_]",
        "guardrails.custom_patterns[8].colour: unknown field",
        "guardrails.custom_patterns[8].name: is required",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.starts_with(w)),
            "missing {w:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");

    // Regexes are compiled once the rest is valid; each problem has its pattern's index.
    let errs = errors(json!({"custom_patterns": [
        {"name": "mrn", "regex": "MRN-[0-9]{8}"},
        {"name": "open", "regex": "MRN-[0-9"},
        {"name": "unbounded", "regex": "MRN-[0-9]+"},
        {"name": "anchored", "regex": "^MRN"},
        {"name": "empty", "regex": "a{0,3}"},
        {"name": "big", "regex": "[0-9]{600}"},
        {"name": "range", "regex": "x{3,2}"}
    ]}));
    let want = [
        "guardrails.custom_patterns[1].regex: invalid regex: unclosed character class",
        "guardrails.custom_patterns[2].regex: can match text of unbounded length",
        "guardrails.custom_patterns[3].regex: must not use ^",
        "guardrails.custom_patterns[4].regex: can match empty text",
        "guardrails.custom_patterns[5].regex: can match up to 600 bytes",
        "guardrails.custom_patterns[6].regex: invalid regex:",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.starts_with(w)),
            "missing {w:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
}

#[test]
fn multi_line_anchors_are_allowed() {
    let p = GuardPolicy::from_json(&json!({"custom_patterns": [
        {"name": "line", "regex": "(?m)^MRN-[0-9]{8}$", "mode": "flag"}]}))
    .expect("valid");
    assert!(p.scans_requests());
}
