//! CPU per request through the whole pipeline with the fake host of the scenario tests (no I/O:
//! what remains is the core's own work: auth, config, plan, guardrails, the tenant ledger's
//! admission and commit and the rows they change, translation, the audit record and its
//! forwarding out of the ledger): `cargo bench -p asc-core --bench pipeline`. The host keeps no
//! copies for inspection and the request and reply bytes are built once, so the figure is the
//! core's, not the harness's.

#[path = "../tests/common/mod.rs"]
mod common;

use asc_core::host::Chunks;
use asc_core::pipeline::Inbound;
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
        host.observing.set(false);
        let body = json!({"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": prompt}]})
            .to_string()
            .into_bytes();
        let reply = if anthropic {
            anthropic_reply()
        } else {
            completion_json()
        };
        let headers: Vec<(String, String)> = vec![
            ("host".into(), "127.0.0.1:8787".into()),
            ("authorization".into(), format!("Bearer {key}")),
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), body.len().to_string()),
        ];
        let once = || {
            host.script(ok_json(reply.clone()));
            let req = Inbound {
                method: "POST".into(),
                path: "/v1/chat/completions".into(),
                headers: headers.clone(),
                body: Chunks(std::iter::once(body.clone()).collect()),
            };
            let (status, _, _) = run(&gw, &host, req);
            assert_eq!(status, 200);
        };
        // ASC_BENCH_CASE=<name> ASC_BENCH_ITERATIONS=<n>: that case n times, no timing, for a
        // count that noise cannot move (tests/bench/core-instructions.sh runs it under callgrind).
        #[allow(
            clippy::disallowed_methods,
            reason = "the benchmark harness, not the core, reads its own settings"
        )]
        let counted = (
            std::env::var("ASC_BENCH_CASE"),
            std::env::var("ASC_BENCH_ITERATIONS"),
        );
        if let (Ok(case), Ok(n)) = counted {
            if case == name {
                for _ in 0..n.parse::<u64>().unwrap_or(0) {
                    once();
                }
            }
            continue;
        }
        group.bench_function(name, |b| b.iter(once));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
