//! The gateway's view of the region-wide circuit board: breaker states (cached per isolate for a
//! second, so a healthy region costs one store call per target per second, not one per request),
//! outcome reports, and retry-budget permits.

use std::collections::HashMap;

use super::{Caller, Gateway};
use crate::host::Host;
use crate::routing::circuit::{CircuitOp, CircuitReply, CircuitState};
use crate::routing::circuit_key;

/// How long an isolate trusts a breaker state it was told.
pub(super) const CIRCUIT_CACHE_MS: u64 = 1_000;

impl Gateway {
    /// The states of `targets` (model keys). A probe granted by the store is this request's alone
    /// and is never cached. If the store is unreachable, circuits count as closed: the breaker
    /// protects upstreams, it must not take the gateway down with it.
    pub(super) async fn circuit_states<H: Host>(
        &self,
        host: &H,
        caller: &Caller,
        targets: &[&str],
    ) -> HashMap<String, CircuitState> {
        let now = host.now();
        let tenant = &caller.tenant.tenant_id;
        let mut states = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.circuits.borrow();
            for t in targets {
                let key = circuit_key(t);
                match cache.get(&format!("{tenant}/{key}"), now) {
                    Some(s) => {
                        states.insert(t.to_string(), s);
                    }
                    None => missing.push(key),
                }
            }
        }
        if missing.is_empty() {
            return states;
        }
        let op = CircuitOp::Check {
            targets: missing.clone(),
            now_ms: now.millis(),
            breaker: caller.tenant.routing.breaker,
        };
        let reply = host.circuits(tenant, &op).await;
        let mut cache = self.circuits.borrow_mut();
        match reply {
            Ok(CircuitReply::States(list)) if list.len() == missing.len() => {
                for (key, state) in missing.into_iter().zip(list) {
                    if state != CircuitState::Probe {
                        cache.put(format!("{tenant}/{key}"), state, now);
                    }
                    states.insert(key, state);
                }
            }
            _ => {
                for key in missing {
                    states.insert(key, CircuitState::Closed { failures: 0 });
                }
            }
        }
        states
    }

    /// Reports an attempt's outcome. Successes are reported only where they change something (a
    /// circuit with failures, or a probe), so a healthy target costs no store call.
    pub(super) async fn report_circuit<H: Host>(
        &self,
        host: &H,
        caller: &Caller,
        target: &str,
        ok: bool,
        known: Option<CircuitState>,
    ) -> Option<CircuitState> {
        if ok && matches!(known, Some(CircuitState::Closed { failures: 0 })) {
            return known;
        }
        let now = host.now();
        let key = circuit_key(target);
        let op = CircuitOp::Report {
            target: key.clone(),
            ok,
            now_ms: now.millis(),
            breaker: caller.tenant.routing.breaker,
        };
        let tenant = &caller.tenant.tenant_id;
        match host.circuits(tenant, &op).await {
            Ok(CircuitReply::State(state)) => {
                self.circuits
                    .borrow_mut()
                    .put(format!("{tenant}/{key}"), state, now);
                Some(state)
            }
            _ => None,
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
