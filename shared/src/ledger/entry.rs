//! The chained envelope around one audit record.
//!
//! `hash = SHA-256(canonical({"stream", "sequence", "prev_hash", "record"}))`, lowercase hex;
//! `prev_hash` is the previous entry's `hash` ([`GENESIS_HASH`] for sequence 1). A batch object
//! holds one entry per line, each line the canonical JSON of the whole entry (with `hash`).

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::canonical::GENESIS_HASH;
use super::canonical::{canonical_sha256, CanonicalError};
use crate::audit::AuditEvent;

/// One record in its stream, with its place in the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub stream: String,
    /// Gap-free from 1 within the stream.
    pub sequence: u64,
    pub prev_hash: String,
    pub hash: String,
    pub record: AuditEvent,
}

/// What an entry's hash covers: everything but the hash itself.
#[derive(Serialize)]
struct Hashed<'a, R: Serialize + ?Sized> {
    stream: &'a str,
    sequence: u64,
    prev_hash: &'a str,
    record: &'a R,
}

/// The chain hash of an entry. `record` may be the typed [`AuditEvent`] (the sequencer) or the
/// JSON value read back from a batch (the verifier): canonical JSON makes both hash the same.
pub fn entry_hash<R: Serialize + ?Sized>(
    stream: &str,
    sequence: u64,
    prev_hash: &str,
    record: &R,
) -> Result<String, CanonicalError> {
    canonical_sha256(&Hashed {
        stream,
        sequence,
        prev_hash,
        record,
    })
}

impl Entry {
    /// Builds the entry that follows `prev_hash` at `sequence`, computing its hash.
    pub fn chain(
        stream: &str,
        sequence: u64,
        prev_hash: &str,
        record: AuditEvent,
    ) -> Result<Entry, CanonicalError> {
        let hash = entry_hash(stream, sequence, prev_hash, &record)?;
        Ok(Entry {
            stream: stream.to_string(),
            sequence,
            prev_hash: prev_hash.to_string(),
            hash,
            record,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::canonical::{sha256_hex, GENESIS_HASH};
    use crate::ledger::test_support::event;

    #[test]
    fn hash_is_sha256_of_the_canonical_envelope() {
        let entry = Entry::chain("eu", 1, GENESIS_HASH, event(1)).expect("hashes");
        // Built by hand, independently of `entry_hash`: keys in code-unit order, no whitespace.
        let record = String::from_utf8(
            crate::ledger::canonical::canonical_json(&entry.record).expect("canonical"),
        )
        .expect("utf-8");
        let by_hand = format!(
            r#"{{"prev_hash":"{GENESIS_HASH}","record":{record},"sequence":1,"stream":"eu"}}"#
        );
        assert_eq!(entry.hash, sha256_hex(by_hand.as_bytes()));
    }

    #[test]
    fn same_record_hashes_the_same_whatever_the_field_order_of_its_json() {
        let entry = Entry::chain("eu", 7, GENESIS_HASH, event(7)).expect("hashes");
        let json = serde_json::to_value(&entry.record).expect("serializes");
        let obj = json.as_object().expect("object");

        // The same fields written in reverse order and with whitespace, as another producer
        // might; parsed as the typed record and as a plain JSON value.
        let mut reversed = String::from("{\n");
        let pairs: Vec<_> = obj.iter().rev().collect();
        for (i, (k, v)) in pairs.iter().enumerate() {
            let sep = if i + 1 < pairs.len() { "," } else { "" };
            reversed.push_str(&format!("  {} : {}{sep}\n", serde_json::json!(k), v));
        }
        reversed.push('}');
        assert!(reversed.find("\"trace_id\"") < reversed.find("\"tenant_id\""));

        let typed: AuditEvent = serde_json::from_str(&reversed).expect("parses");
        let value: serde_json::Value = serde_json::from_str(&reversed).expect("parses");
        assert_eq!(
            entry_hash("eu", 7, GENESIS_HASH, &typed).expect("hashes"),
            entry.hash
        );
        assert_eq!(
            entry_hash("eu", 7, GENESIS_HASH, &value).expect("hashes"),
            entry.hash
        );

        // And any change to what is covered changes the hash.
        let mut other = typed.clone();
        other.record.latency_ms += 1;
        assert_ne!(
            entry_hash("eu", 7, GENESIS_HASH, &other).expect("hashes"),
            entry.hash
        );
        assert_ne!(
            entry_hash("eu", 8, GENESIS_HASH, &typed).expect("hashes"),
            entry.hash
        );
        assert_ne!(
            entry_hash("us", 7, GENESIS_HASH, &typed).expect("hashes"),
            entry.hash
        );
    }
}
