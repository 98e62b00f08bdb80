//! Driving the sequencer from a shared store with compare-and-swap instead of a single owner.
//!
//! A Durable Object owns its stream and runs one call at a time (see the [`super`] docs). A host
//! whose instances all write one database (Spin with SQLite) cannot hold the sequencer in memory:
//! each call loads what it needs, and every change of the head is conditional on the head's
//! version, so a call that lost a race re-runs against the winner's state. The store offers:
//!
//! - an atomic *append*: if the head's version is still the one read, store the entry, replace
//!   the head, bump the version and drop the request's open record, all in one statement (in
//!   SQLite: an `INSERT` whose triggers check the version and update the head);
//! - a conditional head swap, for the shipping steps;
//! - plain reads of the buffered entries and the open records.
//!
//! Appends need only the head (the entries stay where they are), so a request costs two
//! statements however large the buffer. Shipping follows the same steps as the Durable Object:
//! write the head holding the pending shipment, upload its objects, confirm, write the head,
//! delete the shipped entries. A shipment is re-produced byte for byte until confirmed, so two
//! instances flushing at once upload the same objects, and only one confirmation lands.

use super::sequencer::{Buffered, Sequencer, SequencerHead, ShipPolicy, TrailError};
use super::{Entry, ObjectPut, SigningKeyring};
use crate::audit::inflight::{due, OpenRecord};
use crate::audit::AuditEvent;
use crate::host::HostError;

/// How many lost races a call tolerates before it gives up (the caller fails or retries later).
pub const MAX_ATTEMPTS: usize = 32;

/// The head as stored, with its version (bumped by every change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHead {
    pub version: u64,
    pub head: SequencerHead,
}

/// What an atomic append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendWrite {
    Done,
    /// The head's version moved: nothing was written.
    Conflict,
    /// The append had to claim an open record that is gone (chained or closed by another call):
    /// nothing was written.
    Claimed,
}

