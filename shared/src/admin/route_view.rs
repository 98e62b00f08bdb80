//! `GET /admin/v1/tenants/<t>/routes`: the tenant's models and routes (targets, weights, rules,
//! retry and fallback policy) from its config, with each target's live circuit state peeked
//! from the tenant's circuit board (no probe is granted, nothing changes).

use serde_json::{json, Value};

use crate::config::routes::{RouteConfig, Strategy, TargetSet};
use crate::config::TenantConfig;
use crate::host::Host;
use crate::routing::circuit::{CircuitOp, CircuitReply, CircuitState};
use crate::routing::circuit_key;

fn strategy(s: Strategy) -> &'static str {
    match s {
        Strategy::Fallback => "fallback",
        Strategy::Weighted => "weighted",
    }
}

fn target_set(set: &TargetSet) -> Value {
    json!({
        "strategy": strategy(set.strategy),
        "targets": set.targets.iter().map(|t| json!({"model": t.model, "weight": t.weight})).collect::<Vec<_>>(),
    })
}

fn route(r: &RouteConfig) -> Value {
    json!({
        "id": r.id,
        "default": target_set(&r.default),
        "rules": r.rules.iter().map(|rule| json!({
            "when": {"tags": rule.when.tags, "workloads": rule.when.workloads},
            "targets": target_set(&rule.targets),
        })).collect::<Vec<_>>(),
        "retry": {
            "max_attempts": r.retry.max_attempts,
            "base_backoff_ms": r.retry.base_backoff_ms,
            "max_backoff_ms": r.retry.max_backoff_ms,
            "max_retry_after_ms": r.retry.max_retry_after_ms,
        },
        "fallback_on": {"statuses": r.fallback_on.statuses, "timeouts": r.fallback_on.timeouts},
    })
}

/// A circuit state for people: `closed` (with its consecutive failures), `open` (until when),
/// or `half_open` (its cooldown is over: the next request probes it).
pub fn circuit_view(state: Option<CircuitState>, now_ms: u64) -> Value {
    match state {
        None => json!({"state": "unknown"}),
        Some(CircuitState::Closed { failures }) => json!({"state": "closed", "failures": failures}),
        Some(CircuitState::Open { until_ms }) if now_ms >= until_ms => {
            json!({"state": "half_open", "since_ms": until_ms})
        }
        Some(CircuitState::Open { until_ms }) => json!({"state": "open", "until_ms": until_ms}),
        Some(CircuitState::Probe) => json!({"state": "half_open"}),
    }
}

/// The body of the routes view. Circuit states are `unknown` if the board cannot be read.
pub async fn routes_view<H: Host>(host: &H, config: &TenantConfig) -> Value {
    let now = host.now().millis();
    let names: Vec<String> = config.models.keys().map(|m| circuit_key(m)).collect();
    let states: Vec<Option<CircuitState>> = match host
        .circuits(
            &config.tenant_id,
            &CircuitOp::Peek {
                targets: names.clone(),
                now_ms: now,
            },
        )
        .await
    {
        Ok(CircuitReply::States(list)) if list.len() == names.len() => {
            list.into_iter().map(Some).collect()
        }
        _ => vec![None; names.len()],
    };
    let models: Vec<Value> = config
        .models
        .iter()
        .zip(states)
        .map(|((id, m), state)| {
            json!({
                "id": id,
                "provider": m.provider.as_str(),
                "upstream_model": m.upstream_model,
                "endpoint_host": m.endpoint.host_str(),
                "region": m.region,
                "timeout_ms": m.timeout_ms,
                "circuit": circuit_view(state, now),
            })
        })
        .collect();
    json!({
        "object": "tenant_routes",
        "tenant_id": config.tenant_id,
        "now_ms": now,
        "models": models,
        "routes": config.routes.values().map(route).collect::<Vec<_>>(),
        "breaker": {
            "failure_threshold": config.routing.breaker.failure_threshold,
            "cooldown_ms": config.routing.breaker.cooldown_ms,
        },
        "retry_budget_percent": config.routing.retry_budget_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_states_read_as_people_say_them() {
        assert_eq!(
            circuit_view(Some(CircuitState::Closed { failures: 2 }), 5)["state"],
            "closed"
        );
        assert_eq!(
            circuit_view(Some(CircuitState::Open { until_ms: 10 }), 5)["state"],
            "open"
        );
        assert_eq!(
            circuit_view(Some(CircuitState::Open { until_ms: 10 }), 10)["state"],
            "half_open"
        );
        assert_eq!(circuit_view(None, 5)["state"], "unknown");
    }
}
