//! CPU per request through the whole pipeline with the fake host of the scenario tests (no I/O:
//! what remains is the core's own work: auth, config, plan, guardrails, budget arithmetic,
//! translation, audit record): `cargo bench -p asc-core --bench pipeline`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;

fn tenant(extra: serde_json::Value) -> serde_json::Value {
    let mut t = demo_tenant();
    t["models"]["claude"] = json!({"provider": "anthropic", "endpoint": "http://127.0.0.1:9100/anthropic/v1", "credential": "OPENAI_API_KEY"});
    if let Some(map) = extra.as_object() {
        for (k, v) in map {
            t[k] = v.clone();
        }
    }
    t
}

fn anthropic_reply() -> Vec<u8> {
    json!({"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5",
        "content":[{"type":"text","text":"Hello there, how can I help you today?"}],
        "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":9}})
    .to_string()
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let prompt = "Please summarise the attached notes for jane.doe@example.com before Friday's review; keep it short.";
    let cases: Vec<(&str, serde_json::Value, &str, bool)> = vec![
        (
            "openai->openai plain",
            tenant(json!({})),
            "gpt-4o-mini",
            false,
        ),
        (
            "openai->openai guardrails+budget",
            tenant(json!({
                "guardrails": {"detectors": {"email": {"mode": "redact"}, "credit_card": {"mode": "block"}}},
                "budgets": [{"id": "m", "applies_to": "tenant", "limit_usd_micros": 1_000_000_000_000u64, "period": "monthly"}]
            })),
            "gpt-4o-mini",
            false,
        ),
        ("openai->anthropic", tenant(json!({})), "claude", true),
    ];
    let mut group = c.benchmark_group("pipeline");
    for (name, config, model, anthropic) in cases {
        let host = FakeHost::new();
        host.put_tenant(&config);
        let key = host.mint_key("demo", 1, &all_scopes());
        let gw = local_gateway();
        let body = json!({"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": prompt}]});
        group.bench_function(name, |b| {
            b.iter(|| {
                host.script(ok_json(if anthropic {
                    anthropic_reply()
                } else {
                    completion_json()
                }));
                let (status, _, _) = run(&gw, &host, chat(&key, &body));
                assert_eq!(status, 200);
                host.sent.borrow_mut().clear();
                host.events.borrow_mut().clear();
                host.ledger_ops.borrow_mut().clear();
                host.audit.borrow_mut().clear();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
