//! What a tenant ledger object spends per group commit (64 finished records applied, then the
//! pieces to store taken), with an empty outbox and with a backlog of 20,000 records waiting
//! (the audit stream down for ~20 s at 1,000 requests/s): the cost must not grow with the backlog.
//! And the same group as the object receives it: 64 operations as JSON text, parsed first.
//! `cargo bench -p asc-core --bench ledger`.

use asc_core::ledger::{LedgerOp, RecordAsk, TenantLedger};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};

#[path = "support/record.rs"]
mod support;
use support::record;

const GROUP: u64 = 64;

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
        group.bench_function(format!("64 records + writes with {backlog} waiting"), |b| {
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
    // As a ledger object gets them: each operation's JSON text, parsed, then applied.
    let texts: Vec<String> = (0..GROUP)
        .map(|i| {
            serde_json::to_string(&LedgerOp::Record(RecordAsk {
                now_ms: 1_767_225_700_000,
                record: record(1_000_000 + i),
            }))
            .expect("serializes")
        })
        .collect();
    let empty = ledger_with_backlog(0);
    group.bench_function("64 records parsed from JSON + writes", |b| {
        b.iter_batched(
            || empty.clone(),
            |mut ledger| {
                for text in &texts {
                    let op: LedgerOp = serde_json::from_str(text).expect("parses");
                    black_box(ledger.apply(op));
                }
                let writes = ledger.take_writes().expect("serializes");
                (ledger, writes)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
