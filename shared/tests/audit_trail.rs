//! The audit trail's promise, as properties: a log written by the sequencer verifies clean, and
//! every tampering the field notes name is reported: a flipped byte in any object; a record deleted,
//! reordered or inserted inside a batch (re-compressed, with its digest left alone or even
//! re-signed with the genuine key); a batch deleted or two swapped; the newest batches and
//! digests deleted beyond one heartbeat period; a digest re-signed by an unknown, forged,
//! expired or not-yet-valid key.
//!
//! One log is built once (seven digests, four batches, eleven records) and each case mutates
//! a copy, so the cases stay cheap: 10,000 mutation cases (3,200 byte flips, 3,000 record edits,
//! 1,200 batch deletions and swaps, 1,600 re-signed digests, 1,000 tail cuts) plus 300 random
//! untouched logs.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use asc_core::audit::batch::{gunzip, gzip};
use asc_core::audit::keys::key_pair;
use asc_core::audit::verify::{verify, ProblemKind as K, Report, VerifyOptions};
use asc_core::audit::{
    batch_key, entry_hash, Digest, DigestKind, ObjectName, PublicKeyring, Sequencer, ShipPolicy,
    SigningKeyring, Validity,
};
use asc_core::audit::{AuditEvent, AuditRecord, Outcome, Usage, AUDIT_SCHEMA_VERSION};
use proptest::prelude::*;
use proptest::sample::Index;

const T0: u64 = 1_700_000_000_000;
const HEARTBEAT: u64 = 10_000;
const GRACE: u64 = 2_000;
const POLICY: ShipPolicy = ShipPolicy {
    max_records: 4,
    max_age_ms: 1_000,
    heartbeat_ms: HEARTBEAT,
};

fn validity(from: u64, to: Option<u64>) -> Validity {
    Validity {
        not_before_ms: from,
        not_after_ms: to,
    }
}

/// Seeds: the live key, a retired one, a future one (all three in the auditors' file), and a
/// rogue one that is not.
const LIVE: [u8; 32] = [1; 32];
const RETIRED: [u8; 32] = [2; 32];
const FUTURE: [u8; 32] = [3; 32];

fn signing(id: &str, seed: &[u8; 32], v: Validity) -> SigningKeyring {
    let (spec, _) = key_pair(id, seed, v).expect("valid key");
    SigningKeyring::from_specs(&[spec]).expect("ring")
}

fn public_keys() -> PublicKeyring {
    let entries = [
        key_pair("live", &LIVE, validity(T0 - 1, None)),
        key_pair("retired", &RETIRED, validity(T0 - 1_000_000, Some(T0 - 1))),
        key_pair("future", &FUTURE, validity(T0 + 1_000_000_000, None)),
    ]
    .map(|k| k.expect("valid key").1);
    PublicKeyring::from_entries(&entries).expect("keys")
}

fn event(n: u64) -> AuditEvent {
    let mut e = AuditEvent::from(AuditRecord {
        schema_version: AUDIT_SCHEMA_VERSION,
        request_id: format!("req_{n}"),
        timestamp_ms: T0 + n,
        region: "eu".into(),
        tenant_id: Some(["acme", "globex"][n as usize % 2].into()),
        key_id: Some(format!("k_{}", n % 3)),
        operation: "chat.completions".into(),
        requested_model: Some("gpt-4o-mini".into()),
        served_model: Some("gpt-4o-mini".into()),
        provider: Some("openai".into()),
        endpoint_host: Some("eu.api.openai.com".into()),
        stream: false,
        outcome: [
            Outcome::Ok,
            Outcome::Refused,
            Outcome::Error,
            Outcome::Partial,
        ][n as usize % 4],
        status: 200,
        error_code: None,
        usage: Some(Usage {
            input_tokens: n,
            output_tokens: 2 * n,
            ..Usage::default()
        }),
        latency_ms: n,
        policy_version: None,
        trace_id: format!("{n:032x}"),
    });
    e.detail.settled_usd_micros = Some(n * 11);
    e
}

/// A step of a log's life: append records at a time, or let the alarm ship at a time.
#[derive(Debug, Clone, Copy)]
enum Step {
    Append(u64, u64),
    Ship(u64),
}

fn build(steps: &[Step]) -> BTreeMap<String, Vec<u8>> {
    build_stream("eu", steps)
}

