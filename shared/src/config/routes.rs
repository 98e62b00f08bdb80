//! Route config: model aliases resolving to ordered or weighted targets, conditional rules on
//! request metadata, retry and fallback policy, workload classes, the retry budget and the
//! circuit breaker. Validated into types with every error's path.
//!
//! ```json
//! "routes": {
//!   "smart": {
//!     "strategy": "fallback",
//!     "targets": ["gpt-4o-mini", {"model": "claude-haiku-4-5", "weight": 2}],
//!     "rules": [{"when": {"tags": ["bu:finance"], "workloads": ["extraction"]},
//!                "strategy": "weighted", "targets": ["mistral-small-latest"]}],
//!     "retry": {"max_attempts": 3, "base_backoff_ms": 100, "max_backoff_ms": 2000},
//!     "fallback_on": {"statuses": [429, 500, 502, 503, 504], "timeouts": true}
//!   }
//! },
//! "routing": {"retry_budget_percent": 20, "breaker": {"failure_threshold": 5, "cooldown_ms": 30000}},
//! "workloads": {"extraction": {"timeout_ms": 20000, "latency_target_ms": 3000}}
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::validate::{field_path, integer, key_path, object, string, ConfigErrors};

pub const ROUTE_FIELDS: &[&str] = &["strategy", "targets", "rules", "retry", "fallback_on"];
pub const RULE_FIELDS: &[&str] = &["when", "strategy", "targets"];
pub const WHEN_FIELDS: &[&str] = &["tags", "workloads"];
pub const RETRY_FIELDS: &[&str] = &[
    "max_attempts",
    "base_backoff_ms",
    "max_backoff_ms",
    "max_retry_after_ms",
];
pub const FALLBACK_FIELDS: &[&str] = &["statuses", "timeouts"];
pub const ROUTING_FIELDS: &[&str] = &["retry_budget_percent", "breaker"];
pub const BREAKER_FIELDS: &[&str] = &["failure_threshold", "cooldown_ms"];
pub const WORKLOAD_FIELDS: &[&str] = &["timeout_ms", "latency_target_ms"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Targets in the order given; the next one on a fallback condition.
    Fallback,
    /// The first target drawn by weight, the others after it in weighted-random order.
    Weighted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedTarget {
    /// A key of the tenant's `models`.
    pub model: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSet {
    pub strategy: Strategy,
    pub targets: Vec<WeightedTarget>,
}

/// All listed conditions must hold; a list matches when any of its values does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Condition {
    pub tags: Vec<String>,
    pub workloads: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub when: Condition,
    pub targets: TargetSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, across fallbacks and retries (1 = no second attempt).
    pub max_attempts: u32,
    pub base_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// A `Retry-After` longer than this ends the request instead of waiting.
    pub max_retry_after_ms: u64,
}

impl RetryPolicy {
    /// A plain model (no route): one attempt.
    pub const SINGLE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base_backoff_ms: 100,
        max_backoff_ms: 2_000,
        max_retry_after_ms: 10_000,
    };
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::SINGLE
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackOn {
    pub statuses: Vec<u16>,
    pub timeouts: bool,
}

impl Default for FallbackOn {
    fn default() -> Self {
        FallbackOn {
            statuses: vec![429, 500, 502, 503, 504, 529],
            timeouts: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    pub id: String,
    pub default: TargetSet,
    pub rules: Vec<Rule>,
    pub retry: RetryPolicy,
    pub fallback_on: FallbackOn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BreakerSettings {
    /// Consecutive failures that open a target's circuit.
    pub failure_threshold: u32,
    /// How long an open circuit refuses before one probe is let through.
    pub cooldown_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingSettings {
    /// Extra attempts (retries and fallbacks) allowed as a share of requests.
    pub retry_budget_percent: u32,
    pub breaker: BreakerSettings,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            retry_budget_percent: 20,
            breaker: BreakerSettings {
                failure_threshold: 5,
                cooldown_ms: 30_000,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Workload {
    /// Replaces the target's timeout for requests of this class.
    pub timeout_ms: Option<u64>,
    /// Reported in route explanations and audit; a target slower than this is not failed over.
    pub latency_target_ms: Option<u64>,
}

/// Validates `routes`; `models` are the tenant's target names, which routes must reference.
pub fn routes(
    value: &Value,
    models: &[&str],
    errs: &mut ConfigErrors,
) -> Option<BTreeMap<String, RouteConfig>> {
    let Some(map) = value.as_object() else {
        errs.push("routes", "must be an object mapping aliases to routes");
        return None;
    };
    let before = errs.0.len();
    let mut out = BTreeMap::new();
    for (alias, v) in map {
        let path = key_path("routes", alias);
        if alias.is_empty() || alias.len() > 128 || !alias.chars().all(|c| c.is_ascii_graphic()) {
            errs.push(
                &path,
                "aliases must be 1-128 printable characters without spaces",
            );
        }
        if models.contains(&alias.as_str()) {
            errs.push(
                &path,
                "an alias must not share its name with a model in `models`; rename one",
            );
        }
        if let Some(r) = route(v, &path, alias, models, errs) {
            out.insert(alias.clone(), r);
        }
    }
    (errs.0.len() == before).then_some(out)
}

fn route(
    value: &Value,
    path: &str,
    alias: &str,
    models: &[&str],
    errs: &mut ConfigErrors,
) -> Option<RouteConfig> {
    let map = object(value, path, ROUTE_FIELDS, errs)?;
    let default = target_set(map, path, models, errs);
    let rules = match map.get("rules") {
        None => Some(Vec::new()),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                let p = format!("{}[{i}]", field_path(path, "rules"));
                match rule(item, &p, models, errs) {
                    Some(r) => out.push(r),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        Some(_) => {
            errs.push(field_path(path, "rules"), "must be an array of rules");
            None
        }
    };
    let retry = match map.get("retry") {
        None => Some(RetryPolicy::DEFAULT),
        Some(v) => retry(v, &field_path(path, "retry"), errs),
    };
    let fallback_on = match map.get("fallback_on") {
        None => Some(FallbackOn::default()),
        Some(v) => fallback_on(v, &field_path(path, "fallback_on"), errs),
    };
    Some(RouteConfig {
        id: alias.to_string(),
        default: default?,
        rules: rules?,
        retry: retry?,
        fallback_on: fallback_on?,
    })
}

fn rule(value: &Value, path: &str, models: &[&str], errs: &mut ConfigErrors) -> Option<Rule> {
    let map = object(value, path, RULE_FIELDS, errs)?;
    let when = match map.get("when") {
        None => {
            errs.push(field_path(path, "when"), "is required");
            None
        }
        Some(v) => condition(v, &field_path(path, "when"), errs),
    };
    let targets = target_set(map, path, models, errs);
    Some(Rule {
        when: when?,
        targets: targets?,
    })
}

fn condition(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<Condition> {
    let map = object(value, path, WHEN_FIELDS, errs)?;
    let tags = string_list(map, path, "tags", errs);
    let workloads = string_list(map, path, "workloads", errs);
    let (tags, workloads) = (tags?, workloads?);
    if tags.is_empty() && workloads.is_empty() {
        errs.push(path, "must name at least one of `tags`, `workloads`");
        return None;
    }
    Some(Condition { tags, workloads })
}

fn string_list(
    map: &Map<String, Value>,
    path: &str,
    name: &str,
    errs: &mut ConfigErrors,
) -> Option<Vec<String>> {
    let p = field_path(path, name);
    match map.get(name) {
        None => Some(Vec::new()),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) if !s.is_empty() => out.push(s.to_string()),
                    _ => errs.push(format!("{p}[{i}]"), "must be a non-empty string"),
                }
            }
            (out.len() == items.len()).then_some(out)
        }
        Some(_) => {
            errs.push(p, "must be an array of strings");
            None
        }
    }
}

fn target_set(
    map: &Map<String, Value>,
    path: &str,
    models: &[&str],
    errs: &mut ConfigErrors,
) -> Option<TargetSet> {
    let strategy = match map.get("strategy") {
        None => Some(Strategy::Fallback),
        Some(v) => {
            let p = field_path(path, "strategy");
            match string(v, &p, errs)? {
                "fallback" => Some(Strategy::Fallback),
                "weighted" => Some(Strategy::Weighted),
                other => {
                    errs.push(
                        p,
                        format!("unknown strategy {other:?}; expected fallback or weighted"),
                    );
                    None
                }
            }
        }
    };
    let p = field_path(path, "targets");
    let targets = match map.get("targets") {
        None => {
            errs.push(&p, "is required");
            None
        }
        Some(Value::Array(items)) if items.is_empty() => {
            errs.push(&p, "must list at least one target");
            None
        }
        Some(Value::Array(items)) => {
            let mut out: Vec<WeightedTarget> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let ip = format!("{p}[{i}]");
                let t = match item {
                    Value::String(s) => Some(WeightedTarget {
                        model: s.clone(),
                        weight: 1,
                    }),
                    Value::Object(_) => weighted_target(item, &ip, errs),
                    _ => {
                        errs.push(&ip, "must be a model name or {\"model\", \"weight\"}");
                        None
                    }
                };
                let Some(t) = t else { continue };
                if !models.contains(&t.model.as_str()) {
                    errs.push(&ip, format!("{:?} is not a key of `models`", t.model));
                } else if out.iter().any(|o| o.model == t.model) {
                    errs.push(&ip, format!("{:?} is listed twice", t.model));
                } else {
                    out.push(t);
                }
            }
            (out.len() == items.len()).then_some(out)
        }
        Some(_) => {
            errs.push(&p, "must be an array of targets");
            None
        }
    };
    Some(TargetSet {
        strategy: strategy?,
        targets: targets?,
    })
}

fn weighted_target(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<WeightedTarget> {
    let map = object(value, path, &["model", "weight"], errs)?;
    let model = match map.get("model") {
        Some(v) => string(v, &field_path(path, "model"), errs).map(str::to_string),
        None => {
            errs.push(field_path(path, "model"), "is required");
            None
        }
    };
    let weight = match map.get("weight") {
        None => Some(1),
        Some(v) => integer(v, &field_path(path, "weight"), 1, 1000, errs).map(|n| n as u32),
    };
    Some(WeightedTarget {
        model: model?,
        weight: weight?,
    })
}

fn retry(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<RetryPolicy> {
    let map = object(value, path, RETRY_FIELDS, errs)?;
    let d = RetryPolicy::DEFAULT;
    let get = |name: &str, min: u64, max: u64, default: u64, errs: &mut ConfigErrors| match map
        .get(name)
    {
        None => Some(default),
        Some(v) => integer(v, &field_path(path, name), min, max, errs),
    };
    let max_attempts = get("max_attempts", 1, 10, d.max_attempts as u64, errs);
    let base = get("base_backoff_ms", 1, 60_000, d.base_backoff_ms, errs);
    let max = get("max_backoff_ms", 1, 300_000, d.max_backoff_ms, errs);
    let retry_after = get("max_retry_after_ms", 0, 300_000, d.max_retry_after_ms, errs);
    let (base, max) = (base?, max?);
    if max < base {
        errs.push(
            field_path(path, "max_backoff_ms"),
            "must be at least base_backoff_ms",
        );
        return None;
    }
    Some(RetryPolicy {
        max_attempts: max_attempts? as u32,
        base_backoff_ms: base,
        max_backoff_ms: max,
        max_retry_after_ms: retry_after?,
    })
}

fn fallback_on(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<FallbackOn> {
    let map = object(value, path, FALLBACK_FIELDS, errs)?;
    let d = FallbackOn::default();
    let statuses = match map.get("statuses") {
        None => Some(d.statuses),
        Some(Value::Array(items)) => {
            let p = field_path(path, "statuses");
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(n) = integer(item, &format!("{p}[{i}]"), 400, 599, errs) {
                    out.push(n as u16);
                }
            }
            (out.len() == items.len()).then_some(out)
        }
        Some(_) => {
            errs.push(
                field_path(path, "statuses"),
                "must be an array of HTTP statuses (400-599)",
            );
            None
        }
    };
    let timeouts = match map.get("timeouts") {
        None => Some(d.timeouts),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errs.push(field_path(path, "timeouts"), "must be a boolean");
            None
        }
    };
    Some(FallbackOn {
        statuses: statuses?,
        timeouts: timeouts?,
    })
}

pub fn routing_settings(value: &Value, errs: &mut ConfigErrors) -> Option<RoutingSettings> {
    let map = object(value, "routing", ROUTING_FIELDS, errs)?;
    let d = RoutingSettings::default();
    let percent = match map.get("retry_budget_percent") {
        None => Some(d.retry_budget_percent),
        Some(v) => integer(v, "routing.retry_budget_percent", 0, 100, errs).map(|n| n as u32),
    };
    let breaker = match map.get("breaker") {
        None => Some(d.breaker),
        Some(v) => {
            let b = object(v, "routing.breaker", BREAKER_FIELDS, errs)?;
            let threshold = match b.get("failure_threshold") {
                None => Some(d.breaker.failure_threshold),
                Some(v) => {
                    integer(v, "routing.breaker.failure_threshold", 1, 1000, errs).map(|n| n as u32)
                }
            };
            let cooldown = match b.get("cooldown_ms") {
                None => Some(d.breaker.cooldown_ms),
                Some(v) => integer(v, "routing.breaker.cooldown_ms", 100, 3_600_000, errs),
            };
            Some(BreakerSettings {
                failure_threshold: threshold?,
                cooldown_ms: cooldown?,
            })
        }
    };
    Some(RoutingSettings {
        retry_budget_percent: percent?,
        breaker: breaker?,
    })
}

pub fn workloads(value: &Value, errs: &mut ConfigErrors) -> Option<BTreeMap<String, Workload>> {
    let Some(map) = value.as_object() else {
        errs.push(
            "workloads",
            "must be an object mapping class names to settings",
        );
        return None;
    };
    let before = errs.0.len();
    let mut out = BTreeMap::new();
    for (name, v) in map {
        let path = key_path("workloads", name);
        if !crate::ids::is_valid_id(name) {
            errs.push(&path, "class names must be 1-64 of [a-z0-9_-]");
        }
        let Some(w) = object(v, &path, WORKLOAD_FIELDS, errs) else {
            continue;
        };
        let timeout_ms = w
            .get("timeout_ms")
            .and_then(|v| integer(v, &field_path(&path, "timeout_ms"), 100, 600_000, errs));
        let latency_target_ms = w
            .get("latency_target_ms")
            .and_then(|v| integer(v, &field_path(&path, "latency_target_ms"), 1, 600_000, errs));
        out.insert(
            name.clone(),
            Workload {
                timeout_ms,
                latency_target_ms,
            },
        );
    }
    (errs.0.len() == before).then_some(out)
}
