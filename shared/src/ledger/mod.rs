//! The tenant ledger: the one durable object a request talks to. It holds the tenant's budgets
//! and rate windows ([`Budgets`]), the opening record of every request in flight (its
//! write-ahead entry), and an outbox of finished records on their way to the region's audit
//! stream. A host keeps one per tenant (or tenant shard, [`LedgerId`]) and applies one
//! operation at a time: a Durable Object on Workers, a versioned SQLite row on Spin.
//!
//! A request costs it one operation before the upstream call ([`LedgerOp::Admit`]: reserve +
//! opening record) and one after the response ([`LedgerOp::Commit`]: settle + final record),
//! and the second is off the client's critical path. What is durable when:
//!
//! - after `Admit`: the reservation and the opening record. If the commit never comes (the
//!   isolate died, the client left and the platform cancelled the work), [`TenantLedger::expire`]
//!   charges the reservation in full at `expires_ms` and queues the opening record as `partial`.
//! - after `Commit` or `Record`: the final record, in the outbox, in the same atomic write as the
//!   settle. The host forwards the outbox in batches ([`TenantLedger::forward_batch`]) to the
//!   audit stream, which acknowledges by sequence ([`TenantLedger::forwarded`]); a batch is
//!   resent until acknowledged and the stream drops what it already has, so each record is
//!   chained exactly once.

#[cfg(test)]
mod alert_tests;
#[cfg(test)]
mod clock_tests;
pub mod insights;
mod lease;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod open_tests;
mod opening;
mod ops;
mod outbox;
mod storage;
pub mod stored;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use insights::{AnalyticsAsk, AnalyticsRow, Delivery, Dimension, LoggedAlert};
pub use lease::{LeaseAsk, LeaseClose, LeaseEntry, LeaseGrant, LEASE_OPERATION};
pub use opening::OpeningRecord;
pub use ops::{
    shard_of, share, AdmitAsk, CommitAsk, LedgerId, LedgerOp, LedgerReply, OpenAsk, RecordAsk,
    UsageAsk,
};
pub use storage::{
    LedgerWrites, ALERTS_KEY, ERROR_WINDOW_KEY, GROUP_PREFIX, LEASE_PREFIX, META_KEY,
    REQUEST_PREFIX, ROLLUP_PREFIX, TOTALS_KEY,
};

use crate::audit::{AuditEvent, Outcome, RecordText};
pub use crate::audit::{ForwardAck, ForwardBatch, ForwardRef};
use crate::budget::{BudgetStatus, Budgets, ReserveReply, SettleAsk, SettleReply};
use insights::{AlertState, ErrorWindow, Rollups};

/// Most records one forward carries (each record is ~1-2 KB of JSON).
pub const FORWARD_BATCH_MAX: usize = 256;

/// A request in flight: its opening record and when it is given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    pub record: OpeningRecord,
    pub expires_ms: u64,
}

/// A forward sent and not yet acknowledged. Persisted before sending, so a restarted ledger
/// resends the same records to the same stream (even if the region's shard count changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub stream: String,
    pub through: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    /// The outbox sequence of the next record (from 1). Stored pieces do not keep it up to date:
    /// [`TenantLedger::restore`] derives it from the outbox and `forwarded`.
    next_seq: u64,
    /// Acknowledged by the audit stream through this sequence.
    forwarded: u64,
    in_flight: Option<InFlight>,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            next_seq: 1,
            forwarded: 0,
            in_flight: None,
        }
    }
}

/// Which pieces changed since the host last stored them (requests by storage key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Dirty {
    totals: bool,
    meta: bool,
    requests: BTreeSet<String>,
    /// Leases by id.
    leases: BTreeSet<String>,
    /// Rollup buckets (by name), and whether the alert state or the error window changed.
    rollups: BTreeSet<String>,
    alerts: bool,
    error_window: bool,
    /// The group key the records finished since the last store go under (see [`Row`]).
    group: Option<String>,
}

/// Where a finished record is stored until it is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// Its request's own row, which held the request's opening record (a write-ahead commit or
    /// expiry rewrites that row: no row added).
    Opening,
    /// One row shared by every record finished between two stores (leased commits, refusals,
    /// lease records, late commits): a group commit of 64 costs the store one row written and,
    /// once forwarded, one deleted, not 64 of each. Storage rows written are what Durable
    /// Objects bill, and each costs the object CPU.
    Group,
}

