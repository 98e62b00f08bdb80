//! CPU per audit record through a stream (native): a ledger's batch appended (parsed from the
//! JSON a ledger forwards, dropped-if-seen, chained: canonical JSON + SHA-256 per record), then
//! shipped (gzip JSON Lines + an Ed25519-signed digest): `cargo bench -p asc-core --bench audit`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use asc_core::audit::drive::{self, ObjectSink, StoredHead, TrailStore, Watermark};
use asc_core::audit::keys::{key_pair, Validity};
use asc_core::audit::{
    Buffered, ForwardBatch, ObjectPut, SequencerHead, ShipPolicy, SigningKeyring,
};
use asc_core::host::HostError;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

#[path = "support/record.rs"]
mod support;
use support::record;

#[derive(Default)]
struct Memory {
    head: RefCell<Option<StoredHead>>,
    entries: RefCell<BTreeMap<u64, Buffered>>,
    marks: RefCell<HashMap<String, u64>>,
    objects: RefCell<usize>,
}

impl TrailStore for Memory {
    async fn head(&self, _: &str) -> Result<Option<StoredHead>, HostError> {
        Ok(self.head.borrow().clone())
    }
    async fn create(&self, head: &SequencerHead) -> Result<(), HostError> {
        self.head.borrow_mut().get_or_insert(StoredHead {
            version: 0,
            head: head.clone(),
        });
        Ok(())
    }
    async fn append(
        &self,
        base: u64,
        next: &SequencerHead,
        entries: &[Buffered],
        mark: &Watermark<'_>,
    ) -> Result<bool, HostError> {
        let mut h = self.head.borrow_mut();
        let Some(s) = h.as_mut().filter(|s| s.version == base) else {
            return Ok(false);
        };
        s.version += 1;
        s.head = next.clone();
        for e in entries {
            self.entries
                .borrow_mut()
                .insert(e.entry.sequence, e.clone());
        }
        self.marks
            .borrow_mut()
            .insert(mark.source.to_string(), mark.through);
        Ok(true)
    }
    async fn watermark(&self, _: &str, source: &str) -> Result<u64, HostError> {
        Ok(self.marks.borrow().get(source).copied().unwrap_or(0))
    }
    async fn swap_head(&self, base: u64, head: &SequencerHead) -> Result<bool, HostError> {
        let mut h = self.head.borrow_mut();
        let Some(s) = h.as_mut().filter(|s| s.version == base) else {
            return Ok(false);
        };
        s.version += 1;
        s.head = head.clone();
        Ok(true)
    }
    async fn entries(&self, _: &str, after: u64) -> Result<Vec<Buffered>, HostError> {
        Ok(self
            .entries
            .borrow()
            .range(after + 1..)
            .map(|(_, b)| b.clone())
            .collect())
    }
    async fn drop_entries(&self, _: &str, through: u64) -> Result<(), HostError> {
        self.entries.borrow_mut().retain(|s, _| *s > through);
        Ok(())
    }
    async fn backlog(&self, _: &str, after: u64) -> Result<(u64, Option<u64>), HostError> {
        let e = self.entries.borrow();
        let mut r = e.range(after + 1..);
        let oldest = r.clone().next().map(|(_, b)| b.appended_ms);
        Ok((r.by_ref().count() as u64, oldest))
    }
}

impl ObjectSink for Memory {
    async fn put(&self, _: &ObjectPut) -> Result<(), HostError> {
        *self.objects.borrow_mut() += 1;
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    const N: u64 = 128;
    let batch = ForwardBatch {
        stream: "audit-eu".into(),
        source: "acme".into(),
        first_seq: 1,
        records: (0..N).map(record).collect(),
    };
    let json = serde_json::to_string(&batch).expect("json");
    let (spec, _) = key_pair(
        "k",
        &[7; 32],
        Validity {
            not_before_ms: 0,
            not_after_ms: None,
        },
    )
    .expect("key");
    let ring = SigningKeyring::from_specs(&[spec]).expect("ring");
    let policy = ShipPolicy {
        max_records: 500,
        max_age_ms: 0,
        heartbeat_ms: 60_000,
    };
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(N));
    group.bench_function("parse+append 128 records", |b| {
        b.iter_batched(
            Memory::default,
            |store| {
                let batch: ForwardBatch = serde_json::from_str(&json).expect("parses");
                futures::executor::block_on(drive::append_batch(&store, &batch, 1))
                    .expect("appends");
                store
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("parse+append+ship 128 records", |b| {
        b.iter_batched(
            Memory::default,
            |store| {
                let batch: ForwardBatch = serde_json::from_str(&json).expect("parses");
                futures::executor::block_on(async {
                    drive::append_batch(&store, &batch, 1)
                        .await
                        .expect("appends");
                    drive::flush(&store, &store, "audit-eu", 10, &policy, &ring)
                        .await
                        .expect("ships");
                });
                store
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
