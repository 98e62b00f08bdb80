//! Routing: which targets a request may go to, in which order, and what happens when one fails.
//! Pure: the plan is a function of the tenant's config, the region, the request's metadata, the
//! circuits' states and a random number; the pipeline executes it.
//!
//! Residency is decided here, at plan time: a target whose declared region is not this
//! deployment's, or whose endpoint fails the region's egress check, is never a candidate, so no
//! fallback, retry or error path can reach it. (`EgressApproved` checks again at send time.)

pub mod backoff;
pub mod circuit;

use serde::Serialize;

use crate::config::routes::{FallbackOn, RetryPolicy, Strategy, TargetSet};
use crate::config::{ModelTarget, TenantConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::region::Region;
use circuit::CircuitState;

/// What the router knows about a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestMeta<'a> {
    /// The model name the client sent: a route alias or a model key.
    pub requested_model: &'a str,
    /// The API key's tags (business unit and the like).
    pub tags: &'a [String],
    /// The workload class, from the `x-asc-workload` header.
    pub workload: Option<&'a str>,
}

/// One target looked at, and why it was left out (if it was).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Considered {
    pub model: String,
    pub provider: &'static str,
    pub endpoint_host: String,
    pub weight: u32,
    /// `None`: a candidate.
    pub excluded: Option<String>,
}

/// The decision: candidates in attempt order and everything that led to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The route alias, or `None` for a plain model.
    pub route_id: Option<String>,
    /// Which rule matched (`rules[i]`), `None` for the route's default targets.
    pub rule: Option<usize>,
    pub strategy: &'static str,
    pub workload: Option<String>,
    /// Model keys, in the order they will be tried.
    pub candidates: Vec<String>,
    /// Targets whose circuit granted this request the half-open probe.
    pub probes: Vec<String>,
    pub considered: Vec<Considered>,
    #[serde(skip)]
    pub retry: RetryPolicy,
    #[serde(skip)]
    pub fallback_on: FallbackOn,
    /// The workload's timeout, replacing each target's own.
    pub timeout_ms: Option<u64>,
    pub latency_target_ms: Option<u64>,
}

impl Plan {
    pub fn max_attempts(&self) -> u32 {
        self.retry.max_attempts
    }

    /// The model key of attempt `n` (0-based): through the candidates in order, then around again.
    pub fn target_for_attempt(&self, n: u32) -> Option<&str> {
        let i = (n as usize).checked_rem(self.candidates.len())?;
        self.candidates.get(i).map(String::as_str)
    }
}

/// The circuit key of a tenant's target (circuits are per tenant: a target failing for one
/// tenant's credential says nothing about another's).
pub fn circuit_key(model: &str) -> String {
    model.to_string()
}

/// The targets a request could use before circuits are consulted (for the circuit check).
pub fn targets_of<'t>(tenant: &'t TenantConfig, meta: &RequestMeta) -> Vec<&'t str> {
    match tenant.routes.get(meta.requested_model) {
        Some(route) => {
            let (_, set) = choose_set(route, meta);
            set.targets.iter().map(|t| t.model.as_str()).collect()
        }
        None => tenant
            .models
            .get_key_value(meta.requested_model)
            .map(|(k, _)| vec![k.as_str()])
            .unwrap_or_default(),
    }
}

fn choose_set<'r>(
    route: &'r crate::config::routes::RouteConfig,
    meta: &RequestMeta,
) -> (Option<usize>, &'r TargetSet) {
    for (i, rule) in route.rules.iter().enumerate() {
        let tags_ok =
            rule.when.tags.is_empty() || rule.when.tags.iter().any(|t| meta.tags.contains(t));
        let workload_ok = rule.when.workloads.is_empty()
            || meta
                .workload
                .is_some_and(|w| rule.when.workloads.iter().any(|x| x == w));
        if tags_ok && workload_ok {
            return (Some(i), &rule.targets);
        }
    }
    (None, &route.default)
}

