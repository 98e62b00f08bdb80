//! The driver against an in-memory store with the SQL store's semantics: the same objects as a
//! single owner driving the sequencer, lost races re-run, resent batches chained once.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use super::*;
use crate::audit::test_support::{event, keys};
use crate::audit::verify::{verify, VerifyOptions};

const T0: u64 = 1_700_000_000_000;

fn policy() -> ShipPolicy {
    ShipPolicy {
        max_records: 3,
        max_age_ms: 1_000,
        heartbeat_ms: 10_000,
    }
}

/// An audit stream in memory, with the SQL store's semantics (also for the ledger's tests).
#[derive(Default)]
pub(crate) struct Memory {
    head: RefCell<Option<StoredHead>>,
    entries: RefCell<BTreeMap<u64, Buffered>>,
    watermarks: RefCell<BTreeMap<String, u64>>,
    objects: RefCell<BTreeMap<String, Vec<u8>>>,
    /// Before the next `swap_head` takes effect, another call appends this event.
    interleave: RefCell<Option<AuditEvent>>,
    fail_puts: Cell<bool>,
    /// The host's own codec, if it has one.
    codec: Option<Box<dyn TrailCodec>>,
}

impl TrailStore for Memory {
    async fn head(&self, _stream: &str) -> Result<Option<StoredHead>, HostError> {
        Ok(self.head.borrow().clone())
    }
    async fn create(&self, head: &SequencerHead) -> Result<(), HostError> {
        let mut h = self.head.borrow_mut();
        if h.is_none() {
            *h = Some(StoredHead {
                version: 0,
                head: head.clone(),
            });
        }
        Ok(())
    }
    async fn append(
        &self,
        base_version: u64,
        next: &SequencerHead,
        entries: &[Buffered],
        watermark: &Watermark<'_>,
    ) -> Result<bool, HostError> {
        let mut h = self.head.borrow_mut();
        let Some(stored) = h.as_mut().filter(|s| s.version == base_version) else {
            return Ok(false);
        };
        for entry in entries {
            self.entries
                .borrow_mut()
                .insert(entry.entry.sequence, entry.clone());
        }
        stored.head = next.clone();
        stored.version += 1;
        self.watermarks
            .borrow_mut()
            .insert(watermark.source.to_string(), watermark.through);
        Ok(true)
    }
    async fn watermark(&self, _stream: &str, source: &str) -> Result<u64, HostError> {
        Ok(self.watermarks.borrow().get(source).copied().unwrap_or(0))
    }
    async fn swap_head(&self, base_version: u64, head: &SequencerHead) -> Result<bool, HostError> {
        let rival = self.interleave.borrow_mut().take();
        if let Some(event) = rival {
            append(self, "eu", &event, T0).await.expect("rival");
        }
        let mut h = self.head.borrow_mut();
        match h.as_mut() {
            Some(stored) if stored.version == base_version => {
                stored.head = head.clone();
                stored.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn entries(&self, _stream: &str, after: u64) -> Result<Vec<Buffered>, HostError> {
        Ok(self
            .entries
            .borrow()
            .range(after + 1..)
            .map(|(_, b)| b.clone())
            .collect())
    }
    async fn drop_entries(&self, _stream: &str, through: u64) -> Result<(), HostError> {
        self.entries.borrow_mut().retain(|s, _| *s > through);
        Ok(())
    }
    async fn backlog(&self, _stream: &str, after: u64) -> Result<(u64, Option<u64>), HostError> {
        let e = self.entries.borrow();
        let mut it = e.range(after + 1..);
        let oldest = it.clone().next().map(|(_, b)| b.appended_ms);
        Ok((it.by_ref().count() as u64, oldest))
    }
    fn codec(&self) -> &dyn TrailCodec {
        self.codec.as_deref().unwrap_or(&SoftwareCodec)
    }
}

impl ObjectSink for Memory {
    async fn put(&self, object: &ObjectPut) -> Result<(), HostError> {
        if self.fail_puts.get() {
            return Err(HostError::Unreachable("bucket down".into()));
        }
        self.objects
            .borrow_mut()
            .insert(object.key.clone(), object.bytes.clone());
        Ok(())
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// One record from its own source (`src-<request id>`), chained: what a one-record batch does.
async fn append(
    store: &Memory,
    stream: &str,
    event: &AuditEvent,
    now_ms: u64,
) -> Result<u64, DriveError> {
    let batch = ForwardBatch {
        stream: stream.to_string(),
        source: format!("src-{}", event.record.request_id),
        first_seq: 1,
        records: vec![event.clone()],
    };
    append_batch(store, &batch, now_ms).await?;
    Ok(store
        .head
        .borrow()
        .as_ref()
        .map_or(0, |h| h.head.last_sequence))
}

#[test]
fn chain_next_is_the_sequencers_append() {
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    let mut head = seq.head().clone();
    for n in 1..=4 {
        let (next, entry) = chain_next(&SoftwareCodec, &head, &event(n), T0 + n).expect("chains");
        let expected = seq.append(&event(n), T0 + n).expect("appends");
        assert_eq!(entry, expected);
        assert_eq!(&next, seq.head());
        head = next;
    }
}

/// The same events at the same times give the same objects, byte for byte, as the Durable
/// Object's single-owner loop; and they verify.
#[test]
fn ships_what_the_single_owner_loop_ships() {
    let (ring, public) = keys();
    let store = Memory::default();
    // The store creates the stream on its first append, at T0 + 400.
    let mut owner = Sequencer::new("eu", T0 + 400).expect("stream");
    let mut expected = BTreeMap::new();
    for n in 1..=7u64 {
        let now = T0 + n * 400;
        assert_eq!(
            run(append(&store, "eu", &event(n), now)).expect("appends"),
            n
        );
        owner.append(&event(n), now).expect("appends");
        run(flush(&store, &store, "eu", now, &policy(), &ring)).expect("flushes");
        while let Some(s) = owner.next_shipment(now, &policy(), &ring).expect("ships") {
            for o in s.objects() {
                expected.insert(o.key.clone(), o.bytes.clone());
            }
            owner.confirm(s.id).expect("confirms");
        }
    }
    assert_eq!(*store.objects.borrow(), expected);
    assert!(!expected.is_empty());
    let head = store.head.borrow().clone().expect("head").head;
    assert_eq!(&head, owner.head());
    // Shipped entries are gone from the store; the rest are still buffered.
    let left: Vec<u64> = store.entries.borrow().keys().copied().collect();
    assert!(left.iter().all(|s| *s > head.shipped_sequence), "{left:?}");
    let report = verify(
        &store.objects.borrow(),
        &public,
        &VerifyOptions {
            now_ms: T0 + 3_000,
            heartbeat_ms: 10_000,
            grace_ms: 60_000,
            max_batch_bytes: 1 << 20,
        },
    );
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[test]
fn an_append_during_a_flush_is_kept_and_the_flush_still_confirms() {
    let (ring, _) = keys();
    let store = Memory::default();
    for n in 1..=3 {
        run(append(&store, "eu", &event(n), T0)).expect("appends");
    }
    // Another instance appends record 4 just before each head swap of the flush.
    *store.interleave.borrow_mut() = Some(event(4));
    let shipped = run(flush(&store, &store, "eu", T0, &policy(), &ring)).expect("flushes");
    assert!(shipped >= 1);
    let head = store.head.borrow().clone().expect("head").head;
    assert_eq!(head.last_sequence, 4, "the rival's append survived");
    assert_eq!(head.shipped_sequence, 3);
    assert!(head.pending.is_none());
    let left: Vec<u64> = store.entries.borrow().keys().copied().collect();
    assert_eq!(left, vec![4]);
}

#[test]
fn a_failed_upload_keeps_the_shipment_pending_and_the_retry_ships_the_same_bytes() {
    let (ring, _) = keys();
    let store = Memory::default();
    for n in 1..=3 {
        run(append(&store, "eu", &event(n), T0)).expect("appends");
    }
    store.fail_puts.set(true);
    assert!(run(flush(&store, &store, "eu", T0, &policy(), &ring)).is_err());
    let head = store.head.borrow().clone().expect("head").head;
    assert!(head.pending.is_some());
    assert!(run(needs_flush(&store, "eu", T0 + 1, &policy())).expect("checks"));
    store.fail_puts.set(false);
    // Later, with more records: the pending batch (1..=3) ships first, unchanged.
    run(append(&store, "eu", &event(4), T0 + 5)).expect("appends");
    run(flush(&store, &store, "eu", T0 + 5, &policy(), &ring)).expect("flushes");
    let keys: Vec<String> = store.objects.borrow().keys().cloned().collect();
    assert!(keys
        .iter()
        .any(|k| k.ends_with("00000000000000000001-00000000000000000003.jsonl.gz")));
}

#[test]
fn a_resent_batch_is_chained_once_and_a_partial_overlap_only_adds_the_rest() {
    let store = Memory::default();
    let batch = |first: u64, n: u64| ForwardBatch {
        stream: "eu".into(),
        source: "acme#2".into(),
        first_seq: first,
        records: (first..first + n).map(event).collect(),
    };
    // Each call also says how many of the batch's records it chained (a host counting usage
    // from forwarded records must not count a resent one twice).
    assert_eq!(
        run(append_batch_counting(&store, &batch(1, 3), T0)).expect("appends"),
        (ForwardAck { through: 3 }, 3)
    );
    // The acknowledgement was lost: the ledger sends the same records again.
    assert_eq!(
        run(append_batch_counting(&store, &batch(1, 3), T0 + 1)).expect("appends"),
        (ForwardAck { through: 3 }, 0)
    );
    assert_eq!(store.entries.borrow().len(), 3, "nothing chained twice");
    // The next batch overlaps what was chained: only 4 and 5 are new.
    assert_eq!(
        run(append_batch_counting(&store, &batch(3, 3), T0 + 2)).expect("appends"),
        (ForwardAck { through: 5 }, 2)
    );
    let ids: Vec<String> = store
        .entries
        .borrow()
        .values()
        .map(|b| {
            b.entry.record_value().expect("json")["request_id"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(ids, vec!["req_1", "req_2", "req_3", "req_4", "req_5"]);
    // Another source's numbering is its own.
    let other = ForwardBatch {
        source: "globex".into(),
        ..batch(1, 1)
    };
    assert_eq!(
        run(append_batch(&store, &other, T0 + 3)).expect("appends"),
        ForwardAck { through: 1 }
    );
    assert_eq!(store.entries.borrow().len(), 6);
}

#[test]
fn flush_due_agrees_with_the_sequencers_alarm() {
    let (ring, _) = keys();
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    let p = policy();
    for step in 0..40u64 {
        let now = T0 + step * 350;
        if step % 3 != 2 {
            seq.append(&event(step + 1), now).expect("appends");
        }
        let buffered: Vec<&Buffered> = seq.buffered().collect();
        let oldest = buffered.first().map(|b| b.appended_ms);
        for probe in [now, now + 200, now + 1_000, now + 12_000] {
            let due = flush_due(seq.head(), buffered.len() as u64, oldest, probe, &p);
            assert_eq!(due, seq.alarm_at(&p) <= probe, "step {step}, probe {probe}");
            assert_eq!(
                next_due(seq.head(), buffered.len() as u64, oldest, &p),
                seq.alarm_at(&p),
                "step {step}"
            );
        }
        if step % 5 == 4 {
            while let Some(s) = seq.next_shipment(now, &p, &ring).expect("ships") {
                seq.confirm(s.id).expect("confirms");
            }
        }
    }
}

/// A host's codec: gzip at level 2 (other deflate bytes than the core's level 6, the same
/// header), SHA-256 counted.
#[derive(Default)]
struct OtherCodec {
    hashes: Rc<Cell<usize>>,
    gzips: Rc<Cell<usize>>,
}

impl TrailCodec for OtherCodec {
    fn sha256(&self, bytes: &[u8]) -> [u8; 32] {
        self.hashes.set(self.hashes.get() + 1);
        SoftwareCodec.sha256(bytes)
    }

    fn gzip(&self, bytes: &[u8]) -> Result<Vec<u8>, crate::audit::batch::BatchError> {
        use std::io::Write as _;
        self.gzips.set(self.gzips.get() + 1);
        let mut encoder = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Vec::new(), flate2::Compression::new(2));
        encoder.write_all(bytes).expect("compresses");
        Ok(encoder.finish().expect("compresses"))
    }
}

#[test]
fn the_hosts_codec_hashes_what_is_chained_and_compresses_what_ships_and_the_trail_verifies() {
    let (ring, public) = keys();
    let codec = OtherCodec::default();
    let (hashes, gzips) = (codec.hashes.clone(), codec.gzips.clone());
    let store = Memory {
        codec: Some(Box::new(codec)),
        ..Memory::default()
    };
    let plain = Memory::default();
    for n in 1..=3 {
        run(append(&store, "eu", &event(n), T0)).expect("appends");
        run(append(&plain, "eu", &event(n), T0)).expect("appends");
    }
    // One hash per chained record, through the codec; the same hashes as the core's own.
    assert_eq!(hashes.get(), 3);
    let last_hash = |m: &Memory| m.head.borrow().clone().expect("head").head.last_hash;
    assert_eq!(last_hash(&store), last_hash(&plain));
    run(flush(&store, &store, "eu", T0, &policy(), &ring)).expect("flushes");
    run(flush(&plain, &plain, "eu", T0, &policy(), &ring)).expect("flushes");
    // The batch went through the codec (then its hash and the digest's).
    assert_eq!(gzips.get(), 1);
    assert_eq!(hashes.get(), 5);
    let batch_of = |m: &Memory| {
        m.objects
            .borrow()
            .iter()
            .find(|(k, _)| k.ends_with(".jsonl.gz"))
            .map(|(_, v)| v.clone())
            .expect("a batch")
    };
    let (ours, core) = (batch_of(&store), batch_of(&plain));
    assert_ne!(ours, core, "level 2 and level 6 deflate differ");
    assert_eq!(ours[..10], core[..10], "the same gzip header");
    let options = VerifyOptions {
        now_ms: T0 + 1_000,
        heartbeat_ms: 10_000,
        grace_ms: 60_000,
        max_batch_bytes: 1 << 20,
    };
    let report = verify(&store.objects.borrow(), &public, &options);
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.records.len(), 3);
}