fn build_stream(stream: &str, steps: &[Step]) -> BTreeMap<String, Vec<u8>> {
    let ring = signing("live", &LIVE, validity(T0 - 1, None));
    let mut seq = Sequencer::new(stream, T0).expect("stream");
    let mut objects = BTreeMap::new();
    let mut n = 0;
    for step in steps {
        match *step {
            Step::Append(count, at) => {
                for _ in 0..count {
                    n += 1;
                    seq.append(&event(n), at).expect("appends");
                }
            }
            Step::Ship(at) => {
                while let Some(s) = seq.next_shipment(at, &POLICY, &ring).expect("ships") {
                    for o in s.objects() {
                        objects.insert(o.key.clone(), o.bytes.clone());
                    }
                    seq.confirm(s.id).expect("confirms");
                }
            }
        }
    }
    objects
}

struct Log {
    objects: BTreeMap<String, Vec<u8>>,
    /// Digest keys in sequence order, with the parsed digest.
    digests: Vec<(String, Digest)>,
    /// Batch keys in sequence order.
    batches: Vec<String>,
    /// Verification time at which the untouched log is fresh.
    now: u64,
}

fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        use Step::*;
        let objects = build(&[
            Ship(T0), // d1 heartbeat (genesis)
            Append(4, T0 + 100),
            Ship(T0 + 100), // d2 batch 1..=4 (full)
            Append(2, T0 + 200),
            Ship(T0 + 1_200),  // d3 batch 5..=6 (age)
            Ship(T0 + 11_200), // d4 heartbeat
            Append(5, T0 + 12_000),
            Ship(T0 + 12_000), // d5 batch 7..=10 (full)
            Ship(T0 + 13_000), // d6 batch 11..=11 (age)
            Ship(T0 + 23_000), // d7 heartbeat
        ]);
        let mut digests = Vec::new();
        let mut batches = Vec::new();
        for (key, bytes) in &objects {
            match ObjectName::parse(key) {
                Some(ObjectName::Digest { .. }) => digests.push((
                    key.clone(),
                    serde_json::from_slice(bytes).expect("digest parses"),
                )),
                Some(ObjectName::Batch { .. }) => batches.push(key.clone()),
                None => panic!("unexpected object {key}"),
            }
        }
        assert_eq!((digests.len(), batches.len()), (7, 4));
        Log {
            objects,
            digests,
            batches,
            now: T0 + 23_000 + 5_000,
        }
    })
}

fn check(objects: &BTreeMap<String, Vec<u8>>, now: u64) -> Report {
    static KEYS: OnceLock<PublicKeyring> = OnceLock::new();
    let keys = KEYS.get_or_init(public_keys);
    let options = VerifyOptions {
        grace_ms: GRACE,
        ..VerifyOptions::new(now, HEARTBEAT)
    };
    verify(objects, keys, &options)
}

/// `n` cases, with no failure file written into the source tree.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn kinds(report: &Report) -> Vec<K> {
    report.problems.iter().map(|p| p.kind).collect()
}

/// The problems must include one of `expected`.
fn assert_caught(report: &Report, expected: &[K]) -> Result<(), TestCaseError> {
    let found = kinds(report);
    prop_assert!(
        found.iter().any(|k| expected.contains(k)),
        "expected one of {expected:?}, found {found:?}"
    );
    Ok(())
}

