//! Admission leases: how an isolate admits many requests with one ledger call instead of one
//! each. The ledger reserves a lease's allowance (requests, worst-case dollars and tokens) against
//! every budget and limit at once, exactly as it would reserve one request, so `spent + reserved
//! <= limit` still holds; the isolate spends the allowance locally and reports each request's
//! final record and actual cost after its response (group commit), which the ledger draws from
//! the lease. When the isolate stops admitting under a lease it closes it with the number it
//! admitted; once that many records have arrived, what is left is released uncharged.
//!
//! What is durable when (see `docs/ARCHITECTURE.md`): before a leased request's upstream call,
//! only its share of the lease's reservation; its record from its commit on. If the isolate dies,
//! the lease is given up on at `expires_ms`: what it still holds is charged in full (a budget is
//! never over-spent) and the lease's own record is chained as `partial`, `lease_unreconciled`,
//! with how many requests it was granted, how many its isolate said it admitted and how many
//! records arrived. So a request may go unrecorded only inside a lease whose record says so.

use serde::{Deserialize, Serialize};

use super::{Outcome, Row, TenantLedger};
use crate::audit::{AuditEvent, LeaseNote};
use crate::budget::{BudgetStatus, Period, ReserveAsk, ReserveReply};
use crate::config::ErrorRateRule;
use crate::ratelimit::WINDOW_MS;

/// The `operation` of a lease's own audit record.
pub const LEASE_OPERATION: &str = "lease";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseAsk {
    pub now_ms: u64,
    /// Chosen by the isolate; also the lease's reservation id and its record's `request_id`.
    pub lease_id: String,
    /// The opening record of the request that asks (outcome `partial`): refused, the ledger
    /// records it; granted, the lease's own record is made from it.
    pub record: AuditEvent,
    /// The asking request's worst case and the budgets and limits it falls under (`None`: the
    /// tenant has none, and the lease only counts requests).
    pub reserve: Option<ReserveAsk>,
    /// Requests the isolate would like to admit under it.
    pub want_requests: u64,
    /// How long it may admit (the ledger shortens it to the end of the rate minute and of every
    /// calendar budget period, so a lease never spans two).
    pub usable_ms: u64,
    /// How long after that its last requests may take before the lease is given up on.
    pub grace_ms: u64,
    /// Leases this isolate stopped admitting under, closed in the same operation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub close: Vec<LeaseClose>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<ErrorRateRule>,
}

/// An isolate admits no more under `lease_id`; it admitted `admitted` requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseClose {
    pub lease_id: String,
    pub admitted: u64,
}

/// What a lease allows: the isolate admits while every allowance covers a request's worst case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrant {
    pub lease_id: String,
    pub requests: u64,
    /// Worst-case micro-USD and tokens it may admit (`None`: not limited).
    pub micros: Option<u64>,
    pub tokens: Option<u64>,
    pub usable_until_ms: u64,
}

/// A lease as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseEntry {
    /// Its own record: who holds it (tenant, key, region, trace, policy).
    pub record: AuditEvent,
    pub granted: u64,
    pub reported: u64,
    pub reported_tokens: u64,
    /// Charged to it so far (each reported request's cost).
    pub drawn_micros: u64,
    pub admitted: Option<u64>,
    pub expires_ms: u64,
}

/// The end of the window a lease granted at `now_ms` may admit in: the rate minute (when it
/// counts requests or tokens per minute) and the current period of every calendar budget bound
/// it. `now_ms` must be the time its reservation is counted at, so that the lease admits only
/// in the minute and the periods that count it.
fn usable_until(ask: &LeaseAsk, now_ms: u64) -> u64 {
    let mut until = now_ms.saturating_add(ask.usable_ms.max(1));
    if let Some(r) = &ask.reserve {
        if !r.requests_per_minute.is_empty() || !r.tokens_per_minute.is_empty() {
            until = until.min(now_ms - now_ms % WINDOW_MS + WINDOW_MS);
        }
        for line in &r.budgets {
            if !matches!(line.period, Period::Rolling { .. }) {
                until = until.min(line.period.bounds(now_ms).1);
            }
        }
    }
    until
}

pub(super) enum Leased {
    Granted(LeaseGrant, Vec<BudgetStatus>),
    Refused(Refused),
}

/// A refusal as [`ReserveReply::Refused`] carries it.
pub(super) struct Refused {
    pub refusal: crate::budget::Refusal,
    pub retry_after_ms: Option<u64>,
    pub budgets: Vec<BudgetStatus>,
}

