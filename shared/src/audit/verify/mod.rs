//! The verifier: checks a set of audit objects against the auditors' public keys and reports
//! precisely what is wrong and where, plus the records it could verify.
//!
//! Checked per stream: every digest's canonical form, name, signature and key validity at its
//! `created_ms`; the digest chain (contiguous from 1, `prev_digest_sha256`, time order); every
//! digest's record range (contiguous from 1 across digests, `count`); every batch's SHA-256,
//! canonical lines, sequences, `prev_hash` links, hashes, count and chain head; batches no digest
//! describes; and the tail: the newest digest must be no older than `heartbeat_ms + grace_ms`
//! before `now_ms`. A stream deleted whole is not detectable from its own objects; a shard's
//! name says how many shards its set has (`<base>-<k>-of-<n>`, see [`super::streams`]), so a
//! missing shard is reported, and a region's single stream must be compared with the expected one.
//! Across streams: every lease's record against the records that name it ([`leases`]).

mod leases;
mod problem;
mod records;
mod stream;

use std::collections::BTreeMap;

use serde::Serialize;

pub use leases::LeaseGap;
pub use problem::{Problem, ProblemKind};

use super::keys::PublicKeyring;
use super::ObjectName;

/// How to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The time of verification (the tail check's reference).
    pub now_ms: u64,
    /// The sequencer's heartbeat period ([`super::ShipPolicy::heartbeat_ms`]).
    pub heartbeat_ms: u64,
    /// Allowance for alarm delay and upload time on top of the heartbeat period.
    pub grace_ms: u64,
    /// The most a batch may decompress to.
    pub max_batch_bytes: usize,
}

impl VerifyOptions {
    /// Default grace: 60 s. Default batch limit: 256 MiB decompressed.
    pub fn new(now_ms: u64, heartbeat_ms: u64) -> VerifyOptions {
        VerifyOptions {
            now_ms,
            heartbeat_ms,
            grace_ms: 60_000,
            max_batch_bytes: 256 << 20,
        }
    }
}

/// One record as read from a batch, with whether it verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckedRecord {
    pub stream: String,
    pub sequence: u64,
    pub hash: String,
    /// The batch object and 1-based line it was read from.
    pub object: String,
    pub line: u64,
    /// True if its line, its batch object and its digest's signature all checked out.
    pub verified: bool,
    pub record: serde_json::Value,
}

/// What was found per stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamSummary {
    pub stream: String,
    pub digests: u64,
    pub heartbeats: u64,
    pub batches: u64,
    pub records: u64,
    /// The last record sequence covered by a digest, and its hash.
    pub last_sequence: u64,
    pub chain_head: String,
    pub newest_digest_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub streams: Vec<StreamSummary>,
    pub problems: Vec<Problem>,
    pub records: Vec<CheckedRecord>,
    /// Leases given up on: declared gaps (not problems), see [`LeaseGap`].
    pub lease_gaps: Vec<LeaseGap>,
}

impl Report {
    /// True if nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The records that verified.
    pub fn verified(&self) -> impl Iterator<Item = &CheckedRecord> {
        self.records.iter().filter(|r| r.verified)
    }
}

/// The objects of one stream, by what their keys name.
#[derive(Default)]
struct StreamObjects<'a> {
    digests: BTreeMap<u64, (&'a str, &'a [u8])>,
    batches: BTreeMap<(u64, u64), (&'a str, &'a [u8])>,
}

/// Verifies `objects` (object key -> bytes, as in the bucket; keys outside `audit/` are
/// ignored) against `keys`.
pub fn verify(
    objects: &BTreeMap<String, Vec<u8>>,
    keys: &PublicKeyring,
    options: &VerifyOptions,
) -> Report {
    let mut problems = Vec::new();
    let mut streams: BTreeMap<String, StreamObjects> = BTreeMap::new();
    for (key, bytes) in objects {
        if !key.starts_with("audit/") {
            continue;
        }
        match ObjectName::parse(key) {
            Some(ObjectName::Digest { stream, sequence }) => {
                let s = streams.entry(stream).or_default();
                s.digests.insert(sequence, (key, bytes));
            }
            Some(ObjectName::Batch {
                stream,
                first,
                last,
            }) => {
                let s = streams.entry(stream).or_default();
                s.batches.insert((first, last), (key, bytes));
            }
            None => problems.push(
                Problem::new(
                    ProblemKind::UnexpectedObject,
                    "not a batch (audit/<stream>/batches/<first:020>-<last:020>.jsonl.gz) \
                     or a digest (audit/<stream>/digests/<sequence:020>.json)",
                )
                .object(key),
            ),
        }
    }
    if streams.is_empty() {
        problems.push(Problem::new(
            ProblemKind::NoObjects,
            "no audit objects (audit/<stream>/...) found",
        ));
    }
    missing_shards(streams.keys(), &mut problems);
    let mut summaries = Vec::new();
    let mut records = Vec::new();
    for (name, objects) in &streams {
        let mut check = stream::StreamCheck::new(name, keys, options);
        check.run(objects);
        let (summary, mut p, mut r) = check.finish();
        summaries.push(summary);
        problems.append(&mut p);
        records.append(&mut r);
    }
    let (lease_gaps, mut lease_problems) = leases::check(&records);
    problems.append(&mut lease_problems);
    Report {
        streams: summaries,
        problems,
        records,
        lease_gaps,
    }
}

/// Every shard of every set seen (`<base>-<k>-of-<n>`) must have objects.
fn missing_shards<'a>(found: impl Iterator<Item = &'a String>, problems: &mut Vec<Problem>) {
    let found: Vec<&String> = found.collect();
    let mut sets: BTreeMap<(&str, u32), Vec<u32>> = BTreeMap::new();
    for name in &found {
        if let Some((base, k, n)) = super::streams::shard_of_name(name) {
            sets.entry((base, n)).or_default().push(k);
        }
    }
    for ((base, n), present) in sets {
        for k in (0..n).filter(|k| !present.contains(k)) {
            problems.push(
                Problem::new(
                    ProblemKind::MissingStream,
                    format!("shard {k} of {n} has no objects, while other shards of the set do"),
                )
                .object(&format!("audit/{base}-{k}-of-{n}/")),
            );
        }
    }
}
