//! Records in transit from a tenant ledger's outbox to an audit stream.

use serde::{Deserialize, Serialize};

use super::{AuditEvent, RecordText};

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

/// A [`ForwardBatch`] borrowing its records' text from the ledger's outbox: serialized as one (the
/// same JSON), each record's text written as it is.
#[derive(Debug, Serialize)]
pub struct ForwardRef<'a> {
    pub stream: String,
    pub source: &'a str,
    pub first_seq: u64,
    pub records: Vec<&'a RecordText>,
}

impl ForwardRef<'_> {
    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.records.len() as u64 - 1
    }

    /// The batch with its records parsed (for a host that chains them in the same process).
    pub fn to_batch(&self) -> Result<ForwardBatch, serde_json::Error> {
        Ok(ForwardBatch {
            stream: self.stream.clone(),
            source: self.source.to_string(),
            first_seq: self.first_seq,
            records: self
                .records
                .iter()
                .map(|r| r.event())
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The stream's answer: every record of the source up to `through` is chained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardAck {
    pub through: u64,
}
