//! Driving the sequencer from a store: the one shipping loop both hosts run.
//!
//! A host gives the driver a [`TrailStore`] (where the head, the buffered entries and the
//! per-source watermarks live) and an [`ObjectSink`] (the bucket). Every change of the head is
//! conditional on the head's version, so a host whose instances share one database (Spin with
//! SQLite) re-runs a call that lost a race against the winner's state; a host with a single owner
//! (a Durable Object) always wins. The store offers:
//!
//! - an atomic *append*: if the head's version is still the one read, store the entries, replace
//!   the head, bump the version and move the source's watermark, all at once;
//! - a conditional head swap, for the shipping steps;
//! - plain reads of the buffered entries and of a source's watermark.
//!
//! Records arrive in batches from tenant ledgers ([`ForwardBatch`]), numbered by
//! their source; the watermark makes a resent batch (its acknowledgement was lost) a no-op, so
//! each record is chained once. Shipping: write the head holding the pending shipment, upload its
//! objects, confirm, write the head, delete the shipped entries. A shipment is re-produced byte
//! for byte until confirmed, so two instances flushing at once upload the same objects, and only
//! one confirmation lands.

use super::codec::{SoftwareCodec, TrailCodec};
use super::sequencer::{Buffered, Sequencer, SequencerHead, ShipPolicy, TrailError};
use super::AuditEvent;
use super::{Entry, ObjectPut, SigningKeyring};
use super::{ForwardAck, ForwardBatch};
use crate::error::HostError;

/// How many lost races a call tolerates before it gives up (the caller fails or retries later).
pub const MAX_ATTEMPTS: usize = 32;

/// The head as stored, with its version (bumped by every change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHead {
    pub version: u64,
    pub head: SequencerHead,
}

/// A source's position after an append: every record of `source` through `through` is chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark<'a> {
    pub source: &'a str,
    pub through: u64,
}

/// The storage a host gives the driver, for one audit stream per call.
#[allow(async_fn_in_trait)]
pub trait TrailStore {
    async fn head(&self, stream: &str) -> Result<Option<StoredHead>, HostError>;
    /// Stores `head` as version 0 unless the stream has a head already.
    async fn create(&self, head: &SequencerHead) -> Result<(), HostError>;
    /// In one atomic step, if the head's version is `base_version`: store `entries`, replace the
    /// head by `next`, bump the version and set the watermark. Returns whether it did.
    async fn append(
        &self,
        base_version: u64,
        next: &SequencerHead,
        entries: &[Buffered],
        watermark: &Watermark<'_>,
    ) -> Result<bool, HostError>;
    /// How far `source` has been chained into `stream` (0: nothing yet).
    async fn watermark(&self, stream: &str, source: &str) -> Result<u64, HostError>;
    /// Replaces the head if its version is still `base_version`; returns whether it did.
    async fn swap_head(&self, base_version: u64, head: &SequencerHead) -> Result<bool, HostError>;
    /// The buffered entries of `stream` after sequence `after`, in order.
    async fn entries(&self, stream: &str, after: u64) -> Result<Vec<Buffered>, HostError>;
    /// Deletes the entries of `stream` up to and including `through`.
    async fn drop_entries(&self, stream: &str, through: u64) -> Result<(), HostError>;
    /// The head and the entries after its shipped sequence, read as one state. By default two
    /// reads, right for a store with one writer (a Durable Object); a store that other writers
    /// append to between two statements reads both in one (else a restore can see entries the
    /// head it read does not have yet, and fail as inconsistent).
    async fn snapshot(
        &self,
        stream: &str,
    ) -> Result<Option<(StoredHead, Vec<Buffered>)>, HostError> {
        let Some(stored) = self.head(stream).await? else {
            return Ok(None);
        };
        let entries = self.entries(stream, stored.head.shipped_sequence).await?;
        Ok(Some((stored, entries)))
    }
    /// How many entries follow `after`, and when the oldest of them was appended.
    async fn backlog(&self, stream: &str, after: u64) -> Result<(u64, Option<u64>), HostError>;
    /// What chaining and shipping hash and compress with: the core's own code unless the host
    /// has faster native code.
    fn codec(&self) -> &dyn TrailCodec {
        &SoftwareCodec
    }
}

/// Where shipped objects go (a bucket).
#[allow(async_fn_in_trait)]
pub trait ObjectSink {
    async fn put(&self, object: &ObjectPut) -> Result<(), HostError>;
}

/// A failure of the driver: the store's, the sequencer's, or too many lost races.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriveError {
    Host(HostError),
    Trail(TrailError),
    Contended,
}

