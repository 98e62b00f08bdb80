//! The sequencer: a pure state machine that a Durable Object (one per region stream) drives.
//! It assigns gap-free sequences and the hash chain, buffers unshipped entries, decides when to
//! ship a batch or a heartbeat, renders the objects and signs the digest. The object only
//! stores state, writes the objects it is given and sets alarms; see the [`super`] docs.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::batch;
use super::canonical::{CanonicalError, GENESIS_HASH};
use super::codec::{self, SoftwareCodec, TrailCodec};
use super::digest::{Digest, DigestKind, DIGEST_SCHEMA_VERSION};
use super::entry::Entry;
use super::keys::SigningKeyring;
pub use super::shipment::{Confirmed, ObjectPut, ShipPolicy, Shipment, ShipmentId, TrailError};
use super::{batch_key, digest_key};
use crate::audit::AuditEvent;
use crate::ids::is_valid_id;

/// The Durable Object storage key of the [`SequencerHead`].
pub const HEAD_STORAGE_KEY: &str = "head";

/// The Durable Object storage key of the buffered entry `sequence` (`entry:` + 20 digits, so
/// a prefix listing returns them in order).
pub fn entry_storage_key(sequence: u64) -> String {
    format!("entry:{sequence:020}")
}

/// A shipment decided but not yet confirmed. Fixed when decided (including `created_ms` and the
/// key), so the shipment re-renders byte-identically until it is confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingShipment {
    pub digest_sequence: u64,
    pub kind: DigestKind,
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub created_ms: u64,
    pub key_id: String,
    /// SHA-256 of the digest object: the next digest's `prev_digest_sha256` once confirmed.
    pub digest_sha256: String,
}

/// The small part of the state, stored under [`HEAD_STORAGE_KEY`] after every call that
/// changes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencerHead {
    pub stream: String,
    /// When the stream started: its first digest (a heartbeat if nothing is buffered) is due then.
    pub created_ms: u64,
    /// The last sequence assigned (0 before the first record) and its hash.
    pub last_sequence: u64,
    pub last_hash: String,
    /// The last sequence shipped and confirmed, and its hash.
    pub shipped_sequence: u64,
    pub shipped_hash: String,
    /// The last confirmed digest: its sequence (0 if none), object hash and `created_ms`.
    pub digest_sequence: u64,
    pub digest_sha256: String,
    pub digest_ms: Option<u64>,
    pub pending: Option<PendingShipment>,
}

/// An entry waiting to be shipped, stored under [`entry_storage_key`]`(entry.sequence)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Buffered {
    /// When the sequencer appended it (drives `max_age_ms`); not part of the hashed entry.
    pub appended_ms: u64,
    pub entry: Entry,
}

impl<'de> Deserialize<'de> for Buffered {
    /// A row of [`Buffered::stored_json`] (marked `"canonical":true`) keeps its record's text as
    /// it is: it is the canonical text that was hashed. Spin restores its streams' buffers on
    /// every flush, and parsing each record into a JSON value to write it back unchanged was
    /// ~6% of its CPU at c=16. Rows written otherwise (earlier versions, serde) are parsed and
    /// canonicalized ([`Entry`]'s `Deserialize`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        struct Row {
            appended_ms: u64,
            #[serde(default)]
            canonical: bool,
            entry: Box<serde_json::value::RawValue>,
        }
        let row = Row::deserialize(d)?;
        let entry = if row.canonical {
            Entry::from_canonical_line(row.entry.get())
        } else {
            serde_json::from_str(row.entry.get())
        };
        Ok(Buffered {
            appended_ms: row.appended_ms,
            entry: entry.map_err(D::Error::custom)?,
        })
    }
}

impl Buffered {
    /// The JSON array of `entries` as a store keeps them, what `Vec<Buffered>` deserializes
    /// from: each entry written as its batch line, the record's canonical text copied, not
    /// re-serialized, and marked so that a restore copies it back.
    pub fn stored_json(entries: &[Buffered]) -> Result<String, CanonicalError> {
        let size: usize = entries
            .iter()
            .map(|b| b.entry.record_json.len() + 320)
            .sum();
        let mut out = Vec::with_capacity(size + 2);
        out.push(b'[');
        for (i, b) in entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"appended_ms\":");
            out.extend_from_slice(b.appended_ms.to_string().as_bytes());
            out.extend_from_slice(b",\"canonical\":true,\"entry\":");
            out.extend(b.entry.line()?);
            out.push(b'}');
        }
        out.push(b']');
        String::from_utf8(out).map_err(|e| CanonicalError(e.to_string()))
    }
}

