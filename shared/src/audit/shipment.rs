//! What the sequencer hands its host: the ship policy, shipments (objects to put) and their
//! confirmations, and the errors it reports.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::batch::BatchError;
use super::canonical::CanonicalError;
use super::digest::DigestKind;
#[cfg(doc)]
use super::sequencer::{entry_storage_key, Sequencer};

/// When to ship. A batch ships when `max_records` are buffered, when the oldest buffered record
/// is `max_age_ms` old, or when a digest is due; a heartbeat digest ships when nothing was
/// shipped for `heartbeat_ms`. Verifiers must use the same `heartbeat_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipPolicy {
    pub max_records: usize,
    pub max_age_ms: u64,
    pub heartbeat_ms: u64,
}

impl Default for ShipPolicy {
    /// 500 records or 5 s per batch; a digest at least every 60 s.
    fn default() -> Self {
        ShipPolicy {
            max_records: 500,
            max_age_ms: 5_000,
            heartbeat_ms: 60_000,
        }
    }
}

impl ShipPolicy {
    pub fn check(&self) -> Result<(), TrailError> {
        if self.max_records == 0 {
            return Err(TrailError::InvalidPolicy("max_records must be >= 1".into()));
        }
        if self.heartbeat_ms == 0 {
            return Err(TrailError::InvalidPolicy(
                "heartbeat_ms must be >= 1".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailError {
    /// A stream id must be 1-64 of `[a-z0-9_-]`: it becomes an object path.
    InvalidStream(String),
    InvalidPolicy(String),
    Canonical(CanonicalError),
    Batch(BatchError),
    /// No signing key is valid at this time: nothing can be shipped until one is added.
    NoSigningKey {
        at_ms: u64,
    },
    /// The pending shipment was signed with a key the keyring no longer holds.
    SigningKeyGone {
        key_id: String,
    },
    /// `confirm` was given an id that is not the pending shipment's.
    NotPending {
        given: ShipmentId,
        pending: Option<ShipmentId>,
    },
    /// Restored state that does not hold together (lost or foreign entries).
    Corrupt(String),
}

impl fmt::Display for TrailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrailError::InvalidStream(s) => {
                write!(f, "stream id {s:?} must be 1-64 of [a-z0-9_-]")
            }
            TrailError::InvalidPolicy(why) => write!(f, "ship policy: {why}"),
            TrailError::Canonical(e) => write!(f, "{e}"),
            TrailError::Batch(e) => write!(f, "batch: {e}"),
            TrailError::NoSigningKey { at_ms } => {
                write!(f, "no audit signing key is valid at {at_ms} ms")
            }
            TrailError::SigningKeyGone { key_id } => write!(
                f,
                "the pending digest was signed with key {key_id}, which is no longer configured"
            ),
            TrailError::NotPending { given, pending } => match pending {
                Some(p) => write!(f, "shipment {} is not pending ({} is)", given.0, p.0),
                None => write!(f, "shipment {} is not pending (none is)", given.0),
            },
            TrailError::Corrupt(why) => write!(f, "sequencer state is inconsistent: {why}"),
        }
    }
}

impl std::error::Error for TrailError {}

impl From<CanonicalError> for TrailError {
    fn from(e: CanonicalError) -> Self {
        TrailError::Canonical(e)
    }
}

impl From<BatchError> for TrailError {
    fn from(e: BatchError) -> Self {
        TrailError::Batch(e)
    }
}

/// A shipment's id: its digest sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShipmentId(pub u64);

/// An object to put into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPut {
    pub key: String,
    pub bytes: Vec<u8>,
    /// Store it as this content type, without a `Content-Encoding` (a transparent decompression
    /// would change the bytes the digest hashes).
    pub content_type: &'static str,
}

/// What to upload: the batch object first (if any), then the digest; then [`Sequencer::confirm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    pub id: ShipmentId,
    pub kind: DigestKind,
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub batch: Option<ObjectPut>,
    pub digest: ObjectPut,
}

impl Shipment {
    /// The objects in upload order.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectPut> {
        self.batch.iter().chain(std::iter::once(&self.digest))
    }
}

/// What a confirmation removed from the buffer: delete these entries from storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    pub id: ShipmentId,
    pub kind: DigestKind,
    /// The shipped sequences (`first > last` for a heartbeat: nothing removed).
    pub first_sequence: u64,
    pub last_sequence: u64,
}

impl Confirmed {
    /// The sequences whose [`entry_storage_key`]s to delete.
    pub fn removed(&self) -> std::ops::RangeInclusive<u64> {
        self.first_sequence..=self.last_sequence
    }
}