impl std::fmt::Display for DriveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriveError::Host(e) => write!(f, "{e}"),
            DriveError::Trail(e) => write!(f, "{e}"),
            DriveError::Contended => write!(f, "still contended after {MAX_ATTEMPTS} attempts"),
        }
    }
}

impl From<HostError> for DriveError {
    fn from(e: HostError) -> Self {
        DriveError::Host(e)
    }
}

impl From<TrailError> for DriveError {
    fn from(e: TrailError) -> Self {
        DriveError::Trail(e)
    }
}

/// The head after chaining `event`, and the entry to store: what [`Sequencer::append`] does,
/// without the buffer.
pub fn chain_next(
    codec: &dyn TrailCodec,
    head: &SequencerHead,
    event: &AuditEvent,
    now_ms: u64,
) -> Result<(SequencerHead, Buffered), TrailError> {
    let sequence = head.last_sequence + 1;
    let entry = Entry::chain_with(codec, &head.stream, sequence, &head.last_hash, event)
        .map_err(TrailError::Canonical)?;
    let mut next = head.clone();
    next.last_sequence = sequence;
    next.last_hash = entry.hash.clone();
    Ok((
        next,
        Buffered {
            appended_ms: now_ms,
            entry,
        },
    ))
}

async fn load_head<S: TrailStore>(
    store: &S,
    stream: &str,
    now_ms: u64,
) -> Result<StoredHead, DriveError> {
    if let Some(head) = store.head(stream).await? {
        return Ok(head);
    }
    store.create(Sequencer::new(stream, now_ms)?.head()).await?;
    store
        .head(stream)
        .await?
        .ok_or_else(|| DriveError::Host(HostError::Store("audit head vanished".into())))
}

/// Chains `event` into `stream`; returns its sequence, or `None` when `claim_open` was set and
/// another call had already chained or closed the request.
/// Starts `stream` if it has no head yet (its first digest, a heartbeat, falls due at `now_ms`).
/// A host starts every stream of a set as soon as one starts, so each has heartbeats from the
/// beginning and a verifier can expect all of them.
pub async fn ensure<S: TrailStore>(store: &S, stream: &str, now_ms: u64) -> Result<(), DriveError> {
    load_head(store, stream, now_ms).await.map(|_| ())
}

/// Whether `stream` has a head (it started).
pub async fn has_started<S: TrailStore>(store: &S, stream: &str) -> Result<bool, DriveError> {
    Ok(store.head(stream).await?.is_some())
}

/// Chains a ledger's batch into its stream and returns how far that source is chained. Records
/// the stream already has (a resent batch) are skipped, so each is chained once.
pub async fn append_batch<S: TrailStore>(
    store: &S,
    batch: &ForwardBatch,
    now_ms: u64,
) -> Result<ForwardAck, DriveError> {
    append_batch_counting(store, batch, now_ms)
        .await
        .map(|(ack, _)| ack)
}

/// [`append_batch`], also saying how many of the batch's records this call chained (its last
/// ones; the others the stream had already): what a host that derives counts from forwarded
/// records (Spin's rollups) adds, so a resent batch is not counted twice.
pub async fn append_batch_counting<S: TrailStore>(
    store: &S,
    batch: &ForwardBatch,
    now_ms: u64,
) -> Result<(ForwardAck, usize), DriveError> {
    let stream = batch.stream.as_str();
    if batch.records.is_empty() {
        let through = store.watermark(stream, &batch.source).await?;
        return Ok((ForwardAck { through }, 0));
    }
    let last = batch.last_seq();
    for _ in 0..MAX_ATTEMPTS {
        let stored = load_head(store, stream, now_ms).await?;
        let chained = store.watermark(stream, &batch.source).await?;
        if chained >= last {
            return Ok((ForwardAck { through: chained }, 0));
        }
        let skip = usize::try_from(chained.saturating_sub(batch.first_seq - 1))
            .map_err(|_| DriveError::Trail(TrailError::Corrupt("watermark overflow".into())))?;
        let mut head = stored.head.clone();
        let mut entries = Vec::with_capacity(batch.records.len().saturating_sub(skip));
        for event in batch.records.iter().skip(skip) {
            let (next, entry) = chain_next(store.codec(), &head, event, now_ms)?;
            head = next;
            entries.push(entry);
        }
        let watermark = Watermark {
            source: &batch.source,
            through: last,
        };
        if store
            .append(stored.version, &head, &entries, &watermark)
            .await?
        {
            return Ok((ForwardAck { through: last }, entries.len()));
        }
    }
    Err(DriveError::Contended)
}

