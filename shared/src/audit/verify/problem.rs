//! What the verifier reports: each problem with its kind, the object, the line or sequence, and
//! what was expected versus found.

use std::fmt;

use serde::Serialize;

/// A stable snake_case code per kind of problem (it appears in the JSON report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// No audit objects at all (a wrong folder, or everything deleted).
    NoObjects,
    /// An object under `audit/` whose name is not a batch or a digest.
    UnexpectedObject,
    /// Not JSON, not gzip, or missing required fields.
    Malformed,
    /// Valid JSON but not in canonical form (the bytes were edited).
    NotCanonical,
    /// The object's content names another stream or sequence than its key.
    NameMismatch,
    /// Signed by a key id the key file does not hold.
    UnknownKey,
    /// Signed by a key that was not valid at the digest's `created_ms` (expired, not yet valid).
    KeyNotValid,
    /// The signature is missing, malformed or does not verify.
    BadSignature,
    /// Digest sequence numbers are missing.
    MissingDigest,
    /// `prev_digest_sha256` is not the hash of the previous digest object.
    DigestChainBroken,
    /// A digest is older than the one before it.
    TimeReversed,
    /// A digest's record range is inconsistent or not contiguous with the previous one.
    RangeMismatch,
    /// The batch object a digest describes is missing.
    MissingBatch,
    /// A batch object's SHA-256 differs from its digest's `batch_sha256`.
    BatchHashMismatch,
    /// A batch object no digest describes.
    UnreferencedBatch,
    /// A record's sequence is not the next one.
    SequenceMismatch,
    /// A record's `prev_hash` is not the previous record's hash.
    ChainBroken,
    /// A record's `hash` is not the hash of its content.
    HashMismatch,
    /// A digest's `chain_head` is not the hash of the last record it covers.
    ChainHeadMismatch,
    /// A batch holds another number of records than its digest's `count`.
    CountMismatch,
    /// The newest digest is older than one heartbeat period plus grace: the tail may be cut.
    TailStale,
    /// A shard of a region's set of streams (`<base>-<k>-of-<n>`) has no objects at all.
    MissingStream,
    /// Fewer records name a lease than the lease's own record says were reported.
    LeaseCountMismatch,
}

impl ProblemKind {
    /// Every kind, in declaration order.
    pub const ALL: [ProblemKind; 23] = [
        ProblemKind::NoObjects,
        ProblemKind::UnexpectedObject,
        ProblemKind::Malformed,
        ProblemKind::NotCanonical,
        ProblemKind::NameMismatch,
        ProblemKind::UnknownKey,
        ProblemKind::KeyNotValid,
        ProblemKind::BadSignature,
        ProblemKind::MissingDigest,
        ProblemKind::DigestChainBroken,
        ProblemKind::TimeReversed,
        ProblemKind::RangeMismatch,
        ProblemKind::MissingBatch,
        ProblemKind::BatchHashMismatch,
        ProblemKind::UnreferencedBatch,
        ProblemKind::SequenceMismatch,
        ProblemKind::ChainBroken,
        ProblemKind::HashMismatch,
        ProblemKind::ChainHeadMismatch,
        ProblemKind::CountMismatch,
        ProblemKind::TailStale,
        ProblemKind::MissingStream,
        ProblemKind::LeaseCountMismatch,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ProblemKind::NoObjects => "no_objects",
            ProblemKind::UnexpectedObject => "unexpected_object",
            ProblemKind::Malformed => "malformed",
            ProblemKind::NotCanonical => "not_canonical",
            ProblemKind::NameMismatch => "name_mismatch",
            ProblemKind::UnknownKey => "unknown_key",
            ProblemKind::KeyNotValid => "key_not_valid",
            ProblemKind::BadSignature => "bad_signature",
            ProblemKind::MissingDigest => "missing_digest",
            ProblemKind::DigestChainBroken => "digest_chain_broken",
            ProblemKind::TimeReversed => "time_reversed",
            ProblemKind::RangeMismatch => "range_mismatch",
            ProblemKind::MissingBatch => "missing_batch",
            ProblemKind::BatchHashMismatch => "batch_hash_mismatch",
            ProblemKind::UnreferencedBatch => "unreferenced_batch",
            ProblemKind::SequenceMismatch => "sequence_mismatch",
            ProblemKind::ChainBroken => "chain_broken",
            ProblemKind::HashMismatch => "hash_mismatch",
            ProblemKind::ChainHeadMismatch => "chain_head_mismatch",
            ProblemKind::CountMismatch => "count_mismatch",
            ProblemKind::TailStale => "tail_stale",
            ProblemKind::MissingStream => "missing_stream",
            ProblemKind::LeaseCountMismatch => "lease_count_mismatch",
        }
    }
}

/// One thing wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The object key, when the problem is in (or about) one object.
    pub object: Option<String>,
    /// 1-based line within the decompressed batch.
    pub line: Option<u64>,
    /// The record sequence concerned.
    pub sequence: Option<u64>,
    pub expected: Option<String>,
    pub found: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn new(kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem {
            kind,
            object: None,
            line: None,
            sequence: None,
            expected: None,
            found: None,
            message: message.into(),
        }
    }

    pub fn object(mut self, key: &str) -> Problem {
        self.object = Some(key.to_string());
        self
    }

    pub fn line(mut self, line: u64) -> Problem {
        self.line = Some(line);
        self
    }

    pub fn sequence(mut self, sequence: u64) -> Problem {
        self.sequence = Some(sequence);
        self
    }

    pub fn expected_found(
        mut self,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) -> Problem {
        self.expected = Some(expected.to_string());
        self.found = Some(found.to_string());
        self
    }
}

impl fmt::Display for Problem {
    /// `OBJECT:LINE: [sequence N] CODE: MESSAGE (expected X, found Y)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(object) = &self.object {
            f.write_str(object)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(sequence) = self.sequence {
            write!(f, "sequence {sequence}: ")?;
        }
        write!(f, "{}: {}", self.kind.code(), self.message)?;
        if let (Some(e), Some(found)) = (&self.expected, &self.found) {
            write!(f, " (expected {e}, found {found})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_json_names() {
        let mut codes = std::collections::BTreeSet::new();
        for kind in ProblemKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).expect("serializes"),
                serde_json::json!(kind.code())
            );
            assert!(codes.insert(kind.code()), "{} twice", kind.code());
        }
        let p = Problem::new(ProblemKind::ChainBroken, "prev_hash does not link")
            .object("audit/eu/batches/x")
            .line(3)
            .sequence(7)
            .expected_found("ab", "cd");
        assert_eq!(
            p.to_string(),
            "audit/eu/batches/x:3: sequence 7: chain_broken: prev_hash does not link (expected ab, found cd)"
        );
    }
}