/// The sequencer state: the head and the buffered entries, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Parts")]
pub struct Sequencer {
    head: SequencerHead,
    buffer: VecDeque<Buffered>,
}

#[derive(Deserialize)]
struct Parts {
    head: SequencerHead,
    buffer: Vec<Buffered>,
}

impl TryFrom<Parts> for Sequencer {
    type Error = TrailError;
    fn try_from(parts: Parts) -> Result<Self, TrailError> {
        Sequencer::restore(parts.head, parts.buffer)
    }
}

impl Sequencer {
    /// A new, empty stream. `now_ms` is when its first digest falls due.
    pub fn new(stream: &str, now_ms: u64) -> Result<Sequencer, TrailError> {
        if !is_valid_id(stream) {
            return Err(TrailError::InvalidStream(stream.to_string()));
        }
        Ok(Sequencer {
            head: SequencerHead {
                stream: stream.to_string(),
                created_ms: now_ms,
                last_sequence: 0,
                last_hash: GENESIS_HASH.to_string(),
                shipped_sequence: 0,
                shipped_hash: GENESIS_HASH.to_string(),
                digest_sequence: 0,
                digest_sha256: GENESIS_HASH.to_string(),
                digest_ms: None,
                pending: None,
            },
            buffer: VecDeque::new(),
        })
    }

    /// Rebuilds the state from storage: the head and every stored entry (any order). Checks that
    /// they hold together: entries contiguous from `shipped_sequence + 1` to `last_sequence`,
    /// linked by `prev_hash`, and the pending shipment inside them.
    pub fn restore(head: SequencerHead, entries: Vec<Buffered>) -> Result<Sequencer, TrailError> {
        if !is_valid_id(&head.stream) {
            return Err(TrailError::InvalidStream(head.stream));
        }
        let mut buffer: Vec<Buffered> = entries;
        buffer.sort_by_key(|b| b.entry.sequence);
        let corrupt = |why: String| Err(TrailError::Corrupt(why));
        let (mut seq, mut hash) = (head.shipped_sequence, head.shipped_hash.as_str());
        for b in &buffer {
            let e = &b.entry;
            if e.stream != head.stream {
                return corrupt(format!(
                    "entry {} belongs to stream {}",
                    e.sequence, e.stream
                ));
            }
            if e.sequence != seq + 1 {
                return corrupt(format!("expected entry {}, found {}", seq + 1, e.sequence));
            }
            if e.prev_hash != hash {
                return corrupt(format!(
                    "entry {} does not link to its predecessor",
                    e.sequence
                ));
            }
            (seq, hash) = (e.sequence, e.hash.as_str());
        }
        if seq != head.last_sequence || hash != head.last_hash {
            return corrupt(format!(
                "entries end at {seq}, the head says {}",
                head.last_sequence
            ));
        }
        if let Some(p) = &head.pending {
            let in_range = match p.kind {
                DigestKind::Batch => {
                    p.first_sequence == head.shipped_sequence + 1
                        && p.first_sequence <= p.last_sequence
                        && p.last_sequence <= head.last_sequence
                }
                DigestKind::Heartbeat => {
                    p.last_sequence == head.shipped_sequence
                        && p.first_sequence == p.last_sequence + 1
                }
            };
            if !in_range || p.digest_sequence != head.digest_sequence + 1 {
                return corrupt(format!(
                    "pending shipment {} does not fit the head",
                    p.digest_sequence
                ));
            }
        }
        Ok(Sequencer {
            head,
            buffer: buffer.into(),
        })
    }

    pub fn stream(&self) -> &str {
        &self.head.stream
    }

    pub fn head(&self) -> &SequencerHead {
        &self.head
    }

    /// The unshipped entries, oldest first.
    pub fn buffered(&self) -> impl Iterator<Item = &Buffered> {
        self.buffer.iter()
    }