/// A finished record waiting to be forwarded (as its text: see [`RecordText`]), and the storage
/// key of the row it lives in: the row its request had while open (`Row::Opening`), or its
/// group's (`Row::Group`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    pub key: String,
    pub record: RecordText,
}

/// One ledger's state; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLedger {
    budgets: Budgets,
    open: BTreeMap<String, OpenRequest>,
    outbox: outbox::Outbox,
    meta: Meta,
    /// Kept in pieces by a host that stores pieces (the Durable Object); not part of the
    /// whole-state JSON a compare-and-swap host stores per operation (it would grow with every
    /// hour of history): such a host takes the changes as deltas ([`TenantLedger::take_rollup_deltas`])
    /// and keeps them in its own table (`stored::LedgerStore::merge_rollups`).
    #[serde(skip)]
    rollups: Rollups,
    #[serde(default)]
    alerts: AlertState,
    #[serde(default)]
    error_window: ErrorWindow,
    /// Admission leases held by isolates ([`lease`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    leases: BTreeMap<String, LeaseEntry>,
    #[serde(skip)]
    dirty: Dirty,
}

/// The storage key of request `id`.
pub(crate) fn request_key(id: &str) -> String {
    // Three per request: concatenated, not through the formatting machinery.
    let mut key = String::with_capacity(REQUEST_PREFIX.len() + id.len());
    key.push_str(REQUEST_PREFIX);
    key.push_str(id);
    key
}

impl TenantLedger {
    /// Applies one operation. The host stores [`TenantLedger::take_writes`] (or the whole state)
    /// before it answers, and wakes at [`TenantLedger::wake_at`]. Takes the operation by value:
    /// its record moves into the ledger, not copied (a host that may retry keeps its own copy).
    pub fn apply(&mut self, op: LedgerOp) -> LedgerReply {
        match op {
            LedgerOp::Admit(ask) => {
                self.expire(ask.now_ms);
                self.admit(ask)
            }
            LedgerOp::Lease(ask) => {
                if self.leases.contains_key(&ask.lease_id)
                    || self.budgets.reservation(&ask.lease_id).is_some()
                {
                    // Ids are random: a repeat is a retried call, and holds nothing twice.
                    return LedgerReply::Done;
                }
                self.expire(ask.now_ms);
                for close in &ask.close {
                    self.close_lease(close, ask.now_ms);
                }
                self.note_policy(ask.error_rate, ask.reserve.as_ref(), ask.now_ms);
                let tenant = ask.record.record.tenant_id.clone().unwrap_or_default();
                match self.grant_lease(&ask) {
                    lease::Leased::Granted(grant, budgets) => {
                        self.raise_budget_events(&tenant, &budgets, ask.now_ms);
                        LedgerReply::Leased {
                            grant,
                            budgets,
                            alerts: self.claim_alerts(ask.now_ms),
                        }
                    }
                    lease::Leased::Refused(refused) => {
                        self.refused(ask.record, refused, &tenant, ask.now_ms)
                    }
                }
            }
            LedgerOp::CloseLease { now_ms, close } => {
                self.close_lease(&close, now_ms);
                LedgerReply::Done
            }
            LedgerOp::Commit(ask) => self.commit(ask),
            LedgerOp::Record(ask) => {
                // The end of an action opened write-ahead (`Open`): its opening record is
                // replaced by this one. Only an opening that holds nothing: a reservation is
                // settled by `Commit`, never dropped here.
                let id = &ask.record.record.request_id;
                let row = if self.open.contains_key(id) && self.budgets.reservation(id).is_none() {
                    self.open.remove(id);
                    self.dirty.requests.insert(request_key(id));
                    Row::Opening
                } else {
                    Row::Group
                };
                self.push_record(ask.record, row);
                LedgerReply::Recorded
            }
            LedgerOp::Open(ask) => {
                self.expire(ask.now_ms);
                if !self.open.contains_key(&ask.record.record.request_id) {
                    self.open_record(ask.record, ask.expires_ms);
                }
                LedgerReply::Done
            }
            LedgerOp::Usage(ask) => {
                self.expire(ask.now_ms);
                self.dirty.totals = true;
                LedgerReply::Usage(self.budgets.usage(
                    &ask.budgets,
                    &ask.requests_per_minute,
                    &ask.tokens_per_minute,
                    ask.now_ms,
                ))
            }
            LedgerOp::Analytics(ask) => LedgerReply::Analytics {
                rows: self.rollups.query(&ask),
            },
            LedgerOp::Alerts { limit } => LedgerReply::Alerts {
                alerts: self.alerts.log.iter().rev().take(limit).cloned().collect(),
            },
            LedgerOp::Raise { events, .. } => {
                if self.alerts.raise(events) {
                    self.dirty.alerts = true;
                }
                LedgerReply::Done
            }
            LedgerOp::ClaimAlerts { now_ms } => LedgerReply::Claimed {
                alerts: self.claim_alerts(now_ms),
            },
            LedgerOp::Delivered { now_ms, results } => {
                if self.alerts.delivered(&results, now_ms) {
                    self.dirty.alerts = true;
                }
                LedgerReply::Done
            }
        }
    }

