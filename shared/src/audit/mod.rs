//! The evidence-grade audit trail: the record written for every request ([`AuditRecord`],
//! [`AuditEvent`]), and how records are sequenced into streams, hash-chained, batched, shipped
//! with signed digests and verified. Pure: no I/O, no clock (time comes in as `now_ms`), no
//! environment.
//!
//! # The log format
//!
//! A *stream* (one per region, or per shard of a region: [`streams`]) is a gap-free sequence of [`Entry`]s
//! from 1, each hashing `{stream, sequence, prev_hash, record}` in canonical JSON (RFC 8785), so
//! each hash covers the previous. The sequencer ships entries in *batches*, each described by a
//! signed [`Digest`]; when there is nothing to ship it writes a *heartbeat* digest every
//! `heartbeat_ms`, so the newest digest is never older than one period and a deleted tail shows.
//! Digests chain too (`prev_digest_sha256`) and are Ed25519-signed by a key with an id and a
//! validity window, so auditors verify without being able to forge.
//!
//! Objects, per stream (sequence numbers zero-padded to 20 digits, so names sort in order):
//!
//! | key | content |
//! |---|---|
//! | `audit/<stream>/batches/<first>-<last>.jsonl.gz` | gzip of JSON Lines, one canonical entry per line |
//! | `audit/<stream>/digests/<digest_sequence>.json` | canonical JSON of a signed digest |
//!
//! # Driving the sequencer
//!
//! Both hosts run [`drive`]: records arrive in batches from tenant ledgers
//! ([`drive::append_batch`]), shipments go out through [`drive::flush`]. A host supplies the
//! storage ([`drive::TrailStore`], which may also give faster hashing and compression:
//! [`codec`]) and the bucket ([`drive::ObjectSink`]); the signing keys come from a secret
//! ([`SigningKeyring::from_secret`]).
//!
//! Verification: [`verify::verify`] over the objects, the public keys and `now_ms`.

pub mod batch;
pub mod bound;
pub mod canonical;
pub mod codec;
mod detail;
pub mod digest;
pub mod drive;
pub mod entry;
mod forward;
pub mod keys;
pub mod query;
mod record;
mod record_text;
pub mod sequencer;
pub mod shipment;
pub mod streams;
pub mod verify;

pub use detail::{
    content_sha256, AdminNote, Attempt, AuditDetail, AuditEvent, CacheNote, CacheOutcome,
    GuardrailAction, GuardrailDecision, LeaseNote, RecordedContent, RefusalsNote,
};
pub use forward::{ForwardAck, ForwardBatch, ForwardRef};
pub(crate) use record::OpenAiUsage;
pub use record::{AuditRecord, Outcome, Usage, AUDIT_SCHEMA_VERSION};
pub use record_text::RecordText;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

pub use canonical::{canonical_json, canonical_sha256, sha256_hex, CanonicalError, GENESIS_HASH};
pub use digest::{Digest, DigestKind};
pub use entry::{entry_hash, Entry};
pub use keys::{PublicKeyEntry, PublicKeyring, SigningKeySpec, SigningKeyring, Validity};
pub use sequencer::{
    entry_storage_key, Buffered, Confirmed, ObjectPut, PendingShipment, Sequencer, SequencerHead,
    ShipPolicy, Shipment, ShipmentId, TrailError, HEAD_STORAGE_KEY,
};
pub use streams::AuditStreams;

/// The object key of the batch holding records `first..=last` of `stream`.
pub fn batch_key(stream: &str, first: u64, last: u64) -> String {
    format!("audit/{stream}/batches/{first:020}-{last:020}.jsonl.gz")
}

/// The object key of digest `sequence` of `stream`.
pub fn digest_key(stream: &str, sequence: u64) -> String {
    format!("audit/{stream}/digests/{sequence:020}.json")
}

/// What an object key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectName {
    Batch {
        stream: String,
        first: u64,
        last: u64,
    },
    Digest {
        stream: String,
        sequence: u64,
    },
}

impl ObjectName {
    pub fn stream(&self) -> &str {
        match self {
            ObjectName::Batch { stream, .. } | ObjectName::Digest { stream, .. } => stream,
        }
    }

    /// Parses a key in exactly the form [`batch_key`] or [`digest_key`] writes; `None` otherwise.
    pub fn parse(key: &str) -> Option<ObjectName> {
        let rest = key.strip_prefix("audit/")?;
        let (stream, rest) = rest.split_once('/')?;
        if !crate::ids::is_valid_id(stream) {
            return None;
        }
        let name = if let Some(file) = rest.strip_prefix("batches/") {
            let (first, last) = file.strip_suffix(".jsonl.gz")?.split_once('-')?;
            ObjectName::Batch {
                stream: stream.to_string(),
                first: seq20(first)?,
                last: seq20(last)?,
            }
        } else {
            let file = rest.strip_prefix("digests/")?.strip_suffix(".json")?;
            ObjectName::Digest {
                stream: stream.to_string(),
                sequence: seq20(file)?,
            }
        };
        Some(name)
    }
}

fn seq20(s: &str) -> Option<u64> {
    if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod naming_tests {
    use super::*;

    #[test]
    fn object_keys_round_trip_and_sort_in_sequence_order() {
        let b = batch_key("eu", 1, 500);
        assert_eq!(
            b,
            "audit/eu/batches/00000000000000000001-00000000000000000500.jsonl.gz"
        );
        assert_eq!(
            ObjectName::parse(&b),
            Some(ObjectName::Batch {
                stream: "eu".into(),
                first: 1,
                last: 500
            })
        );
        let d = digest_key("eu-2", 12);
        assert_eq!(d, "audit/eu-2/digests/00000000000000000012.json");
        assert_eq!(
            ObjectName::parse(&d),
            Some(ObjectName::Digest {
                stream: "eu-2".into(),
                sequence: 12
            })
        );
        assert!(digest_key("eu", 9) < digest_key("eu", 10));
        for bad in [
            "audit/eu/digests/12.json",
            "audit/EU/digests/00000000000000000012.json",
            "audit/eu/digests/00000000000000000012.json.bak",
            "audit/eu/other/00000000000000000012.json",
            "audit/eu/batches/00000000000000000001.jsonl.gz",
            "logs/eu/digests/00000000000000000012.json",
        ] {
            assert_eq!(ObjectName::parse(bad), None, "{bad}");
        }
    }
}