    /// Assigns `record` the next sequence and chains it. Persist the head and the returned entry
    /// (under [`entry_storage_key`]) in one atomic write before answering the request.
    pub fn append(&mut self, record: &AuditEvent, now_ms: u64) -> Result<Buffered, TrailError> {
        let sequence = self.head.last_sequence + 1;
        let entry = Entry::chain(&self.head.stream, sequence, &self.head.last_hash, record)?;
        let buffered = Buffered {
            appended_ms: now_ms,
            entry,
        };
        self.head.last_sequence = sequence;
        self.head.last_hash = buffered.entry.hash.clone();
        self.buffer.push_back(buffered.clone());
        Ok(buffered)
    }

    /// When the next digest falls due without traffic.
    fn digest_due_ms(&self, policy: &ShipPolicy) -> u64 {
        self.head.digest_ms.map_or(self.head.created_ms, |t| {
            t.saturating_add(policy.heartbeat_ms)
        })
    }

    /// When [`Sequencer::next_shipment`] next has something to do. A time at or before now
    /// means now (a pending shipment to retry, a full buffer). Set the alarm to it.
    pub fn alarm_at(&self, policy: &ShipPolicy) -> u64 {
        if let Some(p) = &self.head.pending {
            return p.created_ms;
        }
        let digest_due = self.digest_due_ms(policy);
        match self.buffer.front() {
            None => digest_due,
            Some(oldest) if self.buffer.len() >= policy.max_records => oldest.appended_ms,
            Some(oldest) => digest_due.min(oldest.appended_ms.saturating_add(policy.max_age_ms)),
        }
    }

    fn due(&self, now_ms: u64, policy: &ShipPolicy) -> Option<(DigestKind, u64, u64)> {
        let digest_due = now_ms >= self.digest_due_ms(policy);
        match self.buffer.front() {
            Some(oldest) => {
                let full = self.buffer.len() >= policy.max_records;
                let old = now_ms >= oldest.appended_ms.saturating_add(policy.max_age_ms);
                if !(full || old || digest_due) {
                    return None;
                }
                let take = self.buffer.len().min(policy.max_records);
                let last = self.buffer.get(take - 1)?.entry.sequence;
                Some((DigestKind::Batch, oldest.entry.sequence, last))
            }
            None if digest_due => {
                let shipped = self.head.shipped_sequence;
                Some((DigestKind::Heartbeat, shipped + 1, shipped))
            }
            None => None,
        }
    }

    /// The shipment to upload now, if any. A shipment stays pending until
    /// [`Sequencer::confirm`]: until then every call returns it again, byte for byte (same
    /// object keys, same bytes), whatever `now_ms`. Persist the head after a `Some` and before
    /// uploading, so a restart re-produces the same shipment.
    pub fn next_shipment(
        &mut self,
        now_ms: u64,
        policy: &ShipPolicy,
        keyring: &SigningKeyring,
    ) -> Result<Option<Shipment>, TrailError> {
        self.next_shipment_with(&SoftwareCodec, now_ms, policy, keyring)
    }

    /// [`Sequencer::next_shipment`], hashing and compressing with `codec`.
    pub fn next_shipment_with(
        &mut self,
        codec: &dyn TrailCodec,
        now_ms: u64,
        policy: &ShipPolicy,
        keyring: &SigningKeyring,
    ) -> Result<Option<Shipment>, TrailError> {
        policy.check()?;
        let pending = match &self.head.pending {
            Some(p) => p.clone(),
            None => {
                let Some((kind, first, last)) = self.due(now_ms, policy) else {
                    return Ok(None);
                };
                // Digest times never go backwards, even if the host's clock does.
                let created_ms = now_ms.max(self.head.digest_ms.unwrap_or(0));
                let key_id = keyring
                    .key_id_at(created_ms)
                    .ok_or(TrailError::NoSigningKey { at_ms: created_ms })?;
                PendingShipment {
                    digest_sequence: self.head.digest_sequence + 1,
                    kind,
                    first_sequence: first,
                    last_sequence: last,
                    created_ms,
                    key_id: key_id.to_string(),
                    digest_sha256: String::new(),
                }
            }
        };
        let shipment = self.render(codec, &pending, keyring)?;
        // Same code, same bytes; after an upgrade that changed the compressor's output both
        // objects are rendered anew and consistently, and the new digest hash is what chains.
        self.head.pending = Some(PendingShipment {
            digest_sha256: codec::sha256_hex(codec, &shipment.digest.bytes),
            ..pending
        });
        Ok(Some(shipment))
    }