    /// Raises the budget events `statuses` show (thresholds by budget key, as last admitted).
    fn raise_budget_events(&mut self, tenant: &str, statuses: &[BudgetStatus], now_ms: u64) {
        let events = insights::budget_events(
            tenant,
            statuses,
            &self.alerts.percents,
            &self.alerts.raised,
            now_ms,
        );
        if !events.is_empty() && self.alerts.raise(events) {
            self.dirty.alerts = true;
        }
    }

    /// Applies the operations of one call in order ([`TenantLedger::apply`] each), then ends
    /// the call ([`TenantLedger::end_call`]).
    pub fn apply_call(&mut self, ops: &[LedgerOp]) -> Vec<LedgerReply> {
        let mut replies: Vec<LedgerReply> = ops.iter().map(|op| self.apply(op.clone())).collect();
        if let (Some(LedgerOp::Commit(ask)), Some(last)) = (ops.last(), replies.last_mut()) {
            self.end_call(last, ask.now_ms);
        }
        replies
    }

    /// Applies `op` as a call of its own, by value (no copy kept for a retry).
    pub fn apply_alone(&mut self, op: LedgerOp) -> LedgerReply {
        let commit_ms = match &op {
            LedgerOp::Commit(ask) => Some(ask.now_ms),
            _ => None,
        };
        let mut reply = self.apply(op);
        if let Some(now_ms) = commit_ms {
            self.end_call(&mut reply, now_ms);
        }
        reply
    }

    /// Ends a call (the operations an isolate sent together, applied in order): when its last
    /// operation is a commit, that reply takes the alerts due for delivery, as an admission's
    /// does. The isolate that sent the call reads its last reply, so an alert a settle raised (a
    /// budget threshold the request's charge crossed, an error-rate spike its record completed)
    /// goes out after that request, not with the tenant's next admission.
    pub fn end_call(&mut self, last: &mut LedgerReply, now_ms: u64) {
        if let LedgerReply::Committed { alerts, .. } = last {
            *alerts = self.claim_alerts(now_ms);
        }
    }

    /// Alerts due for delivery, claimed for the isolate that asked.
    fn claim_alerts(&mut self, now_ms: u64) -> Vec<crate::alerts::AlertEvent> {
        let claimed = self.alerts.claim(now_ms);
        if !claimed.is_empty() {
            self.dirty.alerts = true;
        }
        claimed
    }

    fn admit(&mut self, ask: AdmitAsk) -> LedgerReply {
        let id = ask.record.record.request_id.clone();
        if self.open.contains_key(&id) {
            // A retried admission holds nothing twice.
            return LedgerReply::Admitted {
                budgets: Vec::new(),
                alerts: Vec::new(),
            };
        }
        let tenant = ask.record.record.tenant_id.clone().unwrap_or_default();
        self.note_policy(ask.error_rate, ask.reserve.as_ref(), ask.now_ms);
        let mut reserve = ask.reserve;
        if let Some(r) = reserve.as_mut() {
            // The reservation and the opening record expire together: the host priced the
            // request (and may have waited on a read) before it read the clock for the ask, and
            // an expiry between the two would charge the reservation while recording the
            // request without what it was charged.
            r.expires_ms = ask.expires_ms;
        }
        let budgets = match &reserve {
            None => Vec::new(),
            Some(reserve) => {
                self.dirty.totals = true;
                match self.budgets.reserve(reserve) {
                    ReserveReply::Admitted { budgets } => budgets,
                    ReserveReply::Refused {
                        refusal,
                        retry_after_ms,
                        budgets,
                    } => {
                        let refused = lease::Refused {
                            refusal,
                            retry_after_ms,
                            budgets,
                        };
                        return self.refused(ask.record, refused, &tenant, ask.now_ms);
                    }
                }
            }
        };
        self.open_record(ask.record, ask.expires_ms);
        self.raise_budget_events(&tenant, &budgets, ask.now_ms);
        LedgerReply::Admitted {
            budgets,
            alerts: self.claim_alerts(ask.now_ms),
        }
    }

