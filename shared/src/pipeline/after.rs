//! Work that runs after the response has gone out, off the client's critical path: the ledger
//! commit of a served request, circuit reports and circuit-state refreshes, response-cache writes. The adapter runs it
//! with the platform's means (`ctx.waitUntil` on Workers, after the response body on Spin).
//! Nothing here may be lost without a safety net: a commit that never runs is settled by the
//! ledger when the request expires; a report or a refresh that never runs only delays what
//! isolates learn about a target's health; a cache write that never runs is a later miss.

use std::cell::RefCell;
use std::rc::Rc;

use super::Gateway;
use crate::alerts::AlertEvent;
use crate::config::{AlertPolicy, TenantConfig};
use crate::host::{Host, HostError};
use crate::ids::TenantId;
use crate::ledger::{LedgerId, LedgerOp};
use crate::response_cache::CacheKey;
use crate::routing::circuit::{CircuitOp, CircuitReply};
use crate::telemetry::ExecutionRecord;

/// One piece of deferred work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    /// A commit (or another operation nobody waits for); the alerts its call hands over go to
    /// the tenant's webhooks.
    Ledger(LedgerId, Box<LedgerOp>, Rc<TenantConfig>),
    /// A circuit report or a refresh of the states this isolate caches.
    Circuits(TenantId, CircuitOp),
    /// A response-cache entry to store, until `expires_ms`.
    CachePut {
        key: CacheKey,
        entry: Vec<u8>,
        expires_ms: u64,
    },
    /// Alerts the ledger handed over: delivered to the tenant's webhooks, the results
    /// reported back to the ledger.
    Alerts {
        ledger: LedgerId,
        policy: AlertPolicy,
        events: Vec<AlertEvent>,
    },
    /// A finished request's execution record, for the telemetry export.
    Observe(Box<ExecutionRecord>),
    /// Send the refusals this isolate counted before any tenant was known (`refusals.rs`) to the
    /// region's trail, at `at_ms`, the end of their window.
    Refusals { at_ms: u64 },
    /// Close a lease once its window is over (unless a later grant closed it): run last.
    CloseLease {
        leases: LeaseTable,
        slot: String,
        lease_id: String,
        at_ms: u64,
    },
}

/// This isolate's leases, shared with the work that closes them.
#[derive(Clone)]
pub struct LeaseTable(pub(super) Rc<RefCell<super::lease::IsolateLeases>>);

impl std::fmt::Debug for LeaseTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseTable")
    }
}

impl PartialEq for LeaseTable {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LeaseTable {}

/// What a request leaves to do after its response.
#[derive(Debug, Default)]
pub struct AfterResponse {
    work: Vec<Deferred>,
}

impl AfterResponse {
    pub fn ledger(&mut self, ledger: LedgerId, op: LedgerOp, tenant: Rc<TenantConfig>) {
        self.work
            .push(Deferred::Ledger(ledger, Box::new(op), tenant));
    }

    pub fn circuits(&mut self, tenant: TenantId, op: CircuitOp) {
        // One refresh per tenant is enough: a later request's refresh supersedes it.
        if matches!(op, CircuitOp::Peek { .. })
            && self
                .work
                .iter()
                .any(|w| matches!(w, Deferred::Circuits(t, CircuitOp::Peek { .. }) if *t == tenant))
        {
            return;
        }
        self.work.push(Deferred::Circuits(tenant, op));
    }

    pub fn cache_put(&mut self, key: CacheKey, entry: Vec<u8>, expires_ms: u64) {
        self.work.push(Deferred::CachePut {
            key,
            entry,
            expires_ms,
        });
    }

    pub fn alerts(&mut self, ledger: LedgerId, policy: AlertPolicy, events: Vec<AlertEvent>) {
        self.work.push(Deferred::Alerts {
            ledger,
            policy,
            events,
        });
    }

    pub(super) fn close_lease(
        &mut self,
        leases: Rc<RefCell<super::lease::IsolateLeases>>,
        slot: String,
        lease_id: String,
        at_ms: u64,
    ) {
        self.work.push(Deferred::CloseLease {
            leases: LeaseTable(leases),
            slot,
            lease_id,
            at_ms,
        });
    }

    pub(super) fn refusals(&mut self, at_ms: u64) {
        self.work.push(Deferred::Refusals { at_ms });
    }

    pub fn observe(&mut self, record: ExecutionRecord) {
        self.work.push(Deferred::Observe(Box::new(record)));
    }

    pub fn is_empty(&self) -> bool {
        self.work.is_empty()
    }

    pub fn work(&self) -> &[Deferred] {
        &self.work
    }

    /// Moves `other`'s work after this one's.
    pub fn append(&mut self, other: AfterResponse) {
        self.work.extend(other.work);
    }