fn lines(batch: &[u8]) -> Vec<Vec<u8>> {
    let text = gunzip(batch, 1 << 20).expect("gunzip");
    text.split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn sign(d: &Digest, key_id: &str, ring: &SigningKeyring) -> Vec<u8> {
    let mut d = Digest {
        key_id: key_id.to_string(),
        signature: None,
        ..d.clone()
    };
    d.signature = ring.sign(key_id, &d.signed_bytes().expect("canonical"));
    d.object_bytes().expect("canonical")
}

/// The digest of batch `batch_key` and its index.
fn digest_of(batch: &str) -> (usize, Digest) {
    let log = log();
    let Some(ObjectName::Batch { first, .. }) = ObjectName::parse(batch) else {
        panic!("not a batch key")
    };
    log.digests
        .iter()
        .enumerate()
        .find(|(_, (_, d))| d.kind == DigestKind::Batch && d.first_sequence == first)
        .map(|(i, (_, d))| (i, d.clone()))
        .expect("every batch has a digest")
}

#[derive(Debug, Clone, Copy)]
enum Edit {
    Delete,
    Swap,
    Insert { forged: bool },
}

/// Edits the lines of one batch and re-compresses it. With `resign`, the batch's digest is
/// rewritten to match (count, range, object name, batch hash, chain head) and re-signed with the
/// genuine live key, as an insider with the key would; later digests still pin the chain.
fn edit_batch(
    edit: Edit,
    batch: Index,
    a: Index,
    b: Index,
    resign: bool,
) -> BTreeMap<String, Vec<u8>> {
    let log = log();
    let mut objects = log.objects.clone();
    // A swap needs two lines: pick among the batches that have them.
    let candidates: Vec<&String> = log
        .batches
        .iter()
        .filter(|k| !matches!(edit, Edit::Swap) || lines(&log.objects[*k]).len() >= 2)
        .collect();
    let key = batch.get(&candidates).to_string();
    let mut rows = lines(&objects[&key]);
    let n = rows.len();
    match edit {
        Edit::Delete => {
            rows.remove(a.index(n));
        }
        Edit::Swap => {
            let i = a.index(n);
            let j = (i + 1 + b.index(n - 1)) % n; // any other line
            rows.swap(i, j);
        }
        Edit::Insert { forged } => {
            let at = a.index(n + 1);
            let source = rows[b.index(n)].clone();
            let row = if forged {
                // A new record made to fit at its place: right sequence, right prev_hash, a hash
                // that matches its own content. Only the next link can give it away.
                let mut v: serde_json::Value = serde_json::from_slice(&source).expect("json");
                let (first, prev) = if at == 0 {
                    let d = digest_of(&key).1;
                    let start = log.digests.iter().rev().find(|(_, p)| {
                        p.last_sequence + 1 == d.first_sequence
                            && p.digest_sequence < d.digest_sequence
                    });
                    (
                        d.first_sequence,
                        start.map_or(String::new(), |s| s.1.chain_head.clone()),
                    )
                } else {
                    let p: serde_json::Value = serde_json::from_slice(&rows[at - 1]).expect("json");
                    (
                        p["sequence"].as_u64().expect("seq") + 1,
                        p["hash"].as_str().expect("hash").to_string(),
                    )
                };
                v["sequence"] = first.into();
                v["prev_hash"] = prev.clone().into();
                v["record"]["tenant_id"] = "mallory".into();
                v["hash"] = entry_hash("eu", first, &prev, &v["record"])
                    .expect("hash")
                    .into();
                let mut bytes = asc_core::audit::canonical_json(&v).expect("canonical");
                bytes.push(b'\n');
                bytes
            } else {
                source
            };
            rows.insert(at, row);
        }
    }
    let bytes = gzip(&rows.concat()).expect("gzip");
    if !resign {
        objects.insert(key, bytes);
        return objects;
    }
    let (i, mut d) = digest_of(&key);
    d.count = rows.len() as u64;
    d.last_sequence = d.first_sequence + d.count - 1;
    if let Some(last) = rows.last() {
        let last: serde_json::Value = serde_json::from_slice(last).expect("json");
        d.chain_head = last["hash"].as_str().expect("hash").to_string();
    }
    d.batch_sha256 = Some(asc_core::audit::sha256_hex(&bytes));
    objects.remove(&key);
    objects.insert(batch_key("eu", d.first_sequence, d.last_sequence), bytes);
    let ring = signing("live", &LIVE, validity(T0 - 1, None));
    objects.insert(log.digests[i].0.clone(), sign(&d, "live", &ring));
    objects
}

/// What a record edit inside a batch must trip, even when its digest was re-signed to match:
/// the record chain itself (sequence, prev_hash, hash), or what it must agree with (the count
/// and chain head of its digest, the start of the next batch or heartbeat).
const CHAIN: &[K] = &[
    K::SequenceMismatch,
    K::ChainBroken,
    K::HashMismatch,
    K::ChainHeadMismatch,
    K::CountMismatch,
];

#[test]
fn the_untouched_log_verifies_clean_with_every_record() {
    let log = log();
    let report = check(&log.objects, log.now);
    assert!(report.is_ok(), "{:#?}", report.problems);
    let seqs: Vec<u64> = report.verified().map(|r| r.sequence).collect();
    assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
    assert_eq!(report.records.len(), 11);
    // Fresh up to exactly one heartbeat plus grace after the newest digest; stale after.
    let newest = log.digests.last().expect("digests").1.created_ms;
    assert!(check(&log.objects, newest + HEARTBEAT + GRACE).is_ok());
    assert_eq!(
        kinds(&check(&log.objects, newest + HEARTBEAT + GRACE + 1)),
        [K::TailStale]
    );
}

proptest! {
    #![proptest_config(cases(3_200))]

    #[test]
    fn any_flipped_byte_in_any_object_is_caught(object: Index, at: Index, mask in 1u8..=255) {
        let log = log();
        let mut objects = log.objects.clone();
        let key = object.get(&objects.keys().cloned().collect::<Vec<_>>()).clone();
        let bytes = objects.get_mut(&key).expect("object");
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        let report = check(&objects, log.now);
        prop_assert!(!report.is_ok(), "flip at {key}[{i}] ^ {mask:#x} went unnoticed");
        // Nothing from a tampered batch counts as verified.
        prop_assert!(report.verified().all(|r| r.object != key));
    }
}

proptest! {
    #![proptest_config(cases(1_000))]

    #[test]
    fn a_deleted_record_is_caught(batch: Index, a: Index, resign: bool) {
        let objects = edit_batch(Edit::Delete, batch, a, a, resign);
        let report = check(&objects, log().now);
        if !resign { assert_caught(&report, &[K::BatchHashMismatch])?; }
        assert_caught(&report, CHAIN)?;
    }

    #[test]
    fn reordered_records_are_caught(batch: Index, a: Index, b: Index, resign: bool) {
        let objects = edit_batch(Edit::Swap, batch, a, b, resign);
        let report = check(&objects, log().now);
        if !resign { assert_caught(&report, &[K::BatchHashMismatch])?; }
        assert_caught(&report, CHAIN)?;
    }

    #[test]
    fn an_inserted_record_is_caught(batch: Index, a: Index, b: Index, forged: bool, resign: bool) {
        let objects = edit_batch(Edit::Insert { forged }, batch, a, b, resign);
        let report = check(&objects, log().now);
        if !resign { assert_caught(&report, &[K::BatchHashMismatch])?; }
        assert_caught(&report, CHAIN)?;
    }
}

proptest! {
    #![proptest_config(cases(600))]

    #[test]
    fn a_deleted_batch_is_caught(batch: Index, with_digest: bool) {
        let log = log();
        let mut objects = log.objects.clone();
        let key = batch.get(&log.batches);
        objects.remove(key);
        let (i, _) = digest_of(key);
        let newest = i + 1 == log.digests.len();
        if with_digest && !newest {
            objects.remove(&log.digests[i].0);
        }
        let report = check(&objects, log.now);
        let expected = if with_digest { [K::MissingDigest] } else { [K::MissingBatch] };
        assert_caught(&report, &expected)?;
    }

    #[test]
    fn swapped_batches_or_digests_are_caught(a: Index, b: Index, digests: bool) {
        let log = log();
        let mut objects = log.objects.clone();
        let keys: Vec<&String> = if digests {
            log.digests.iter().map(|(k, _)| k).collect()
        } else {
            log.batches.iter().collect()
        };
        let i = a.index(keys.len());
        let j = (i + 1 + b.index(keys.len() - 1)) % keys.len();
        let (x, y) = (objects[keys[i]].clone(), objects[keys[j]].clone());
        objects.insert(keys[i].clone(), y);
        objects.insert(keys[j].clone(), x);
        let report = check(&objects, log.now);
        let expected = if digests { [K::NameMismatch] } else { [K::BatchHashMismatch] };
        assert_caught(&report, &expected)?;
    }

}

proptest! {
    #![proptest_config(cases(800))]

    #[test]
    fn a_digest_resigned_by_an_unknown_or_forged_key_is_caught(digest: Index, seed: [u8; 32], known_id: bool) {
        let log = log();
        let (key, d) = digest.get(&log.digests);
        prop_assume!(seed != LIVE);
        // A key the auditors do not hold, under a new id or under the live key's id.
        let id = if known_id { "live" } else { "rogue" };
        let ring = signing(id, &seed, validity(0, None));
        let mut objects = log.objects.clone();
        objects.insert(key.clone(), sign(d, id, &ring));
        let report = check(&objects, log.now);
        let expected = if known_id { [K::BadSignature] } else { [K::UnknownKey] };
        assert_caught(&report, &expected)?;
    }

    #[test]
    fn a_digest_signed_by_an_expired_or_future_key_is_caught(digest: Index, future: bool) {
        let log = log();
        let (key, d) = digest.get(&log.digests);
        // Genuine keys of the auditors' file, used outside their windows.
        let ring = if future {
            signing("future", &FUTURE, validity(T0 + 1_000_000_000, None))
        } else {
            signing("retired", &RETIRED, validity(T0 - 1_000_000, Some(T0 - 1)))
        };
        let id = if future { "future" } else { "retired" };
        let mut objects = log.objects.clone();
        objects.insert(key.clone(), sign(d, id, &ring));
        assert_caught(&check(&objects, log.now), &[K::KeyNotValid])?;
    }
}

proptest! {
    #![proptest_config(cases(1_000))]

    /// Delete the newest `k` digests with their batches, and verify at a time when the untouched
    /// log is still fresh but the cut is more than one heartbeat period plus grace old.
    #[test]
    fn a_truncated_tail_is_caught(k in 1usize..=6, at: Index) {
        let log = log();
        let cut = log.digests.len() - k;
        let newest_kept = log.digests[cut - 1].1.created_ms;
        let newest = log.digests.last().expect("digests").1.created_ms;
        let earliest = newest_kept + HEARTBEAT + GRACE + 1;
        let latest = newest + HEARTBEAT + GRACE;
        prop_assume!(earliest <= latest);
        let now = earliest + at.index((latest - earliest + 1) as usize) as u64;
        prop_assert!(check(&log.objects, now).is_ok(), "the untouched log is fresh at {now}");

        let mut objects = log.objects.clone();
        for (key, d) in &log.digests[cut..] {
            objects.remove(key);
            if d.kind == DigestKind::Batch {
                objects.remove(&batch_key("eu", d.first_sequence, d.last_sequence));
            }
        }
        let report = check(&objects, now);
        prop_assert_eq!(kinds(&report), vec![K::TailStale]);
    }
}

/// A random life: bursts of appends and alarms at random times.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((0u64..8, 0u64..4_000, any::<bool>()), 1..25).prop_map(|raw| {
        let mut t = T0;
        let mut steps = vec![Step::Ship(T0)];
        for (count, gap, ship) in raw {
            t += gap;
            steps.push(if ship {
                Step::Ship(t)
            } else {
                Step::Append(count, t)
            });
        }
        steps.push(Step::Ship(t + HEARTBEAT));
        steps
    })
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn any_log_the_sequencer_writes_verifies_clean(steps in steps()) {
        let objects = build(&steps);
        let appended: u64 = steps.iter().map(|s| match s { Step::Append(n, _) => *n, Step::Ship(_) => 0 }).sum();
        let now = match steps.last() { Some(Step::Ship(t)) => *t, _ => T0 };
        let report = check(&objects, now);
        prop_assert!(report.is_ok(), "{:#?}", report.problems);
        prop_assert_eq!(report.verified().count() as u64, appended);
    }
}