    fn render(
        &self,
        codec: &dyn TrailCodec,
        p: &PendingShipment,
        keyring: &SigningKeyring,
    ) -> Result<Shipment, TrailError> {
        let stream = &self.head.stream;
        let (batch, batch_sha256, chain_head) = match p.kind {
            DigestKind::Batch => {
                let count = usize::try_from(p.last_sequence + 1 - p.first_sequence)
                    .map_err(|_| TrailError::Corrupt("batch too large".into()))?;
                let entries: Vec<&Entry> =
                    self.buffer.iter().take(count).map(|b| &b.entry).collect();
                let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                    return Err(TrailError::Corrupt("pending batch has no entries".into()));
                };
                if first.sequence != p.first_sequence || last.sequence != p.last_sequence {
                    return Err(TrailError::Corrupt(format!(
                        "pending batch {}..={} is not at the front of the buffer",
                        p.first_sequence, p.last_sequence
                    )));
                }
                let bytes = codec.gzip(&batch::jsonl(entries.iter().copied())?)?;
                let sha = codec::sha256_hex(codec, &bytes);
                let head = last.hash.clone();
                let object = ObjectPut {
                    key: batch_key(stream, p.first_sequence, p.last_sequence),
                    bytes,
                    content_type: "application/gzip",
                };
                (Some(object), Some(sha), head)
            }
            DigestKind::Heartbeat => (None, None, self.head.shipped_hash.clone()),
        };
        let mut digest = Digest {
            schema_version: DIGEST_SCHEMA_VERSION,
            stream: stream.clone(),
            digest_sequence: p.digest_sequence,
            kind: p.kind,
            first_sequence: p.first_sequence,
            last_sequence: p.last_sequence,
            count: p.last_sequence + 1 - p.first_sequence,
            batch_sha256,
            chain_head,
            prev_digest_sha256: self.head.digest_sha256.clone(),
            created_ms: p.created_ms,
            key_id: p.key_id.clone(),
            signature: None,
        };
        let signature = keyring
            .sign(&p.key_id, &digest.signed_bytes()?)
            .ok_or_else(|| TrailError::SigningKeyGone {
                key_id: p.key_id.clone(),
            })?;
        digest.signature = Some(signature);
        Ok(Shipment {
            id: ShipmentId(p.digest_sequence),
            kind: p.kind,
            first_sequence: p.first_sequence,
            last_sequence: p.last_sequence,
            batch,
            digest: ObjectPut {
                key: digest_key(stream, p.digest_sequence),
                bytes: digest.object_bytes()?,
                content_type: "application/json",
            },
        })
    }

    /// Call once the store confirmed every object of shipment `id`. Removes the shipped entries
    /// from the buffer and advances the digest chain. Persist the head and delete the removed
    /// entries (see [`Confirmed::removed`]) in one atomic write.
    pub fn confirm(&mut self, id: ShipmentId) -> Result<Confirmed, TrailError> {
        let pending = match &self.head.pending {
            Some(p) if p.digest_sequence == id.0 => p.clone(),
            other => {
                return Err(TrailError::NotPending {
                    given: id,
                    pending: other.as_ref().map(|p| ShipmentId(p.digest_sequence)),
                })
            }
        };
        if pending.kind == DigestKind::Batch {
            let count = usize::try_from(pending.last_sequence + 1 - pending.first_sequence)
                .map_err(|_| TrailError::Corrupt("batch too large".into()))?;
            let last = match self.buffer.get(count.wrapping_sub(1)) {
                Some(b) if b.entry.sequence == pending.last_sequence => b.entry.hash.clone(),
                _ => {
                    return Err(TrailError::Corrupt(format!(
                        "confirmed batch {}..={} is not at the front of the buffer",
                        pending.first_sequence, pending.last_sequence
                    )))
                }
            };
            self.buffer.drain(..count);
            self.head.shipped_sequence = pending.last_sequence;
            self.head.shipped_hash = last;
        }
        self.head.digest_sequence = pending.digest_sequence;
        self.head.digest_sha256 = pending.digest_sha256;
        self.head.digest_ms = Some(pending.created_ms);
        self.head.pending = None;
        Ok(Confirmed {
            id,
            kind: pending.kind,
            first_sequence: pending.first_sequence,
            last_sequence: pending.last_sequence,
        })
    }
}