/// Plans a request. `circuit` gives each target's circuit state (by model key); `random` orders
/// weighted targets. Errors: unknown model (404), nothing in region (403), every candidate's
/// circuit open (503).
pub fn plan(
    tenant: &TenantConfig,
    region: &Region,
    meta: &RequestMeta,
    circuit: &dyn Fn(&str) -> CircuitState,
    now_ms: u64,
    random: u64,
) -> Result<Plan, GatewayError> {
    let (route_id, rule, set, retry, fallback_on) = match tenant.routes.get(meta.requested_model) {
        Some(route) => {
            let (rule, set) = choose_set(route, meta);
            (
                Some(route.id.clone()),
                rule,
                set.clone(),
                route.retry,
                route.fallback_on.clone(),
            )
        }
        None => {
            if !tenant.models.contains_key(meta.requested_model) {
                return Err(unknown_model(tenant, meta.requested_model));
            }
            let set = TargetSet {
                strategy: Strategy::Fallback,
                targets: vec![crate::config::routes::WeightedTarget {
                    model: meta.requested_model.to_string(),
                    weight: 1,
                }],
            };
            (None, None, set, RetryPolicy::SINGLE, FallbackOn::default())
        }
    };
    let workload = meta
        .workload
        .and_then(|w| tenant.workloads.get(w).map(|cfg| (w, cfg)));
    let ordered = order(&set, random);
    let mut considered = Vec::new();
    let mut candidates = Vec::new();
    let mut probes = Vec::new();
    let mut open = 0;
    for t in &ordered {
        let Some(target) = tenant.models.get(&t.model) else {
            continue;
        };
        let host = target.endpoint.host_str().unwrap_or("").to_string();
        let excluded = match residency(target, region) {
            Some(why) => Some(why),
            None => match circuit(&circuit_key(&t.model)) {
                CircuitState::Open { until_ms } if now_ms < until_ms => {
                    open += 1;
                    Some(format!("circuit open for another {} ms", until_ms - now_ms))
                }
                CircuitState::Probe => {
                    probes.push(t.model.clone());
                    None
                }
                _ => None,
            },
        };
        if excluded.is_none() {
            candidates.push(t.model.clone());
        }
        considered.push(Considered {
            model: t.model.clone(),
            provider: target.provider.as_str(),
            endpoint_host: host,
            weight: t.weight,
            excluded,
        });
    }
    if candidates.is_empty() {
        let err = if open == 0 {
            GatewayError::new(
                ErrorKind::NoTargetInRegion,
                format!(
                    "No target for {:?} is inside region {}: {}. The platform team must add an in-region target.",
                    meta.requested_model,
                    region.id,
                    considered
                        .iter()
                        .map(|c| format!("{} ({})", c.model, c.excluded.as_deref().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        } else {
            GatewayError::new(
                ErrorKind::AllTargetsUnavailable,
                format!(
                    "Every target for {:?} is failing (circuits open); retry later.",
                    meta.requested_model
                ),
            )
        };
        return Err(err.with_param("model"));
    }
    Ok(Plan {
        route_id,
        rule,
        strategy: match set.strategy {
            Strategy::Fallback => "fallback",
            Strategy::Weighted => "weighted",
        },
        workload: workload.map(|(w, _)| w.to_string()),
        candidates,
        probes,
        considered,
        retry,
        fallback_on,
        timeout_ms: workload.and_then(|(_, c)| c.timeout_ms),
        latency_target_ms: workload.and_then(|(_, c)| c.latency_target_ms),
    })
}

/// The decision as human-readable steps, for `POST /v1/route/explain`. Rendered from the plan
/// on demand: a request's planning writes no text.
pub fn steps(plan: &Plan, meta: &RequestMeta) -> Vec<String> {
    let mut steps = Vec::new();
    match (&plan.route_id, plan.rule) {
        (Some(route), Some(i)) => steps.push(format!(
            "route {route:?}: rule {i} matched (tags {:?}, workload {:?})",
            meta.tags, meta.workload
        )),
        (Some(route), None) => {
            steps.push(format!("route {route:?}: no rule matched; default targets"))
        }
        (None, _) => steps.push(format!(
            "model {:?}: a plain model, one target, no retries",
            meta.requested_model
        )),
    }
    if let Some(name) = &plan.workload {
        steps.push(format!(
            "workload {name:?}: timeout {:?} ms, latency target {:?} ms",
            plan.timeout_ms, plan.latency_target_ms
        ));
    }
    if plan.strategy == "weighted" {
        steps.push(format!(
            "weighted draw: {}",
            plan.considered
                .iter()
                .map(|c| c.model.as_str())
                .collect::<Vec<_>>()
                .join(" > ")
        ));
    }
    let mut candidate = 0;
    for c in &plan.considered {
        match &c.excluded {
            Some(why) => steps.push(format!("{}: excluded ({why})", c.model)),
            None => {
                candidate += 1;
                steps.push(format!("{}: candidate {candidate}", c.model));
            }
        }
    }
    steps
}

/// Why `target` may not be used from `region`, if it may not.
pub fn residency(target: &ModelTarget, region: &Region) -> Option<String> {
    if let Some(declared) = &target.region {
        if declared != &region.id {
            return Some(format!(
                "declared region {declared}, this deployment is {}",
                region.id
            ));
        }
    }
    region
        .check_egress(&target.endpoint)
        .err()
        .map(|e| e.message)
}

/// Fallback keeps the configured order; weighted draws without replacement by weight.
fn order(set: &TargetSet, random: u64) -> Vec<crate::config::routes::WeightedTarget> {
    let mut rest = set.targets.clone();
    if set.strategy == Strategy::Fallback {
        return rest;
    }
    let mut out = Vec::with_capacity(rest.len());
    let mut state = random;
    while !rest.is_empty() {
        let total: u64 = rest.iter().map(|t| t.weight as u64).sum();
        state = splitmix(state);
        let mut pick = state % total.max(1);
        let mut idx = 0;
        for (i, t) in rest.iter().enumerate() {
            if pick < t.weight as u64 {
                idx = i;
                break;
            }
            pick -= t.weight as u64;
        }
        out.push(rest.remove(idx));
    }
    out
}

/// SplitMix64: spreads one random draw into the several a weighted order needs.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unknown_model(tenant: &TenantConfig, model: &str) -> GatewayError {
    let err = if crate::catalog::is_known_model(model) {
        GatewayError::new(
            ErrorKind::ModelNotApproved,
            format!(
                "The model `{model}` is not approved for tenant {}.",
                tenant.tenant_id
            ),
        )
    } else {
        GatewayError::new(
            ErrorKind::ModelNotFound,
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
    };
    err.with_param("model")
}

#[cfg(test)]
mod tests;
