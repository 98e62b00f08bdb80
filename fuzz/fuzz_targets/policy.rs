//! The policy both targets fuzz: every detector, a custom pattern and deny terms. The first input
//! byte picks the modes, so block, redact and flag lanes all get exercised.

use asc_core::guard::GuardPolicy;
use serde_json::json;
use std::sync::OnceLock;

pub fn policy(selector: u8) -> &'static GuardPolicy {
    static POLICIES: OnceLock<Vec<GuardPolicy>> = OnceLock::new();
    let all = POLICIES.get_or_init(|| {
        ["block", "redact", "flag"]
            .iter()
            .map(|mode| {
                GuardPolicy::from_json(&json!({
                    "deny_terms": ["project x", "c++", "über"],
                    "deny_mode": mode,
                    "custom_patterns": [{"name": "mrn", "regex": "(?i)mrn-[0-9]{8}", "mode": mode}],
                    "detectors": {"email": {"mode": mode}, "phone": {"mode": "flag"},
                                  "credit_card": {"mode": mode}, "iban": {"mode": "redact"},
                                  "us_ssn": {"mode": mode}, "ip_address": {"mode": "redact"},
                                  "secret": {"mode": mode}, "prompt_injection": {"mode": "flag"}}
                }))
                .expect("valid policy")
            })
            .collect()
    });
    &all[usize::from(selector) % all.len()]
}