    /// Runs everything, in order (execution records last: the export may wait for a batch);
    /// returns what failed, for the adapter to log.
    pub async fn run<H: Host>(mut self, gw: &Gateway, host: &H) -> Vec<HostError> {
        let mut failures = Vec::new();
        // Alerts the commits' calls handed over, delivered before the other alerts and the
        // telemetry export (after the ledger, circuit and cache work and a lease's close).
        let mut handed_over: Vec<(LedgerId, Rc<TenantConfig>, Vec<AlertEvent>)> = Vec::new();
        // A lease's close waits for its window, so it goes after the ledger, circuit and cache
        // work; webhooks and the telemetry export (which may be slow) wait for it, so nothing
        // pushes the close past the platform's limit on after-response work.
        self.work.sort_by_key(|w| match w {
            Deferred::CloseLease { .. } | Deferred::Refusals { .. } => 1,
            Deferred::Alerts { .. } => 2,
            Deferred::Observe(_) => 3,
            _ => 0,
        });
        for work in self.work {
            if matches!(work, Deferred::Alerts { .. } | Deferred::Observe(_)) {
                deliver_handed_over(gw, host, &mut handed_over, &mut failures).await;
            }
            match work {
                Deferred::Ledger(ledger, op, tenant) => {
                    match host.ledger_after_response(&ledger, *op).await {
                        Ok(alerts) if !alerts.is_empty() => {
                            handed_over.push((ledger, tenant, alerts));
                        }
                        Ok(_) => {}
                        Err(e) => failures.push(e),
                    }
                }
                Deferred::Circuits(tenant, op) => match host.circuits(&tenant, &op).await {
                    Ok(reply) => {
                        if let CircuitReply::Reported {
                            change: Some(change),
                            ..
                        } = &reply
                        {
                            if let Err(e) = gw.raise_circuit_alert(host, &tenant, &op, change).await
                            {
                                failures.push(e);
                            }
                        }
                        gw.learn_circuits(host, &tenant, &op, reply)
                    }
                    Err(e) => failures.push(e),
                },
                Deferred::Alerts {
                    ledger,
                    policy,
                    events,
                } => failures.extend(gw.deliver_alerts(host, &ledger, &policy, events).await),
                Deferred::Observe(record) => {
                    if let Some(wait_ms) = gw.observe(*record) {
                        if let Err(e) = gw.flush_telemetry(host, wait_ms).await {
                            failures.push(e);
                        }
                    }
                }
                Deferred::CloseLease {
                    leases,
                    slot,
                    lease_id,
                    at_ms,
                } => {
                    let now = host.now().millis();
                    if at_ms > now {
                        host.sleep(at_ms - now).await;
                    }
                    let closing = leases.0.borrow_mut().close_after_window(&slot, &lease_id);
                    if let Some((ledger, close)) = closing {
                        let op = LedgerOp::CloseLease {
                            now_ms: host.now().millis(),
                            close,
                        };
                        // A close's reply hands nothing over (only a commit's does).
                        if let Err(e) = host.ledger_after_response(&ledger, op).await {
                            failures.push(e);
                        }
                    }
                }
                Deferred::Refusals { at_ms } => {
                    failures.extend(gw.send_refusals(host, at_ms).await)
                }
                Deferred::CachePut {
                    key,
                    entry,
                    expires_ms,
                } => {
                    if let Err(e) = host.cache_put(&key, &entry, expires_ms).await {
                        failures.push(e);
                    }
                }
            }
        }
        deliver_handed_over(gw, host, &mut handed_over, &mut failures).await;
        failures
    }
}

async fn deliver_handed_over<H: Host>(
    gw: &Gateway,
    host: &H,
    handed_over: &mut Vec<(LedgerId, Rc<TenantConfig>, Vec<AlertEvent>)>,
    failures: &mut Vec<HostError>,
) {
    for (ledger, tenant, events) in handed_over.drain(..) {
        failures.extend(
            gw.deliver_alerts(host, &ledger, &tenant.alerts, events)
                .await,
        );
    }
}

/// The states a refresh or a report taught this isolate.
pub(super) fn learned(
    op: &CircuitOp,
    reply: CircuitReply,
) -> Vec<(String, crate::routing::circuit::CircuitState)> {
    match (op, reply) {
        (CircuitOp::Peek { targets, .. }, CircuitReply::States(states))
        | (CircuitOp::Check { targets, .. }, CircuitReply::States(states))
            if targets.len() == states.len() =>
        {
            targets.iter().cloned().zip(states).collect()
        }
        (CircuitOp::Report { target, .. }, CircuitReply::State(state))
        | (CircuitOp::Report { target, .. }, CircuitReply::Reported { state, .. }) => {
            vec![(target.clone(), state)]
        }
        _ => Vec::new(),
    }
}
