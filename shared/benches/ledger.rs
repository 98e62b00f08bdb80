//! What a tenant ledger object spends per group commit (64 finished records applied, then the
//! pieces to store taken), with an empty outbox and with a backlog of 20,000 records waiting
//! (the audit stream down for ~20 s at 1,000 requests/s): the cost must not grow with the backlog.
//! `cargo bench -p asc-core --bench ledger`.

use asc_core::audit::{AuditEvent, AuditRecord, Outcome, Usage, AUDIT_SCHEMA_VERSION};
use asc_core::ledger::{LedgerOp, RecordAsk, TenantLedger};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};

const GROUP: u64 = 64;

fn record(n: u64) -> AuditEvent {
    let mut e = AuditEvent::from(AuditRecord {
        schema_version: AUDIT_SCHEMA_VERSION,
        request_id: format!("req_{n:024x}"),
        timestamp_ms: 1_767_225_600_000 + n,
        region: "eu".into(),
        tenant_id: Some("acme".into()),
        key_id: Some("k_1".into()),
        operation: "chat.completions".into(),
        requested_model: Some("gpt-4o-mini".into()),
        served_model: Some("gpt-4o-mini-2024-07-18".into()),
        provider: Some("openai".into()),
        endpoint_host: Some("eu.api.openai.com".into()),
        stream: false,
        outcome: Outcome::Ok,
        status: 200,
        error_code: None,
        usage: Some(Usage {
            input_tokens: 412,
            output_tokens: 64,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
        }),
        latency_ms: 312,
        policy_version: Some("4b1d".into()),
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
    });
    e.detail.prompt_sha256 =
        Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into());
    e.detail.settled_usd_micros = Some(80);
    e
}

fn ledger_with_backlog(backlog: u64) -> TenantLedger {
    let mut ledger = TenantLedger::default();
    for n in 0..backlog {
        ledger.apply(LedgerOp::Record(RecordAsk {
            now_ms: 1_767_225_600_000 + n,
            record: record(n),
        }));
    }
    ledger.take_writes().expect("serializes");
    ledger
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ledger");
    group.sample_size(20);
    for backlog in [0, 20_000] {
        let filled = ledger_with_backlog(backlog);
        let ops: Vec<LedgerOp> = (0..GROUP)
            .map(|i| {
                LedgerOp::Record(RecordAsk {
                    now_ms: 1_767_225_700_000,
                    record: record(1_000_000 + i),
                })
            })
            .collect();
        group.bench_function(format!("64 records + writes, {backlog} waiting"), |b| {
            b.iter_batched(
                || (filled.clone(), ops.clone()),
                |(mut ledger, ops)| {
                    for op in ops {
                        black_box(ledger.apply(op));
                    }
                    let writes = ledger.take_writes().expect("serializes");
                    // Dropped after the timing: what a group costs, not freeing the backlog.
                    (ledger, writes)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