impl TenantLedger {
    /// Grants a lease sized by [`crate::budget::Budgets::lease_size`], or refuses the asking
    /// request (with the reason a single reservation would get).
    pub(super) fn grant_lease(&mut self, ask: &LeaseAsk) -> Leased {
        // One clock for the window and the reservation: the lease's ask (the request may have
        // waited for another's lease call since it was priced), never before the ledger's.
        let now_ms = match &ask.reserve {
            Some(_) => self.budgets.advance(ask.now_ms),
            None => ask.now_ms,
        };
        let until = usable_until(ask, now_ms);
        let expires_ms = until.saturating_add(ask.grace_ms);
        let (grant, budgets) = match &ask.reserve {
            None => (
                LeaseGrant {
                    lease_id: ask.lease_id.clone(),
                    requests: ask.want_requests.max(1),
                    micros: None,
                    tokens: None,
                    usable_until_ms: until,
                },
                Vec::new(),
            ),
            Some(one) => {
                let one = ReserveAsk {
                    now_ms,
                    ..one.clone()
                };
                let n = self.budgets.lease_size(&one, ask.want_requests);
                let held = ReserveAsk {
                    request_id: ask.lease_id.clone(),
                    amount_micros: one.amount_micros.saturating_mul(n),
                    tokens: one.tokens.saturating_mul(n),
                    requests: n,
                    expires_ms,
                    ..one
                };
                self.dirty.totals = true;
                match self.budgets.reserve(&held) {
                    ReserveReply::Admitted { budgets } => (
                        LeaseGrant {
                            lease_id: ask.lease_id.clone(),
                            requests: n,
                            micros: Some(held.amount_micros),
                            tokens: Some(held.tokens),
                            usable_until_ms: until,
                        },
                        budgets,
                    ),
                    ReserveReply::Refused {
                        refusal,
                        retry_after_ms,
                        budgets,
                    } => {
                        return Leased::Refused(Refused {
                            refusal,
                            retry_after_ms,
                            budgets,
                        })
                    }
                }
            }
        };
        let mut record = ask.record.clone();
        let r = &mut record.record;
        r.request_id = ask.lease_id.clone();
        r.operation = LEASE_OPERATION.into();
        r.requested_model = None;
        r.served_model = None;
        r.provider = None;
        r.endpoint_host = None;
        r.stream = false;
        r.usage = None;
        record.detail = crate::audit::AuditDetail {
            actor: record.detail.actor.take(),
            tags: std::mem::take(&mut record.detail.tags),
            price_table_version: record.detail.price_table_version.take(),
            reserved_usd_micros: grant.micros,
            ..Default::default()
        };
        self.leases.insert(
            ask.lease_id.clone(),
            LeaseEntry {
                record,
                granted: grant.requests,
                reported: 0,
                reported_tokens: 0,
                drawn_micros: 0,
                admitted: None,
                expires_ms,
            },
        );
        self.dirty.leases.insert(ask.lease_id.clone());
        Leased::Granted(grant, budgets)
    }

    /// The isolate admits no more under the lease: finish it once every record has arrived.
    pub(super) fn close_lease(&mut self, close: &LeaseClose, now_ms: u64) {
        if let Some(entry) = self.leases.get_mut(&close.lease_id) {
            entry.admitted = Some(close.admitted);
            self.dirty.leases.insert(close.lease_id.clone());
            self.finish_lease_if_complete(&close.lease_id, now_ms);
        }
    }

    /// A request served under `lease_id` reported: draws its charge from the lease. Returns what
    /// was charged (`None`: nothing reserved) and whether the lease was still open.
    pub(super) fn draw_lease(
        &mut self,
        lease_id: &str,
        actual_micros: u64,
        actual_tokens: u64,
        now_ms: u64,
    ) -> (Option<(u64, Vec<BudgetStatus>)>, bool) {
        let Some(entry) = self.leases.get_mut(lease_id) else {
            return (None, false);
        };
        entry.reported += 1;
        entry.reported_tokens = entry.reported_tokens.saturating_add(actual_tokens);
        self.dirty.leases.insert(lease_id.to_string());
        let drawn = self.budgets.draw(lease_id, actual_micros, now_ms);
        if let Some((charged, _)) = &drawn {
            entry.drawn_micros = entry.drawn_micros.saturating_add(*charged);
            self.dirty.totals = true;
        }
        self.finish_lease_if_complete(lease_id, now_ms);
        (drawn, true)
    }

    fn finish_lease_if_complete(&mut self, lease_id: &str, now_ms: u64) {
        let complete = self
            .leases
            .get(lease_id)
            .is_some_and(|e| e.admitted.is_some_and(|n| e.reported >= n));
        if !complete {
            return;
        }
        let Some(entry) = self.leases.remove(lease_id) else {
            return;
        };
        self.dirty.leases.insert(lease_id.to_string());
        if self
            .budgets
            .finish(lease_id, entry.reported, entry.reported_tokens, now_ms)
        {
            self.dirty.totals = true;
        }
        self.push_record(lease_record(entry, Outcome::Ok, now_ms, None), Row::Group);
    }

    /// Gives up on leases whose time is up: the reservation's expiry (already applied) charged
    /// what they still held; their records say what is missing.
    pub(super) fn expire_leases(&mut self, now_ms: u64, charged: &[crate::budget::Expired]) {
        let due: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(entry) = self.leases.remove(&id) else {
                continue;
            };
            self.dirty.leases.insert(id.clone());
            let left = charged
                .iter()
                .find(|e| e.request_id == id)
                .map(|e| e.charged_micros);
            let record = lease_record(entry, Outcome::Partial, now_ms, left);
            if let Some(micros) = left.filter(|m| *m > 0) {
                let bucket = self.rollups.add_unreturned(&record, micros);
                self.dirty.rollups.insert(bucket);
            }
            self.push_record(record, Row::Group);
        }
    }

    pub fn open_leases(&self) -> usize {
        self.leases.len()
    }
}

/// A lease's own record as it ends: `ok` when every admitted request reported, else `partial`
/// (`lease_unreconciled`) with what it still held charged as `settled_usd_micros`.
fn lease_record(
    entry: LeaseEntry,
    outcome: Outcome,
    now_ms: u64,
    charged_left: Option<u64>,
) -> AuditEvent {
    let mut record = entry.record;
    let r = &mut record.record;
    r.outcome = outcome;
    r.latency_ms = now_ms.saturating_sub(r.timestamp_ms);
    if outcome == Outcome::Partial {
        r.error_code = Some("lease_unreconciled".into());
    }
    if record.detail.reserved_usd_micros.is_some() {
        record.detail.settled_usd_micros =
            Some(entry.drawn_micros.saturating_add(charged_left.unwrap_or(0)));
    }
    record.detail.lease = Some(LeaseNote {
        id: r.request_id.clone(),
        granted: Some(entry.granted),
        admitted: entry.admitted,
        reported: Some(entry.reported),
    });
    record
}