/// A region with four audit shards: each stream is checked on its own (a cut tail is caught on
/// whichever stream it is), and a shard deleted whole is caught because the others name the set.
#[test]
fn every_shard_of_a_region_is_verified_and_a_missing_one_is_caught() {
    use Step::*;
    let steps = [
        Ship(T0),
        Append(4, T0 + 100),
        Ship(T0 + 100),
        Ship(T0 + 11_200),
        Append(2, T0 + 12_000),
        Ship(T0 + 13_000),
        Ship(T0 + 23_000),
    ];
    let names = [
        "audit-eu-0-of-4",
        "audit-eu-1-of-4",
        "audit-eu-2-of-4",
        "audit-eu-3-of-4",
    ];
    let mut all = BTreeMap::new();
    for name in names {
        all.extend(build_stream(name, &steps));
    }
    let now = T0 + 23_000 + 5_000;
    let report = check(&all, now);
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.streams.len(), 4);
    assert_eq!(report.verified().count(), 4 * 6);

    for cut in names {
        // The newest digest of one stream (a heartbeat) and everything after it are deleted.
        let mut objects = all.clone();
        let newest = objects
            .keys()
            .filter(|k| k.starts_with(&format!("audit/{cut}/digests/")))
            .max()
            .cloned()
            .expect("a digest");
        objects.remove(&newest);
        let report = check(&objects, now);
        let stale: Vec<&str> = report
            .problems
            .iter()
            .filter(|p| p.kind == K::TailStale)
            .filter_map(|p| p.object.as_deref())
            .collect();
        assert!(!stale.is_empty(), "a cut tail on {cut} is caught");
        assert!(stale.iter().all(|o| o.contains(cut)), "{stale:?}");
    }

    let mut objects = all.clone();
    objects.retain(|k, _| !k.starts_with("audit/audit-eu-2-of-4/"));
    let report = check(&objects, now);
    assert_eq!(kinds(&report), vec![K::MissingStream]);
    assert_eq!(
        report.problems[0].object.as_deref(),
        Some("audit/audit-eu-2-of-4/")
    );
}