    /// Stores `record` as its request's opening record, chained as partial at `expires_ms`
    /// unless the request ends first.
    fn open_record(&mut self, mut record: AuditEvent, expires_ms: u64) {
        let id = record.record.request_id.clone();
        // A record of an earlier request with this id still waiting in the outbox moves aside.
        let key = request_key(&id);
        if let Some(seq) = self.outbox.seq_of(&key) {
            let aside = format!("{key}~{seq}");
            self.dirty.requests.insert(aside.clone());
            self.outbox.rekey(&key, aside);
        }
        record.bound_fields();
        self.open.insert(
            id,
            OpenRequest {
                record: record.into(),
                expires_ms,
            },
        );
        self.dirty.requests.insert(key);
    }

    /// Keeps the tenant's alert rules as the latest admission states them, and folds old rollups.
    fn note_policy(
        &mut self,
        error_rate: Option<crate::config::ErrorRateRule>,
        reserve: Option<&crate::budget::ReserveAsk>,
        now_ms: u64,
    ) {
        if self.alerts.rule != error_rate {
            self.alerts.rule = error_rate;
            self.dirty.alerts = true;
        }
        for line in reserve.iter().flat_map(|r| &r.budgets) {
            if !line.alert_percents.is_empty()
                && self.alerts.percents.get(&line.key) != Some(&line.alert_percents)
            {
                self.alerts
                    .percents
                    .insert(line.key.clone(), line.alert_percents.clone());
                self.dirty.alerts = true;
            }
        }
        for name in self.rollups.compact(now_ms) {
            self.dirty.rollups.insert(name);
        }
    }

    /// Records a request the budgets refused (from its opening record) and answers the refusal.
    fn refused(
        &mut self,
        mut record: AuditEvent,
        reply: lease::Refused,
        tenant: &str,
        now_ms: u64,
    ) -> LedgerReply {
        let lease::Refused {
            refusal,
            retry_after_ms,
            budgets,
        } = reply;
        record.record.outcome = Outcome::Refused;
        record.record.status = 429;
        record.record.error_code = Some(refusal.code().to_string());
        record.record.latency_ms = now_ms.saturating_sub(record.record.timestamp_ms);
        self.push_record(record, Row::Group);
        self.raise_budget_events(tenant, &budgets, now_ms);
        LedgerReply::Refused {
            refusal,
            retry_after_ms,
            budgets,
            alerts: self.claim_alerts(now_ms),
        }
    }

    fn commit(&mut self, mut ask: CommitAsk) -> LedgerReply {
        if let Some(lease_id) = ask.lease.take() {
            return self.commit_leased(ask, lease_id);
        }
        let id = ask.record.record.request_id.clone();
        let mut record = ask.record;
        let on_time = self.open.remove(&id).is_some();
        let charged = if on_time {
            self.dirty.requests.insert(request_key(&id));
            match self.budgets.settle(&SettleAsk {
                request_id: id,
                now_ms: ask.now_ms,
                actual_micros: ask.actual_micros,
                actual_tokens: ask.actual_tokens,
            }) {
                SettleReply::Settled {
                    charged_micros,
                    budgets,
                } => {
                    let tenant = record.record.tenant_id.clone().unwrap_or_default();
                    self.raise_budget_events(&tenant, &budgets, ask.now_ms);
                    self.dirty.totals = true;
                    record.detail.settled_usd_micros = Some(charged_micros);
                    Some(charged_micros)
                }
                SettleReply::NotReserved => None,
            }
        } else {
            // Given up on already: its reservation was charged in full and its opening record
            // chained as partial. This record completes it and says so.
            record.detail.after_expiry = Some(true);
            None
        };
        self.push_record(record, if on_time { Row::Opening } else { Row::Group });
        LedgerReply::Committed {
            charged_micros: charged,
            on_time,
            alerts: Vec::new(),
        }
    }