/// The storage a host gives the driver, for one audit stream per call.
#[allow(async_fn_in_trait)]
pub trait TrailStore {
    async fn head(&self, stream: &str) -> Result<Option<StoredHead>, HostError>;
    /// Stores `head` as version 0 unless the stream has a head already.
    async fn create(&self, head: &SequencerHead) -> Result<(), HostError>;
    /// In one atomic step, if the head's version is `base_version` (and, with `claim_open`,
    /// the open record of `entry`'s request still exists): store `entry`, replace the head by
    /// `next`, bump the version, and delete the open record of the entry's request, if any.
    async fn append(
        &self,
        base_version: u64,
        next: &SequencerHead,
        entry: &Buffered,
        request_id: &str,
        claim_open: bool,
    ) -> Result<AppendWrite, HostError>;
    /// Replaces the head if its version is still `base_version`; returns whether it did.
    async fn swap_head(&self, base_version: u64, head: &SequencerHead) -> Result<bool, HostError>;
    /// The buffered entries of `stream` after sequence `after`, in order.
    async fn entries(&self, stream: &str, after: u64) -> Result<Vec<Buffered>, HostError>;
    /// Deletes the entries of `stream` up to and including `through`.
    async fn drop_entries(&self, stream: &str, through: u64) -> Result<(), HostError>;
    /// How many entries follow `after`, and when the oldest of them was appended.
    async fn backlog(&self, stream: &str, after: u64) -> Result<(u64, Option<u64>), HostError>;
    async fn put_open(&self, stream: &str, open: &OpenRecord) -> Result<(), HostError>;
    async fn open_records(&self, stream: &str) -> Result<Vec<OpenRecord>, HostError>;
    /// The earliest `expires_ms` of the stream's open records.
    async fn earliest_open(&self, stream: &str) -> Result<Option<u64>, HostError>;
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
    head: &SequencerHead,
    event: &AuditEvent,
    now_ms: u64,
) -> Result<(SequencerHead, Buffered), TrailError> {
    let sequence = head.last_sequence + 1;
    let entry = Entry::chain(&head.stream, sequence, &head.last_hash, event)
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
async fn append_inner<S: TrailStore>(
    store: &S,
    stream: &str,
    event: &AuditEvent,
    now_ms: u64,
    claim_open: bool,
) -> Result<Option<u64>, DriveError> {
    for _ in 0..MAX_ATTEMPTS {
        let stored = load_head(store, stream, now_ms).await?;
        let (next, entry) = chain_next(&stored.head, event, now_ms)?;
        let request_id = &event.record.request_id;
        match store
            .append(stored.version, &next, &entry, request_id, claim_open)
            .await?
        {
            AppendWrite::Done => return Ok(Some(entry.entry.sequence)),
            AppendWrite::Claimed => return Ok(None),
            AppendWrite::Conflict => continue,
        }
    }
    Err(DriveError::Contended)
}

/// Chains a finished request's record (closing its open record, if it had one).
pub async fn append<S: TrailStore>(
    store: &S,
    stream: &str,
    event: &AuditEvent,
    now_ms: u64,
) -> Result<u64, DriveError> {
    append_inner(store, stream, event, now_ms, false)
        .await?
        .ok_or(DriveError::Contended)
}

/// Records a stream that is about to start; see [`crate::audit::inflight`].
pub async fn open<S: TrailStore>(
    store: &S,
    stream: &str,
    event: &AuditEvent,
    expires_ms: u64,
) -> Result<(), DriveError> {
    store
        .put_open(stream, &OpenRecord::new(event.clone(), expires_ms))
        .await?;
    Ok(())
}

/// Chains, as partial, the open records whose time is up. Returns how many this call chained.
pub async fn chain_abandoned<S: TrailStore>(
    store: &S,
    stream: &str,
    now_ms: u64,
) -> Result<usize, DriveError> {
    let mut chained = 0;
    for record in due(store.open_records(stream).await?, now_ms) {
        let event = record.abandoned(now_ms);
        if append_inner(store, stream, &event, now_ms, true)
            .await?
            .is_some()
        {
            chained += 1;
        }
    }
    Ok(chained)
}

/// Whether a flush has work at `now_ms`: a pending shipment, a full or old batch, a digest due,
/// or an open record to give up on. Mirrors [`Sequencer::alarm_at`] from the head and two
/// aggregates, so a request can check it without loading the buffer.
pub fn flush_due(
    head: &SequencerHead,
    backlog: u64,
    oldest_ms: Option<u64>,
    earliest_open: Option<u64>,
    now_ms: u64,
    policy: &ShipPolicy,
) -> bool {
    if head.pending.is_some() || earliest_open.is_some_and(|t| t <= now_ms) {
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
    let open = store.earliest_open(stream).await?;
    Ok(flush_due(
        &stored.head,
        backlog,
        oldest,
        open,
        now_ms,
        policy,
    ))
}

async fn restore<S: TrailStore>(
    store: &S,
    stream: &str,
) -> Result<Option<(u64, Sequencer)>, DriveError> {
    let Some(stored) = store.head(stream).await? else {
        return Ok(None);
    };
    // Entries up to `shipped_sequence` may survive a crash between confirming and deleting.
    let shipped = stored.head.shipped_sequence;
    let entries = store.entries(stream, shipped).await?;
    Ok(Some((
        stored.version,
        Sequencer::restore(stored.head, entries)?,
    )))
}

/// Chains abandoned streams, then uploads every due shipment (batch, then digest) and confirms
/// it. Returns how many shipments this call confirmed. A failed upload leaves the shipment
/// pending; the next flush re-produces it byte for byte.
pub async fn flush<S: TrailStore, O: ObjectSink>(
    store: &S,
    sink: &O,
    stream: &str,
    now_ms: u64,
    policy: &ShipPolicy,
    keyring: &SigningKeyring,
) -> Result<usize, DriveError> {
    chain_abandoned(store, stream, now_ms).await?;
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
        let Some(shipment) = sequencer.next_shipment(now_ms, policy, keyring)? else {
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
mod tests;
