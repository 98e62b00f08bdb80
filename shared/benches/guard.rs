//! Scan throughput of the guardrails with every detector on, over a deterministic 1 MB mix of
//! prose and personal data: `cargo bench -p asc-core --bench guard -- --warm-up-time 1 --measurement-time 5`.

use asc_core::guard::{Findings, GuardPolicy, Side, StreamRedactor};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

const PROSE: &[&str] = &[
    "The quarterly report shows steady growth across all regions.",
    "Please review the attached draft before Friday's meeting.",
    "Our customer asked whether the invoice could be split in two parts.",
    "Version 2.4.1 fixes the timeout seen on slow connections;",
    "the migration ran at 12:30:45 and took 14 minutes.",
    "We agreed to revisit the budget after the audit, not before.",
    "Kind regards, and thanks again for the quick turnaround!",
    "Die Lieferung kommt voraussichtlich am Montag – bitte bestätigen.",
];

const SENSITIVE: &[&str] = &[
    "jane.doe@example.com",
    "+44 20 7946 0958",
    "(415) 555-2671",
    "4111 1111 1111 1111",
    "5555555555554444",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "536-22-1234",
    "192.0.2.44",
    "2001:db8::1",
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "AKIAIOSFODNN7EXAMPLE",
];

/// About 1 MB: prose sentences with one sensitive value every ~4 sentences (xorshift, fixed seed).
fn mixed_text(bytes: usize) -> String {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::with_capacity(bytes + 256);
    while text.len() < bytes {
        let r = next();
        text.push_str(PROSE[(r % PROSE.len() as u64) as usize]);
        text.push(' ');
        if r % 4 == 0 {
            text.push_str("Contact ");
            text.push_str(SENSITIVE[((r >> 8) % SENSITIVE.len() as u64) as usize]);
            text.push_str(". ");
        }
        if r % 16 == 1 {
            text.push('\n');
        }
    }
    text
}

fn all_detectors() -> GuardPolicy {
    GuardPolicy::from_json(&json!({
        "deny_terms": ["project nightingale", "operation blue"],
        "custom_patterns": [{"name": "mrn", "regex": "MRN-[0-9]{8}", "mode": "redact"}],
        "detectors": {"email": {"mode": "redact"}, "phone": {"mode": "redact"}, "credit_card": {"mode": "redact"},
                      "iban": {"mode": "redact"}, "us_ssn": {"mode": "redact"}, "ip_address": {"mode": "redact"},
                      "secret": {"mode": "redact"}, "prompt_injection": {"mode": "flag"}}
    }))
    .expect("valid policy")
}