    /// A request served under a lease: its charge is drawn from the lease, its record queued.
    fn commit_leased(&mut self, ask: CommitAsk, lease_id: String) -> LedgerReply {
        let mut record = ask.record;
        let (drawn, on_time) =
            self.draw_lease(&lease_id, ask.actual_micros, ask.actual_tokens, ask.now_ms);
        let charged = drawn.map(|(charged, budgets)| {
            let tenant = record.record.tenant_id.clone().unwrap_or_default();
            self.raise_budget_events(&tenant, &budgets, ask.now_ms);
            record.detail.settled_usd_micros = Some(charged);
            charged
        });
        if !on_time {
            // The lease was given up on: what it held was charged, its record says so.
            record.detail.after_expiry = Some(true);
        }
        record.detail.lease = Some(crate::audit::LeaseNote {
            id: lease_id,
            ..Default::default()
        });
        self.push_record(record, Row::Group);
        LedgerReply::Committed {
            charged_micros: charged,
            on_time,
            alerts: Vec::new(),
        }
    }

    /// Gives up on requests whose time is up: charges their reservations in full and queues
    /// their opening records as `partial`; likewise leases ([`lease`]). Returns how many
    /// requests it gave up on.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        // A request's reservation is given up on with its opening record, never before it: a
        // record must say what its request was charged (rows stored before `admit` aligned the
        // two expiries may hold an earlier one).
        let open = &self.open;
        let expired = self
            .budgets
            .expire_where(now_ms, |id, expires_ms| match open.get(id) {
                Some(o) => o.expires_ms <= now_ms,
                None => expires_ms <= now_ms,
            });
        if !expired.is_empty() {
            self.dirty.totals = true;
        }
        self.expire_leases(now_ms, &expired);
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| o.expires_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            let Some(open) = self.open.remove(id) else {
                continue;
            };
            self.dirty.requests.insert(request_key(id));
            let mut record = open
                .record
                .into_event()
                .unwrap_or_else(|_| unreadable_opening(id, now_ms));
            let r = &mut record.record;
            r.outcome = Outcome::Partial;
            if r.error_code.is_none() {
                r.error_code = Some(
                    if r.stream {
                        "stream_abandoned"
                    } else {
                        "request_unfinished"
                    }
                    .to_string(),
                );
            }
            r.latency_ms = now_ms.saturating_sub(r.timestamp_ms);
            record.detail.settled_usd_micros = expired
                .iter()
                .find(|e| &e.request_id == id)
                .map(|e| e.charged_micros);
            self.push_record(record, Row::Opening);
        }
        due.len()
    }

    fn push_record(&mut self, mut record: AuditEvent, row: Row) {
        // Every record enters the trail here: no client-sized string gets past it.
        record.bound_fields();
        if let Some(bucket) = self.rollups.add(&record) {
            self.dirty.rollups.insert(bucket);
            if let Some(rule) = self.alerts.rule {
                let tenant = record.record.tenant_id.clone().unwrap_or_default();
                let failed = record.record.outcome == Outcome::Error;
                let now = record.record.timestamp_ms + record.record.latency_ms;
                let spike = self.error_window.count(&rule, &tenant, failed, now);
                self.dirty.error_window = true;
                if let Some(event) = spike {
                    if self.alerts.raise(vec![event]) {
                        self.dirty.alerts = true;
                    }
                }
            }
        }
        let seq = self.meta.next_seq.max(1);
        self.meta.next_seq = seq + 1;
        let key = match row {
            Row::Opening => {
                let key = request_key(&record.record.request_id);
                if self.open.contains_key(&record.record.request_id)
                    || self.outbox.seq_of(&key).is_some()
                {
                    format!("{key}~{seq}")
                } else {
                    key
                }
            }
            Row::Group => self
                .dirty
                .group
                .get_or_insert_with(|| format!("{GROUP_PREFIX}{seq}"))
                .clone(),
        };
        self.dirty.requests.insert(key.clone());
        // `next_seq` is not stored per record: a restore derives it from the outbox.
        let record = RecordText::of(record);
        self.outbox.insert(seq, Outgoing { key, record });
    }

    /// The next batch to send to the audit stream `stream_for_new` (or the unacknowledged one,
    /// to the stream it went to), its records parsed. Mark it in flight and store that before
    /// sending. An error: a stored record's text is not an audit record (edited in storage); the
    /// batch stays in the outbox.
    pub fn forward_batch(
        &mut self,
        source: &LedgerId,
        stream_for_new: &str,
    ) -> Result<Option<ForwardBatch>, serde_json::Error> {
        self.forward_ref(source, stream_for_new)
            .map(|r| r.to_batch())
            .transpose()
    }

    /// [`TenantLedger::forward_batch`] borrowing the records, for a host that serializes the
    /// batch before it sends it.
    pub fn forward_ref<'a>(
        &'a mut self,
        source: &'a LedgerId,
        stream_for_new: &str,
    ) -> Option<ForwardRef<'a>> {
        let (first, &_) = self.outbox.first_key_value()?;
        let first = *first;
        let (stream, through) = match &self.meta.in_flight {
            Some(f) if f.through >= first => (f.stream.clone(), f.through),
            _ => {
                let through = self
                    .outbox
                    .keys()
                    .nth(FORWARD_BATCH_MAX - 1)
                    .or_else(|| self.outbox.keys().next_back())
                    .copied()
                    .unwrap_or(first);
                self.meta.in_flight = Some(InFlight {
                    stream: stream_for_new.to_string(),
                    through,
                });
                self.dirty.meta = true;
                (stream_for_new.to_string(), through)
            }
        };
        let records: Vec<&RecordText> = self
            .outbox
            .range(first..=through)
            .map(|(_, o)| &o.record)
            .collect();
        Some(ForwardRef {
            stream,
            source: source.as_str(),
            first_seq: first,
            records,
        })
    }

    /// The stream acknowledged everything up to `ack.through`: drop it from the outbox.
    pub fn forwarded(&mut self, ack: ForwardAck) {
        let done: Vec<u64> = self.outbox.range(..=ack.through).map(|(s, _)| *s).collect();
        for seq in done {
            if let Some(o) = self.outbox.remove(seq) {
                // A group's row goes with its last record; until then it is kept as written
                // (a restore skips what was forwarded).
                if !self.outbox.holds(&o.key) {
                    self.dirty.requests.insert(o.key);
                }
            }
        }
        self.meta.forwarded = self.meta.forwarded.max(ack.through);
        // As a restore derives it: never hand out a sequence the stream says it has.
        self.meta.next_seq = self.meta.next_seq.max(self.meta.forwarded + 1);
        if self
            .meta
            .in_flight
            .as_ref()
            .is_some_and(|f| f.through <= ack.through)
        {
            self.meta.in_flight = None;
        }
        self.dirty.meta = true;
    }

    /// When the host should call back: the earliest request expiry, or `now_ms` plus
    /// `forward_delay_ms` when records wait in the outbox (so a busy ledger forwards many per call).
    pub fn wake_at(&self, now_ms: u64, forward_delay_ms: u64) -> Option<u64> {
        let expiry = self
            .open
            .values()
            .map(|o| o.expires_ms)
            .chain(self.leases.values().map(|l| l.expires_ms))
            .min();
        let forward = (!self.outbox.is_empty()).then(|| now_ms.saturating_add(forward_delay_ms));
        match (expiry, forward) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the deployment's sweep should deliver alerts no request carried: the first time a
    /// pending alert will have been claimable for [`insights::SWEEP_AFTER_MS`] (a tenant without
    /// traffic, or a claim whose isolate died). The host marks the ledger for the sweep then
    /// (`LedgerOp::ClaimAlerts`); `None` when nothing waits.
    pub fn alerts_sweep_due_ms(&self) -> Option<u64> {
        self.alerts.sweep_due_ms()
    }

    pub fn open_requests(&self) -> usize {
        self.open.len()
    }

    pub fn open_request(&self, request_id: &str) -> Option<&OpenRequest> {
        self.open.get(request_id)
    }

    /// The requests in flight.
    pub fn open(&self) -> impl Iterator<Item = &OpenRequest> {
        self.open.values()
    }

    /// Records waiting to be forwarded.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// The rollup groups the last operations changed, as deltas (they hold only what those
    /// operations added), and forgets them: for a host that keeps rollups outside the ledger's
    /// JSON and adds deltas into its own table.
    pub fn take_rollup_deltas(&mut self) -> Vec<(String, Vec<insights::Rollup>)> {
        let names = std::mem::take(&mut self.dirty.rollups);
        std::mem::take(&mut self.rollups).take(names)
    }

    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }
}

/// The record a request that expired is chained with when its stored opening record no longer
/// parses (edited storage): the request still gets its record, saying so, with what the ledger
/// knows (its id, and below, its charge).
fn unreadable_opening(request_id: &str, now_ms: u64) -> AuditEvent {
    let mut record =
        crate::audit::AuditRecord::started(request_id, now_ms, "", "unknown".into(), "");
    record.status = 0;
    record.error_code = Some("opening_record_unreadable".into());
    AuditEvent::from(record)
}
