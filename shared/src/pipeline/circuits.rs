//! The gateway's view of the region-wide circuit board, kept off the request path: an isolate
//! plans with the states it last learned (refreshed after the response once they are a second
//! old, forgotten after thirty), reports outcomes after the response, and updates its own view
//! at once so a target that fails mid-request is not tried again by it. The one exception is a
//! probe: when an open circuit's cooldown is over, the request that wants the target asks the
//! board for the probe before sending (one region-wide caller gets it).

use std::collections::HashMap;

use super::after::learned;
use super::{AfterResponse, Caller, Gateway};
use crate::host::Host;
use crate::ids::TenantId;
use crate::routing::circuit::{CircuitOp, CircuitReply, CircuitState};
use crate::routing::circuit_key;
use crate::time::Timestamp;

/// After this long, a learned state is refreshed (after the response of the request using it).
pub(super) const CIRCUIT_FRESH_MS: u64 = 1_000;
/// After this long without a refresh, a learned state is forgotten (a quiet isolate replans
/// from "closed" and learns again).
pub(super) const CIRCUIT_CACHE_MS: u64 = 30_000;

/// A state and when this isolate learned it.
pub(super) type Learned = (CircuitState, Timestamp);

fn cache_key(tenant: &TenantId, target: &str) -> String {
    [tenant.as_str(), "/", target].concat()
}

impl Gateway {
    /// The states of `targets` (model keys) to plan with. No store call, except to take the
    /// probe of a circuit whose cooldown is over. If the store is unreachable, circuits count as
    /// closed: the breaker protects upstreams, it must not take the gateway down with it.
    pub(super) async fn circuit_states<H: Host>(
        &self,
        host: &H,
        caller: &Caller,
        targets: &[&str],
        after: &mut AfterResponse,
    ) -> HashMap<String, CircuitState> {
        let now = host.now();
        let tenant = &caller.tenant.tenant_id;
        let mut states = HashMap::new();
        let mut stale = Vec::new();
        let mut probes = Vec::new();
        {
            let cache = self.circuits.borrow();
            for t in targets {
                let key = circuit_key(t);
                match cache.get(&cache_key(tenant, &key), now) {
                    Some((CircuitState::Open { until_ms }, _)) if now.millis() >= until_ms => {
                        probes.push(key);
                    }
                    Some((state, at)) => {
                        if now.ms_since(at) >= CIRCUIT_FRESH_MS {
                            stale.push(key.clone());
                        }
                        states.insert(key, state);
                    }
                    None => {
                        stale.push(key.clone());
                        states.insert(key, CircuitState::Closed { failures: 0 });
                    }
                }
            }
        }
        if !stale.is_empty() {
            after.circuits(
                tenant.clone(),
                CircuitOp::Peek {
                    targets: stale,
                    now_ms: now.millis(),
                },
            );
        }
        if probes.is_empty() {
            return states;
        }
        let op = CircuitOp::Check {
            targets: probes.clone(),
            now_ms: now.millis(),
            breaker: caller.tenant.routing.breaker,
        };
        match host.circuits(tenant, &op).await {
            Ok(reply @ CircuitReply::States(_)) => {
                for (key, state) in learned(&op, reply) {
                    self.remember_circuit(tenant, &key, state, now);
                    states.insert(key, state);
                }
            }
            _ => {
                for key in probes {
                    states.insert(key, CircuitState::Closed { failures: 0 });
                }
            }
        }
        states
    }

    /// Reports an attempt's outcome (after the response) and returns the state this isolate now
    /// assumes. Successes are reported only where they change something (a circuit with failures,
    /// or a probe), so a healthy target costs nothing.
    pub(super) fn report_circuit<H: Host>(
        &self,
        host: &H,
        caller: &Caller,
        target: &str,
        ok: bool,
        known: Option<CircuitState>,
        after: &mut AfterResponse,
    ) -> Option<CircuitState> {
        if ok && matches!(known, Some(CircuitState::Closed { failures: 0 })) {
            return known;
        }
        let now = host.now();
        let key = circuit_key(target);
        let breaker = caller.tenant.routing.breaker;
        let tenant = &caller.tenant.tenant_id;
        after.circuits(
            tenant.clone(),
            CircuitOp::Report {
                target: key.clone(),
                ok,
                now_ms: now.millis(),
                breaker,
            },
        );
        // What the board will do with the report, as far as this isolate can tell.
        let assumed = if ok {
            CircuitState::Closed { failures: 0 }
        } else {
            let failures = match known {
                Some(CircuitState::Closed { failures }) => failures.saturating_add(1),
                _ => breaker.failure_threshold,
            };
            if failures >= breaker.failure_threshold {
                CircuitState::Open {
                    until_ms: now.millis() + breaker.cooldown_ms,
                }
            } else {
                CircuitState::Closed { failures }
            }
        };
        self.remember_circuit(tenant, &key, assumed, now);
        Some(assumed)
    }

    /// Caches what the board said (a probe is this request's alone and never cached).
    pub(super) fn remember_circuit(
        &self,
        tenant: &TenantId,
        key: &str,
        state: CircuitState,
        now: Timestamp,
    ) {
        if state != CircuitState::Probe {
            self.circuits
                .borrow_mut()
                .put(cache_key(tenant, key), (state, now), now);
        }
    }

    /// What a deferred refresh or report answered.
    pub(crate) fn learn_circuits<H: Host>(
        &self,
        host: &H,
        tenant: &TenantId,
        op: &CircuitOp,
        reply: CircuitReply,
    ) {
        let now = host.now();
        for (key, state) in learned(op, reply) {
            self.remember_circuit(tenant, &key, state, now);
        }
    }

    /// Counts one request toward the tenant's retry budget (sent with the next permit ask).
    pub(super) fn count_request(&self, caller: &Caller) {
        *self
            .retry_counts
            .borrow_mut()
            .entry(caller.tenant.tenant_id.to_string())
            .or_insert(0) += 1;
    }

    /// May this request make another attempt? Refused when the store is unreachable: a retry is
    /// optional, and unaccounted retries are how outages grow.
    pub(super) async fn retry_permit<H: Host>(&self, host: &H, caller: &Caller) -> bool {
        let tenant = caller.tenant.tenant_id.to_string();
        let requests = self.retry_counts.borrow_mut().remove(&tenant).unwrap_or(0);
        let op = CircuitOp::RetryPermit {
            now_ms: host.now().millis(),
            requests,
            percent: caller.tenant.routing.retry_budget_percent,
        };
        matches!(
            host.circuits(&caller.tenant.tenant_id, &op).await,
            Ok(CircuitReply::Permit(true))
        )
    }
}
