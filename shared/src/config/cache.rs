//! A tenant's response-cache policy (`cache` in the tenant config). Absent means off: nothing is
//! looked up or stored for the tenant.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::validate::{field_path, integer, object, string, ConfigErrors};

pub const CACHE_FIELDS: &[&str] = &[
    "ttl_seconds",
    "max_entry_bytes",
    "operations",
    "models",
    "nondeterministic",
    "charge_hits",
    "store_tool_calls",
];

pub const DEFAULT_CACHE_TTL_SECONDS: u64 = 3600;
/// Seven days: an answer older than that is rarely what a tenant wants repeated.
pub const MAX_CACHE_TTL_SECONDS: u64 = 7 * 24 * 3600;
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 256 * 1024;
/// Entries are read whole before the reply; a bound keeps a hit cheap.
pub const MAX_ENTRY_BYTES_CEILING: u64 = 4 * 1024 * 1024;

/// The operations a cache may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CachedOperation {
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/messages`
    Messages,
    /// `POST /v1/embeddings`
    Embeddings,
}

impl CachedOperation {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "chat" => Some(Self::Chat),
            "messages" => Some(Self::Messages),
            "embeddings" => Some(Self::Embeddings),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    pub ttl_ms: u64,
    pub max_entry_bytes: u64,
    pub operations: BTreeSet<CachedOperation>,
    /// Model names or route aliases (as clients send them) the cache applies to; `None`: all.
    pub models: Option<BTreeSet<String>>,
    /// Cache completions whose sampling is not deterministic (`temperature` absent or > 0).
    pub nondeterministic: bool,
    /// Charge a hit what the stored response cost (default: hits are free, still counted
    /// against request-rate limits).
    pub charge_hits: bool,
    /// Store responses that end asking for tool calls (their answer depends on the tool's
    /// result, which the next request carries, so by default they are not reused).
    pub store_tool_calls: bool,
}

impl CachePolicy {
    /// Whether requests for `operation` naming `model` may use the cache.
    pub fn covers(&self, operation: CachedOperation, model: &str) -> bool {
        self.operations.contains(&operation)
            && self.models.as_ref().is_none_or(|m| m.contains(model))
    }
}

pub(super) fn cache_policy(value: &Value, errs: &mut ConfigErrors) -> Option<CachePolicy> {
    let path = "cache";
    let map = object(value, path, CACHE_FIELDS, errs)?;
    let before = errs.0.len();
    let ttl_seconds = match map.get("ttl_seconds") {
        Some(v) => integer(
            v,
            &field_path(path, "ttl_seconds"),
            1,
            MAX_CACHE_TTL_SECONDS,
            errs,
        ),
        None => Some(DEFAULT_CACHE_TTL_SECONDS),
    };
    let max_entry_bytes = match map.get("max_entry_bytes") {
        Some(v) => integer(
            v,
            &field_path(path, "max_entry_bytes"),
            1024,
            MAX_ENTRY_BYTES_CEILING,
            errs,
        ),
        None => Some(DEFAULT_MAX_ENTRY_BYTES),
    };
    let operations = match map.get("operations") {
        Some(v) => names(v, &field_path(path, "operations"), errs).map(|list| {
            let mut out = BTreeSet::new();
            for (i, name) in list.iter().enumerate() {
                match CachedOperation::parse(name) {
                    Some(op) => {
                        out.insert(op);
                    }
                    None => errs.push(
                        format!("{path}.operations[{i}]"),
                        format!(
                            "unknown operation {name:?}; expected chat, messages or embeddings"
                        ),
                    ),
                }
            }
            out
        }),
        None => Some(BTreeSet::from([
            CachedOperation::Chat,
            CachedOperation::Messages,
            CachedOperation::Embeddings,
        ])),
    };
    let models = match map.get("models") {
        Some(v) => {
            names(v, &field_path(path, "models"), errs).map(|l| Some(l.into_iter().collect()))
        }
        None => Some(None),
    };
    let flag = |name: &str, errs: &mut ConfigErrors| match map.get(name) {
        None => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errs.push(field_path(path, name), "must be true or false");
            None
        }
    };
    let nondeterministic = flag("nondeterministic", errs);
    let charge_hits = flag("charge_hits", errs);
    let store_tool_calls = flag("store_tool_calls", errs);
    if errs.0.len() != before {
        return None;
    }
    Some(CachePolicy {
        ttl_ms: ttl_seconds? * 1000,
        max_entry_bytes: max_entry_bytes?,
        operations: operations?,
        models: models?,
        nondeterministic: nondeterministic?,
        charge_hits: charge_hits?,
        store_tool_calls: store_tool_calls?,
    })
}

/// A non-empty list of non-empty strings.
fn names(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<Vec<String>> {
    let Some(items) = value.as_array() else {
        errs.push(path, "must be a list of names");
        return None;
    };
    if items.is_empty() {
        errs.push(path, "must name at least one (omit it to mean all)");
        return None;
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if let Some(s) = string(item, &p, errs) {
            if s.is_empty() {
                errs.push(p, "must not be empty");
            } else {
                out.push(s.to_string());
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<CachePolicy, ConfigErrors> {
        let mut errs = ConfigErrors::default();
        match cache_policy(&v, &mut errs) {
            Some(p) if errs.is_empty() => Ok(p),
            _ => Err(errs),
        }
    }

    #[test]
    fn an_empty_block_turns_the_cache_on_with_defaults() {
        let p = parse(json!({})).expect("valid");
        assert_eq!(p.ttl_ms, 3_600_000);
        assert_eq!(p.max_entry_bytes, 262_144);
        assert!(p.covers(CachedOperation::Chat, "any"));
        assert!(p.covers(CachedOperation::Embeddings, "any"));
        assert!(!p.nondeterministic && !p.charge_hits && !p.store_tool_calls);
    }

    #[test]
    fn models_and_operations_narrow_what_is_covered() {
        let p = parse(json!({"operations": ["embeddings"], "models": ["small"]})).expect("valid");
        assert!(p.covers(CachedOperation::Embeddings, "small"));
        assert!(!p.covers(CachedOperation::Embeddings, "large"));
        assert!(!p.covers(CachedOperation::Chat, "small"));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let errs = parse(json!({
            "ttl_seconds": 0,
            "max_entry_bytes": 10_000_000_000u64,
            "operations": ["chat", "images"],
            "models": [],
            "charge_hits": "yes",
            "ttl": 5
        }))
        .expect_err("invalid");
        let mut paths = errs.paths();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "cache.charge_hits",
                "cache.max_entry_bytes",
                "cache.models",
                "cache.operations[1]",
                "cache.ttl",
                "cache.ttl_seconds"
            ]
        );
    }
}
