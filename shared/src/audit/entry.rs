//! The chained envelope around one audit record.
//!
//! `hash = SHA-256(canonical({"stream", "sequence", "prev_hash", "record"}))`, lowercase hex;
//! `prev_hash` is the previous entry's `hash` ([`GENESIS_HASH`] for sequence 1). A batch object
//! holds one entry per line, each line the canonical JSON of the whole entry (with `hash`).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[cfg(doc)]
use super::canonical::GENESIS_HASH;
use super::canonical::{canonical_json, canonical_value, sha256_hex, CanonicalError};
use super::codec::{self, SoftwareCodec, TrailCodec};
use crate::audit::AuditEvent;

/// One record in its stream, with its place in the hash chain. Its JSON (a stored row, a batch
/// line) is `{"hash","prev_hash","record","sequence","stream"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub stream: String,
    /// Gap-free from 1 within the stream.
    pub sequence: u64,
    pub prev_hash: String,
    pub hash: String,
    /// The record's canonical JSON, fixed when it was chained: what was hashed is what ships,
    /// even if a later build that restores the buffered entry knows more (or fewer) record
    /// fields. Kept as text: stored and shipped without being walked or canonicalized again.
    pub record_json: String,
}

/// An entry as serde writes it, with the record as a JSON value.
#[derive(Serialize)]
struct EntryOut<'a> {
    stream: &'a str,
    sequence: u64,
    prev_hash: &'a str,
    hash: &'a str,
    record: serde_json::Value,
}

/// An entry as serde reads it.
#[derive(Deserialize)]
struct EntryIn {
    stream: String,
    sequence: u64,
    prev_hash: String,
    hash: String,
    record: serde_json::Value,
}

impl Serialize for Entry {
    /// Through a JSON value: for tests and tools. The sequencer's stores write
    /// [`crate::audit::Buffered::stored_json`], which copies the text.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        EntryOut {
            stream: &self.stream,
            sequence: self.sequence,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
            record: self.record_value().map_err(S::Error::custom)?,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Entry {
    /// A stored entry, its record canonicalized: rows of earlier versions hold plain serde_json,
    /// which differs from canonical JSON for keys beyond ASCII or numbers beyond 2^53.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fields = EntryIn::deserialize(d)?;
        let json = canonical_value(&fields.record).map_err(D::Error::custom)?;
        Ok(Entry {
            stream: fields.stream,
            sequence: fields.sequence,
            prev_hash: fields.prev_hash,
            hash: fields.hash,
            record_json: String::from_utf8(json).map_err(D::Error::custom)?,
        })
    }
}

/// The canonical JSON of what an entry's hash covers, `{"prev_hash","record","sequence","stream"}`
/// (everything but the hash), composed from the record's canonical bytes. JCS sorts keys and
/// nests canonical values unchanged, so the composition is exactly the canonical form of the
/// whole object; composing it lets the verifier canonicalize each record once, not twice.
pub fn hashed_bytes(
    stream: &str,
    sequence: u64,
    prev_hash: &str,
    record_json: &[u8],
) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(record_json.len() + 160);
    out.extend_from_slice(b"{\"prev_hash\":");
    out.extend(canonical_json(prev_hash)?);
    out.extend_from_slice(b",\"record\":");
    out.extend_from_slice(record_json);
    out.extend_from_slice(b",\"sequence\":");
    out.extend(canonical_json(&sequence)?);
    out.extend_from_slice(b",\"stream\":");
    out.extend(canonical_json(stream)?);
    out.push(b'}');
    Ok(out)
}

/// The canonical JSON of a whole entry (a batch line without its newline), from the
/// [`hashed_bytes`] and the hash: `"hash"` sorts before every other key.
pub fn line_bytes(hash: &str, hashed: &[u8]) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(hashed.len() + 80);
    out.extend_from_slice(b"{\"hash\":");
    out.extend(canonical_json(hash)?);
    out.push(b',');
    out.extend_from_slice(hashed.get(1..).unwrap_or_default());
    Ok(out)
}

