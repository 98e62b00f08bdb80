//! Records in transit from a tenant ledger's outbox to an audit stream.

use serde::{Deserialize, Serialize};

use super::AuditEvent;

/// A batch of records on its way from a ledger to an audit stream. Sequences are the ledger's
/// own (its outbox numbering), contiguous, so the stream can drop what it already chained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardBatch {
    /// The audit stream it goes to.
    pub stream: String,
    /// The ledger it comes from (the stream keeps a watermark per source).
    pub source: String,
    pub first_seq: u64,
    pub records: Vec<AuditEvent>,
}

impl ForwardBatch {
    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.records.len() as u64 - 1
    }
}

/// A [`ForwardBatch`] borrowing its records from the ledger's outbox: serialized as one (the same
/// JSON), without copying records that are about to be serialized anyway.
#[derive(Debug, Serialize)]
pub struct ForwardRef<'a> {
    pub stream: String,
    pub source: &'a str,
    pub first_seq: u64,
    pub records: Vec<&'a AuditEvent>,
}

impl ForwardRef<'_> {
    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.records.len() as u64 - 1
    }

    pub fn to_batch(&self) -> ForwardBatch {
        ForwardBatch {
            stream: self.stream.clone(),
            source: self.source.to_string(),
            first_seq: self.first_seq,
            records: self.records.iter().map(|r| (*r).clone()).collect(),
        }
    }
}

/// The stream's answer: every record of the source up to `through` is chained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardAck {
    pub through: u64,
}