fn bench(c: &mut Criterion) {
    let policy = all_detectors();
    let scanner = policy.scanner().clone();
    let text = mixed_text(1 << 20);
    let mut group = c.benchmark_group("guard");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(10);
    group.bench_function("redact_1mb_all_detectors", |b| {
        b.iter(|| {
            let mut findings = Findings::default();
            black_box(scanner.redact(black_box(&text), Side::Response, &mut findings))
        })
    });
    group.bench_function("stream_1mb_64b_deltas", |b| {
        let mut deltas: Vec<&str> = Vec::new();
        let mut start = 0;
        while start < text.len() {
            let mut end = (start + 64).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            deltas.push(&text[start..end]);
            start = end;
        }
        b.iter(|| {
            let mut findings = Findings::default();
            let mut r = StreamRedactor::new(scanner.clone());
            let mut n = 0;
            for d in &deltas {
                n += r.push(d, &mut findings).len();
            }
            n += r.finish(&mut findings).len();
            black_box(n)
        })
    });
    group.finish();

    // Each rule group alone, over the same text: which detector the scan's time goes to.
    let mut each = c.benchmark_group("guard_by_detector");
    each.throughput(Throughput::Bytes(text.len() as u64));
    each.sample_size(10);
    let mode = |m: &str| json!({"mode": m});
    let alone: [(&str, serde_json::Value); 14] = [
        ("email", json!({"detectors": {"email": mode("redact")}})),
        ("phone", json!({"detectors": {"phone": mode("redact")}})),
        (
            "credit_card",
            json!({"detectors": {"credit_card": mode("redact")}}),
        ),
        ("iban", json!({"detectors": {"iban": mode("redact")}})),
        ("us_ssn", json!({"detectors": {"us_ssn": mode("redact")}})),
        (
            "ip_address",
            json!({"detectors": {"ip_address": mode("redact")}}),
        ),
        ("secret", json!({"detectors": {"secret": mode("redact")}})),
        (
            "prompt_injection",
            json!({"detectors": {"prompt_injection": mode("flag")}}),
        ),
        (
            "deny_terms",
            json!({"deny_terms": ["project nightingale", "operation blue"]}),
        ),
        ("deny_terms_100", json!({"deny_terms": many_terms(100)})),
        (
            "custom_pattern",
            json!({"custom_patterns": [{"name": "mrn", "regex": "MRN-[0-9]{8}", "mode": "redact"}]}),
        ),
        (
            "custom_pattern_alternation",
            json!({"custom_patterns": [{"name": "ids", "regex": "(?:EMP|CUS|ORD|INV)-[0-9]{6,10}", "mode": "redact"}]}),
        ),
        (
            "custom_pattern_case_insensitive",
            json!({"custom_patterns": [{"name": "codename", "regex": "(?i)codename[ -]falcon", "mode": "redact"}]}),
        ),
        (
            "custom_pattern_word_bounded",
            json!({"custom_patterns": [{"name": "passport", "regex": r"\b[A-Z]{2}[0-9]{6}\b", "mode": "redact"}]}),
        ),
    ];
    for (name, config) in alone {
        let scanner = GuardPolicy::from_json(&config)
            .expect("valid policy")
            .scanner()
            .clone();
        each.bench_function(name, |b| {
            b.iter(|| {
                let mut findings = Findings::default();
                black_box(scanner.redact(black_box(&text), Side::Response, &mut findings))
            })
        });
    }
    each.finish();

    // What a new isolate pays when it loads a tenant config with a long deny list (100 terms:
    // before the deny-term matcher, a regex of ~150 such terms exceeded its size limit).
    let mut compile = c.benchmark_group("guard_compile");
    compile.sample_size(20);
    let config = json!({"deny_terms": many_terms(100)});
    compile.bench_function("deny_terms_100", |b| {
        b.iter(|| black_box(GuardPolicy::from_json(black_box(&config)).expect("valid")))
    });
    // Custom patterns: compiled where configs are compiled (on Workers, the control plane, once
    // per config version an isolate loads).
    let config = json!({"custom_patterns": [
        {"name": "mrn", "regex": "MRN-[0-9]{8}", "mode": "redact"},
        {"name": "ids", "regex": "(?:EMP|CUS|ORD|INV)-[0-9]{6,10}", "mode": "redact"},
        {"name": "codename", "regex": "(?i)codename[ -]falcon", "mode": "redact"},
        {"name": "passport", "regex": r"\b[A-Z]{2}[0-9]{6}\b", "mode": "redact"}
    ]});
    compile.bench_function("custom_patterns_4", |b| {
        b.iter(|| black_box(GuardPolicy::from_json(black_box(&config)).expect("valid")))
    });
    compile.finish();
}

/// `n` distinct deny terms of one to three words, some with non-ASCII letters.
fn many_terms(n: usize) -> Vec<String> {
    const FIRST: &[&str] = &[
        "project",
        "operation",
        "codename",
        "initiative",
        "Geheimprojekt",
        "programme",
        "opération",
        "task force",
        "Проект",
        "deal",
    ];
    const SECOND: &[&str] = &[
        "nightingale",
        "blue",
        "Ölfeld",
        "atlas",
        "kestrel",
        "zephyr",
        "北極星",
        "mercury",
        "tundra",
        "obsidian",
        "saffron",
        "quarry",
        "lantern",
        "meridian",
        "harbour",
        "cinder",
        "ember",
        "falconer",
        "granite",
        "juniper",
        "sable",
        "talisman",
        "umber",
        "vesper",
        "willow",
        "yarrow",
        "zenith",
        "borealis",
        "cobalt",
        "delta",
    ];
    (0..n)
        .map(|i| {
            let first = FIRST[i % FIRST.len()];
            let second = SECOND[(i / FIRST.len()) % SECOND.len()];
            format!("{first} {second}")
        })
        .collect()
}

criterion_group!(benches, bench);
criterion_main!(benches);