/// The chain hash of an entry. `record` may be the typed [`AuditEvent`] (the sequencer) or the
/// JSON value read back from a batch (the verifier): canonical JSON makes both hash the same.
pub fn entry_hash<R: Serialize + ?Sized>(
    stream: &str,
    sequence: u64,
    prev_hash: &str,
    record: &R,
) -> Result<String, CanonicalError> {
    let record_json = canonical_json(record)?;
    Ok(sha256_hex(&hashed_bytes(
        stream,
        sequence,
        prev_hash,
        &record_json,
    )?))
}

impl Entry {
    /// An entry from its batch line as [`Entry::line`] wrote it, its record text taken as it
    /// is: the caller vouches that it is canonical (a store's own rows). A line whose record is
    /// not canonical would ship text that does not hash to `hash`, which verification reports.
    pub fn from_canonical_line(line: &str) -> Result<Entry, serde_json::Error> {
        #[derive(Deserialize)]
        struct Line<'a> {
            stream: String,
            sequence: u64,
            prev_hash: String,
            hash: String,
            #[serde(borrow)]
            record: &'a serde_json::value::RawValue,
        }
        let line: Line<'_> = serde_json::from_str(line)?;
        Ok(Entry {
            stream: line.stream,
            sequence: line.sequence,
            prev_hash: line.prev_hash,
            hash: line.hash,
            record_json: line.record.get().to_string(),
        })
    }

    /// This entry's batch line (without the newline): its canonical JSON, composed from the
    /// record's canonical bytes.
    pub fn line(&self) -> Result<Vec<u8>, CanonicalError> {
        let hashed = hashed_bytes(
            &self.stream,
            self.sequence,
            &self.prev_hash,
            self.record_json.as_bytes(),
        )?;
        line_bytes(&self.hash, &hashed)
    }

    /// The record as a JSON value.
    pub fn record_value(&self) -> Result<serde_json::Value, CanonicalError> {
        serde_json::from_str(&self.record_json).map_err(|e| CanonicalError(e.to_string()))
    }

    /// Builds the entry that follows `prev_hash` at `sequence`, computing its hash.
    pub fn chain(
        stream: &str,
        sequence: u64,
        prev_hash: &str,
        record: &AuditEvent,
    ) -> Result<Entry, CanonicalError> {
        Entry::chain_with(&SoftwareCodec, stream, sequence, prev_hash, record)
    }

    /// [`Entry::chain`], hashing with `codec`.
    pub fn chain_with(
        codec: &dyn TrailCodec,
        stream: &str,
        sequence: u64,
        prev_hash: &str,
        record: &AuditEvent,
    ) -> Result<Entry, CanonicalError> {
        let record = serde_json::to_value(record).map_err(|e| CanonicalError(e.to_string()))?;
        let record_json = canonical_value(&record)?;
        let hash = codec::sha256_hex(
            codec,
            &hashed_bytes(stream, sequence, prev_hash, &record_json)?,
        );
        Ok(Entry {
            stream: stream.to_string(),
            sequence,
            prev_hash: prev_hash.to_string(),
            hash,
            record_json: String::from_utf8(record_json)
                .map_err(|e| CanonicalError(e.to_string()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::canonical::{sha256_hex, GENESIS_HASH};
    use crate::audit::test_support::event;

    #[test]
    fn hash_is_sha256_of_the_canonical_envelope() {
        let entry = Entry::chain("eu", 1, GENESIS_HASH, &event(1)).expect("hashes");
        // Built by hand, independently of `entry_hash`: keys in code-unit order, no whitespace.
        let record =
            String::from_utf8(canonical_json(&event(1)).expect("canonical")).expect("utf-8");
        let by_hand = format!(
            r#"{{"prev_hash":"{GENESIS_HASH}","record":{record},"sequence":1,"stream":"eu"}}"#
        );
        assert_eq!(entry.hash, sha256_hex(by_hand.as_bytes()));
    }

    /// A whole entry as plain serde sees it, for JCS to canonicalize independently.
    #[derive(Serialize)]
    struct Whole<'a> {
        stream: &'a str,
        sequence: u64,
        prev_hash: &'a str,
        hash: &'a str,
        record: &'a serde_json::Value,
    }

    /// The composed bytes must be exactly what a JCS serializer makes of the whole object.
    #[test]
    fn composed_bytes_are_the_canonical_json_of_the_envelope() {
        let records = [
            serde_json::json!({"z": 1, "a": [true, null], "\u{20ac}": "\u{1f600}\n"}),
            serde_json::to_value(event(3)).expect("json"),
            serde_json::json!("a string record"),
        ];
        for (i, record) in records.iter().enumerate() {
            for (stream, sequence) in [("eu", 1u64), ("us-2", 9_007_199_254_740_991)] {
                let rec = canonical_json(record).expect("canonical");
                let hashed = hashed_bytes(stream, sequence, GENESIS_HASH, &rec).expect("bytes");
                #[derive(Serialize)]
                struct NoHash<'a> {
                    stream: &'a str,
                    sequence: u64,
                    prev_hash: &'a str,
                    record: &'a serde_json::Value,
                }
                let no_hash = NoHash {
                    stream,
                    sequence,
                    prev_hash: GENESIS_HASH,
                    record,
                };
                assert_eq!(hashed, canonical_json(&no_hash).expect("canonical"), "{i}");
                let whole = Whole {
                    stream,
                    sequence,
                    prev_hash: GENESIS_HASH,
                    hash: "ab\"c",
                    record,
                };
                assert_eq!(
                    line_bytes("ab\"c", &hashed).expect("bytes"),
                    canonical_json(&whole).expect("canonical"),
                    "{i}"
                );
            }
        }
    }

    #[test]
    fn same_record_hashes_the_same_whatever_the_field_order_of_its_json() {
        let entry = Entry::chain("eu", 7, GENESIS_HASH, &event(7)).expect("hashes");
        let json = entry.record_value().expect("json");
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

    #[test]
    fn a_stored_entry_restores_as_canonical_text_and_ships_its_canonical_line() {
        let entry = Entry::chain("eu", 1, GENESIS_HASH, &event(1)).expect("hashes");
        // This version's rows: restored as the same text.
        let stored = serde_json::to_string(&entry).expect("json");
        let restored: Entry = serde_json::from_str(&stored).expect("parses");
        assert_eq!(restored, entry);
        assert_eq!(restored.line().expect("line"), entry.line().expect("line"));
        let record_json = canonical_json(&event(1)).expect("canonical");
        assert_eq!(entry.record_json.as_bytes(), &record_json[..]);

        // A row of another writer: whitespace, keys out of order, keys beyond ASCII in byte order
        // (JCS orders by UTF-16 code units: U+1F600 before U+FB01) and an exponent. Restored as
        // its canonical text, so the line shipped is the canonical JSON of the whole entry.
        let record = r#"{ "\ufb01" : 1, "\ud83d\ude00" : 2, "b" : [ 1e2, "x" ], "a" : null }"#;
        let value: serde_json::Value = serde_json::from_str(record).expect("json");
        let hash = entry_hash("eu", 2, GENESIS_HASH, &value).expect("hash");
        let row = format!(
            r#"{{"record": {record}, "hash": "{hash}", "prev_hash": "{GENESIS_HASH}", "sequence": 2, "stream": "eu"}}"#
        );
        let restored: Entry = serde_json::from_str(&row).expect("parses");
        assert_eq!(
            restored.record_json,
            "{\"a\":null,\"b\":[100,\"x\"],\"\u{1f600}\":2,\"\u{fb01}\":1}"
        );
        let whole = Whole {
            stream: "eu",
            sequence: 2,
            prev_hash: GENESIS_HASH,
            hash: &hash,
            record: &value,
        };
        assert_eq!(
            restored.line().expect("line"),
            canonical_json(&whole).expect("canonical")
        );
        assert!(serde_json::from_str::<Entry>(&row.replace(record, "[1,")).is_err());
    }
}
