//! Signed digests: one per shipped batch, and a heartbeat on a fixed cadence when there is
//! nothing to ship, so a deleted tail shows as a missing digest.
//!
//! A digest object is the canonical JSON of [`Digest`]; its `signature` is Ed25519 (standard
//! base64) over the canonical JSON of the same object without the `signature` field.
//! `prev_digest_sha256` is the SHA-256 of the previous digest object's bytes, which chains the
//! digests the way `prev_hash` chains the records.

use serde::{Deserialize, Serialize};

use super::canonical::{canonical_json, CanonicalError};

pub const DIGEST_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestKind {
    /// Covers a batch object of `count >= 1` records.
    Batch,
    /// Covers no records (`count == 0`, `first_sequence == last_sequence + 1`): it re-states the
    /// chain head so the newest digest is never older than one heartbeat period.
    Heartbeat,
}

/// One digest. Field meanings are part of the log format; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub schema_version: u32,
    pub stream: String,
    /// Gap-free from 1 within the stream.
    pub digest_sequence: u64,
    pub kind: DigestKind,
    /// First record covered (for a heartbeat: the next record to come).
    pub first_sequence: u64,
    /// Last record covered (for a heartbeat: the last record shipped, 0 if none).
    pub last_sequence: u64,
    /// `last_sequence + 1 - first_sequence`.
    pub count: u64,
    /// SHA-256 (hex) of the compressed batch object's bytes; `None` for a heartbeat.
    pub batch_sha256: Option<String>,
    /// The `hash` of record `last_sequence` (the genesis hash before the first record).
    pub chain_head: String,
    /// SHA-256 (hex) of the previous digest object's bytes (the genesis hash for digest 1).
    pub prev_digest_sha256: String,
    pub created_ms: u64,
    pub key_id: String,
    /// Ed25519 signature (standard base64); absent only while the digest is being built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Digest {
    /// The bytes the signature covers: the canonical JSON of the digest without `signature`.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, CanonicalError> {
        let unsigned = Digest {
            signature: None,
            ..self.clone()
        };
        canonical_json(&unsigned)
    }

    /// The object's bytes: the canonical JSON of the whole digest.
    pub fn object_bytes(&self) -> Result<Vec<u8>, CanonicalError> {
        canonical_json(self)
    }
}

/// The bytes a signature covers, from a digest read back as a JSON object: every field present
/// except `signature`, canonicalized. Fields a newer writer adds are covered too.
pub fn signed_bytes_of_value(
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<u8>, CanonicalError> {
    let mut unsigned = object.clone();
    unsigned.remove("signature");
    canonical_json(&unsigned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::canonical::GENESIS_HASH;

    #[test]
    fn signature_covers_everything_but_itself() {
        let digest = Digest {
            schema_version: DIGEST_SCHEMA_VERSION,
            stream: "eu".into(),
            digest_sequence: 1,
            kind: DigestKind::Heartbeat,
            first_sequence: 1,
            last_sequence: 0,
            count: 0,
            batch_sha256: None,
            chain_head: GENESIS_HASH.into(),
            prev_digest_sha256: GENESIS_HASH.into(),
            created_ms: 5,
            key_id: "k1".into(),
            signature: Some("c2ln".into()),
        };
        let signed = String::from_utf8(digest.signed_bytes().expect("canonical")).expect("utf-8");
        assert!(!signed.contains("signature"));
        assert!(signed.starts_with(r#"{"batch_sha256":null,"chain_head":"#));
        let object = digest.object_bytes().expect("canonical");
        let value: serde_json::Value = serde_json::from_slice(&object).expect("json");
        assert_eq!(
            signed_bytes_of_value(value.as_object().expect("object")).expect("canonical"),
            signed.as_bytes()
        );
        let back: Digest = serde_json::from_slice(&object).expect("parses");
        assert_eq!(back, digest);
    }
}