/// Whether a flush has work at `now_ms`: a pending shipment, a full or old batch, or a digest
/// due. Mirrors [`Sequencer::alarm_at`] from the head and two
/// aggregates, so a request can check it without loading the buffer.
pub fn flush_due(
    head: &SequencerHead,
    backlog: u64,
    oldest_ms: Option<u64>,
    now_ms: u64,
    policy: &ShipPolicy,
) -> bool {
    if head.pending.is_some() {
        return true;
    }
    let digest_due = head
        .digest_ms
        .map_or(head.created_ms, |t| t.saturating_add(policy.heartbeat_ms));
    let batch_due = match oldest_ms {
        Some(oldest) if backlog >= policy.max_records as u64 => oldest <= now_ms,
        Some(oldest) => oldest.saturating_add(policy.max_age_ms) <= now_ms,
        None => false,
    };
    batch_due || digest_due <= now_ms
}

/// When [`flush`] next has work for a stream in this state (a time at or before now means now):
/// what a host sets its alarm to. Mirrors [`Sequencer::alarm_at`] from the head and two
/// aggregates, like [`flush_due`].
pub fn next_due(
    head: &SequencerHead,
    backlog: u64,
    oldest_ms: Option<u64>,
    policy: &ShipPolicy,
) -> u64 {
    if let Some(p) = &head.pending {
        return p.created_ms;
    }
    let digest_due = head
        .digest_ms
        .map_or(head.created_ms, |t| t.saturating_add(policy.heartbeat_ms));
    match oldest_ms {
        None => digest_due,
        Some(oldest) if backlog >= policy.max_records as u64 => oldest,
        Some(oldest) => digest_due.min(oldest.saturating_add(policy.max_age_ms)),
    }
}

/// Whether `stream` needs a flush now (see [`flush_due`]).
pub async fn needs_flush<S: TrailStore>(
    store: &S,
    stream: &str,
    now_ms: u64,
    policy: &ShipPolicy,
) -> Result<bool, DriveError> {
    let Some(stored) = store.head(stream).await? else {
        return Ok(false);
    };
    let (backlog, oldest) = store.backlog(stream, stored.head.shipped_sequence).await?;
    Ok(flush_due(&stored.head, backlog, oldest, now_ms, policy))
}

async fn restore<S: TrailStore>(
    store: &S,
    stream: &str,
) -> Result<Option<(u64, Sequencer)>, DriveError> {
    // Entries up to `shipped_sequence` may survive a crash between confirming and deleting.
    let Some((stored, entries)) = store.snapshot(stream).await? else {
        return Ok(None);
    };
    Ok(Some((
        stored.version,
        Sequencer::restore(stored.head, entries)?,
    )))
}

/// Uploads every due shipment (batch, then digest) and confirms it. Returns how many shipments this call confirmed. A failed upload leaves the shipment
/// pending; the next flush re-produces it byte for byte.
pub async fn flush<S: TrailStore, O: ObjectSink>(
    store: &S,
    sink: &O,
    stream: &str,
    now_ms: u64,
    policy: &ShipPolicy,
    keyring: &SigningKeyring,
) -> Result<usize, DriveError> {
    let mut confirmed = 0;
    let mut attempts = 0;
    loop {
        attempts += 1;
        if attempts > MAX_ATTEMPTS {
            return Err(DriveError::Contended);
        }
        let Some((version, mut sequencer)) = restore(store, stream).await? else {
            return Ok(confirmed);
        };
        let before = sequencer.head().clone();
        let Some(shipment) =
            sequencer.next_shipment_with(store.codec(), now_ms, policy, keyring)?
        else {
            return Ok(confirmed);
        };
        let mut version = version;
        if *sequencer.head() != before {
            if !store.swap_head(version, sequencer.head()).await? {
                continue;
            }
            version += 1;
        }
        for object in shipment.objects() {
            sink.put(object).await?;
        }
        // Confirm; a lost race (an append in between) is re-run on the fresh head, as long as
        // the shipment is still the pending one.
        loop {
            let done = sequencer.confirm(shipment.id)?;
            if store.swap_head(version, sequencer.head()).await? {
                if done.last_sequence >= done.first_sequence {
                    store.drop_entries(stream, done.last_sequence).await?;
                }
                confirmed += 1;
                break;
            }
            attempts += 1;
            if attempts > MAX_ATTEMPTS {
                return Err(DriveError::Contended);
            }
            let Some((fresh_version, fresh)) = restore(store, stream).await? else {
                return Ok(confirmed);
            };
            let still_pending = fresh
                .head()
                .pending
                .as_ref()
                .is_some_and(|p| p.digest_sequence == shipment.id.0);
            if !still_pending {
                // Another call confirmed it.
                break;
            }
            (version, sequencer) = (fresh_version, fresh);
        }
    }
}

#[cfg(test)]
#[path = "drive_tests.rs"]
pub(crate) mod tests;
