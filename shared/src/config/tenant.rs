//! Tenant config: JSON in KV under `tenant:<id>`, validated into `TenantConfig` with every error and
//! its path. `schemas/tenant-config.schema.json` describes the same document for editors.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use crate::guard::CompiledGuard;
use crate::ids::{is_valid_id, TenantId};
use crate::providers::Provider;
use crate::secret::SecretRef;
use crate::validate::{field_path, integer, key_path, object, required, string, ConfigErrors};

pub const SCHEMA_VERSION: u64 = 1;
pub const TENANT_FIELDS: &[&str] = &[
    // Editors' pointer to the JSON Schema; ignored.
    "$schema",
    "schema_version",
    "tenant_id",
    "display_name",
    "residency",
    "models",
    "limits",
    "budgets",
    "guardrails",
    "routes",
    "routing",
    "workloads",
    "cache",
    "alerts",
    "telemetry",
];
pub const MODEL_FIELDS: &[&str] = &[
    "provider",
    "endpoint",
    "upstream_model",
    "credential",
    "timeout_ms",
    "region",
];
pub const LIMIT_FIELDS: &[&str] = &[
    "max_request_bytes",
    "requests_per_minute",
    "key_requests_per_minute",
    "tokens_per_minute",
    "key_tokens_per_minute",
    "reservation_ttl_ms",
    "ledger_shards",
    "admission",
    "lease_window_ms",
    "lease_max_requests",
];

pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1024 * 1024;
pub const MAX_REQUEST_BYTES_CEILING: u64 = 32 * 1024 * 1024;
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// How long a budget reservation may stay unsettled before it is charged and released.
pub const DEFAULT_RESERVATION_TTL_MS: u64 = 15 * 60_000;

/// Where one approved model is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelTarget {
    pub provider: Provider,
    /// Base URL, e.g. `https://eu.api.openai.com/v1`; operation paths are appended.
    pub endpoint: Url,
    /// The model name the upstream expects.
    pub upstream_model: String,
    pub credential: SecretRef,
    /// Time allowed until the upstream's response headers arrive.
    pub timeout_ms: u64,
    /// The region whose data-residency boundary the endpoint lies in, when declared. A target
    /// of another region is never a candidate, whatever its host.
    pub region: Option<String>,
}

impl ModelTarget {
    /// The endpoint with `operation` (e.g. `chat/completions`) appended.
    pub fn url_for(&self, operation: &str) -> Url {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/{operation}"));
        url
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_request_bytes: u64,
    pub requests_per_minute: Option<u64>,
    pub key_requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub key_tokens_per_minute: Option<u64>,
    pub reservation_ttl_ms: u64,
    /// Ledgers (Durable Objects) the tenant's counters are split over; see `budget::LedgerId`.
    pub ledger_shards: u32,
    pub admission: Admission,
}

/// How requests are admitted (`limits.admission`); see `ledger::lease`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// One ledger call per request before its upstream call, storing its opening record.
    WriteAhead,
    /// An isolate admits under a lease of up to `max_requests` requests, for `window_ms`.
    Leased { window_ms: u64, max_requests: u64 },
}

pub const DEFAULT_LEASE_WINDOW_MS: u64 = 2_000;
pub const DEFAULT_LEASE_MAX_REQUESTS: u64 = 64;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            requests_per_minute: None,
            key_requests_per_minute: None,
            tokens_per_minute: None,
            key_tokens_per_minute: None,
            reservation_ttl_ms: DEFAULT_RESERVATION_TTL_MS,
            ledger_shards: 1,
            admission: Admission::WriteAhead,
        }
    }
}

/// A tenant's validated config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantConfig {
    pub tenant_id: TenantId,
    pub display_name: Option<String>,
    /// The region whose deployment alone may serve this tenant.
    pub residency: String,
    /// Approved models by the name clients send.
    pub models: BTreeMap<String, ModelTarget>,
    pub limits: Limits,
    pub budgets: Vec<super::budgets::Budget>,
    /// Guardrail policy (nothing enabled when absent), compiled once with the config.
    pub guardrails: crate::guard::GuardPolicy,
    /// Model aliases and their routing, by alias.
    pub routes: BTreeMap<String, super::routes::RouteConfig>,
    pub routing: super::routes::RoutingSettings,
    pub workloads: BTreeMap<String, super::routes::Workload>,
    /// The response cache, when the tenant opts in.
    pub cache: Option<super::cache::CachePolicy>,
    /// Webhooks and the error-rate rule (empty: no alerts are sent).
    pub alerts: super::alerts::AlertPolicy,
    /// What this tenant's exported execution records may carry.
    pub telemetry: super::alerts::TelemetryPolicy,
    /// SHA-256 of the stored document: the policy version recorded in audit records.
    pub version: String,
}

/// An estimate of what a parsed config holds per byte of its document, besides its compiled
/// guardrails, plus what any config holds (its structs, their small allocations). Measured
/// natively with a counting allocator (`shared/tests/config_memory.rs` holds
/// [`TenantConfig::resident_bytes`] above what the example configs allocate, and within 3x of
/// it); on wasm32, with 4-byte pointers, configs hold less. Not a bound: a document of many tiny
/// array items (route targets) can take more a byte, and the cache then passes its budget by
/// that much.
pub const PARSED_BYTES_PER_DOCUMENT_BYTE: usize = 8;
const PARSED_BASE_BYTES: usize = 4096;

impl TenantConfig {
    /// The version of a stored document: its SHA-256, lowercase hex.
    pub fn version_of(bytes: &[u8]) -> String {
        crate::hexstr::encode(&Sha256::digest(bytes))
    }

    /// About what this config holds in memory, parsed from a document of `document_bytes`: the
    /// parsed document (about [`PARSED_BYTES_PER_DOCUMENT_BYTE`] a byte, plus a base) and its
    /// compiled guardrails (custom patterns' tables, deny terms' trie), which can reach
    /// megabytes. An isolate's config cache is bounded by it.
    pub fn resident_bytes(&self, document_bytes: usize) -> usize {
        PARSED_BASE_BYTES
            + document_bytes * PARSED_BYTES_PER_DOCUMENT_BYTE
            + self.guardrails.scanner().compiled_bytes()
    }

    /// Parses and validates a stored document, compiling its custom patterns in this build. Every
    /// problem is reported, each with its path.
    pub fn parse(bytes: &[u8]) -> Result<TenantConfig, ConfigErrors> {
        Self::parse_with(bytes, &CompiledGuard::local())
    }

    /// [`parse`](Self::parse) with its guardrails' patterns and case classes compiled elsewhere
    /// (the request plane's Worker gets them from the control plane: [`crate::guard::GuardSources`]).
    pub fn parse_with(
        bytes: &[u8],
        compiled: &CompiledGuard,
    ) -> Result<TenantConfig, ConfigErrors> {
        let mut errs = ConfigErrors::default();
        let value: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                errs.push("", format!("is not valid JSON: {e}"));
                return Err(errs);
            }
        };
        match validate(&value, Self::version_of(bytes), compiled, &mut errs) {
            Some(config) if errs.is_empty() => Ok(config),
            _ => Err(errs),
        }
    }
}

fn validate(
    value: &Value,
    version: String,
    compiled: &CompiledGuard,
    errs: &mut ConfigErrors,
) -> Option<TenantConfig> {
    let root = object(value, "", TENANT_FIELDS, errs)?;

    if let Some(v) = required(root, "", "schema_version", errs) {
        if let Some(n) = integer(v, "schema_version", 1, u64::MAX, errs) {
            if n != SCHEMA_VERSION {
                errs.push(
                    "schema_version",
                    format!("must be {SCHEMA_VERSION}, found {n}"),
                );
            }
        }
    }
    let tenant_id = required(root, "", "tenant_id", errs)
        .and_then(|v| string(v, "tenant_id", errs))
        .and_then(|s| {
            if is_valid_id(s) {
                Some(TenantId(s.to_string()))
            } else {
                errs.push(
                    "tenant_id",
                    "must be 1-64 of [a-z0-9_-], starting with a letter or digit",
                );
                None
            }
        });
    let display_name = root
        .get("display_name")
        .and_then(|v| string(v, "display_name", errs))
        .map(str::to_string);
    let residency = required(root, "", "residency", errs)
        .and_then(|v| string(v, "residency", errs))
        .and_then(|s| {
            if is_valid_id(s) {
                Some(s.to_string())
            } else {
                errs.push("residency", "must be a region id such as \"eu\" or \"us\"");
                None
            }
        });
    let models = required(root, "", "models", errs).and_then(|v| models(v, errs));
    let limits = match root.get("limits") {
        Some(v) => limits(v, errs),
        None => Some(Limits::default()),
    };
    let budgets = match root.get("budgets") {
        Some(v) => super::budgets::budgets(v, errs),
        None => Some(Vec::new()),
    };
    let guardrails = match root.get("guardrails") {
        Some(v) => crate::guard::GuardPolicy::validate(v, "guardrails", compiled, errs),
        None => Some(crate::guard::GuardPolicy::default()),
    };
    let model_names: Vec<&str> = root
        .get("models")
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let routes = match root.get("routes") {
        Some(v) => super::routes::routes(v, &model_names, errs),
        None => Some(BTreeMap::new()),
    };
    let routing = match root.get("routing") {
        Some(v) => super::routes::routing_settings(v, errs),
        None => Some(super::routes::RoutingSettings::default()),
    };
    let workloads = match root.get("workloads") {
        Some(v) => super::routes::workloads(v, errs),
        None => Some(BTreeMap::new()),
    };
    let cache = match root.get("cache") {
        Some(v) => super::cache::cache_policy(v, errs).map(Some),
        None => Some(None),
    };
    let alerts = match root.get("alerts") {
        Some(v) => super::alerts::alert_policy(v, errs),
        None => Some(Default::default()),
    };
    let telemetry = match root.get("telemetry") {
        Some(v) => super::alerts::telemetry_policy(v, errs),
        None => Some(Default::default()),
    };
    Some(TenantConfig {
        tenant_id: tenant_id?,
        display_name,
        residency: residency?,
        models: models?,
        limits: limits?,
        budgets: budgets?,
        guardrails: guardrails?,
        routes: routes?,
        routing: routing?,
        workloads: workloads?,
        cache: cache?,
        alerts: alerts?,
        telemetry: telemetry?,
        version,
    })
}

fn models(value: &Value, errs: &mut ConfigErrors) -> Option<BTreeMap<String, ModelTarget>> {
    let Some(map) = value.as_object() else {
        errs.push("models", "must be an object mapping model names to targets");
        return None;
    };
    let mut out = BTreeMap::new();
    let before = errs.0.len();
    for (name, target) in map {
        let path = key_path("models", name);
        if name.is_empty() || name.len() > 128 || !name.chars().all(|c| c.is_ascii_graphic()) {
            errs.push(
                &path,
                "model names must be 1-128 printable characters without spaces",
            );
        }
        if let Some(t) = model_target(target, &path, name, errs) {
            out.insert(name.clone(), t);
        }
    }
    (errs.0.len() == before).then_some(out)
}

fn model_target(
    value: &Value,
    path: &str,
    name: &str,
    errs: &mut ConfigErrors,
) -> Option<ModelTarget> {
    let map = object(value, path, MODEL_FIELDS, errs)?;
    let provider = required(map, path, "provider", errs).and_then(|v| {
        let p = field_path(path, "provider");
        let s = string(v, &p, errs)?;
        let parsed = Provider::parse(s);
        if parsed.is_none() {
            errs.push(
                p,
                format!("unsupported provider {s:?}; supported: openai, anthropic, mistral"),
            );
        }
        parsed
    });
    let endpoint = required(map, path, "endpoint", errs).and_then(|v| {
        let p = field_path(path, "endpoint");
        endpoint(string(v, &p, errs)?, &p, errs)
    });
    let upstream_model = match map.get("upstream_model") {
        Some(v) => {
            let p = field_path(path, "upstream_model");
            string(v, &p, errs).and_then(|s| {
                if s.is_empty() {
                    errs.push(p, "must not be empty");
                    None
                } else {
                    Some(s.to_string())
                }
            })
        }
        None => Some(name.to_string()),
    };
    let credential = required(map, path, "credential", errs).and_then(|v| {
        let p = field_path(path, "credential");
        let s = string(v, &p, errs)?;
        let ok = s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Some(SecretRef(s.to_string()))
        } else {
            errs.push(
                p,
                "must name a secret like OPENAI_API_KEY ([A-Z][A-Z0-9_]*), never hold the key itself",
            );
            None
        }
    });
    let timeout_ms = match map.get("timeout_ms") {
        Some(v) => integer(v, &field_path(path, "timeout_ms"), 100, 600_000, errs),
        None => Some(DEFAULT_TIMEOUT_MS),
    };
    let region = match map.get("region") {
        Some(v) => {
            let p = field_path(path, "region");
            string(v, &p, errs).and_then(|s| {
                if is_valid_id(s) {
                    Some(Some(s.to_string()))
                } else {
                    errs.push(p, "must be a region id such as \"eu\" or \"us\"");
                    None
                }
            })
        }
        None => Some(None),
    };
    Some(ModelTarget {
        provider: provider?,
        endpoint: endpoint?,
        upstream_model: upstream_model?,
        credential: credential?,
        timeout_ms: timeout_ms?,
        region: region?,
    })
}

fn endpoint(s: &str, path: &str, errs: &mut ConfigErrors) -> Option<Url> {
    let url = match Url::parse(s) {
        Ok(u) => u,
        Err(e) => {
            errs.push(path, format!("must be an absolute URL ({e})"));
            return None;
        }
    };
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        errs.push(path, "must be an http(s) URL with a host");
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() {
        errs.push(path, "must not carry a query or fragment");
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        errs.push(path, "must not embed credentials; use `credential`");
        return None;
    }
    Some(url)
}

fn limits(value: &Value, errs: &mut ConfigErrors) -> Option<Limits> {
    let map = object(value, "limits", LIMIT_FIELDS, errs)?;
    let before = errs.0.len();
    let max_request_bytes = match map.get("max_request_bytes") {
        Some(v) => integer(
            v,
            "limits.max_request_bytes",
            1024,
            MAX_REQUEST_BYTES_CEILING,
            errs,
        ),
        None => Some(DEFAULT_MAX_REQUEST_BYTES),
    };
    let rpm = |name: &str, errs: &mut ConfigErrors| {
        map.get(name)
            .and_then(|v| integer(v, &field_path("limits", name), 1, 10_000_000, errs))
    };
    let requests_per_minute = rpm("requests_per_minute", errs);
    let key_requests_per_minute = rpm("key_requests_per_minute", errs);
    let tpm = |name: &str, errs: &mut ConfigErrors| {
        map.get(name)
            .and_then(|v| integer(v, &field_path("limits", name), 1, 100_000_000_000, errs))
    };
    let tokens_per_minute = tpm("tokens_per_minute", errs);
    let key_tokens_per_minute = tpm("key_tokens_per_minute", errs);
    let reservation_ttl_ms = match map.get("reservation_ttl_ms") {
        Some(v) => integer(v, "limits.reservation_ttl_ms", 1_000, 86_400_000, errs),
        None => Some(DEFAULT_RESERVATION_TTL_MS),
    };
    let ledger_shards = match map.get("ledger_shards") {
        Some(v) => integer(v, "limits.ledger_shards", 1, 64, errs).map(|n| n as u32),
        None => Some(1),
    };
    let window_ms = match map.get("lease_window_ms") {
        // The request that got a lease closes it after its window, inside its waitUntil, which
        // Workers cut 30 s after the response: a longer window would leave leases unclosed.
        Some(v) => integer(v, "limits.lease_window_ms", 100, 20_000, errs),
        None => Some(DEFAULT_LEASE_WINDOW_MS),
    };
    let max_requests = match map.get("lease_max_requests") {
        Some(v) => integer(v, "limits.lease_max_requests", 1, 10_000, errs),
        None => Some(DEFAULT_LEASE_MAX_REQUESTS),
    };
    let admission = match map.get("admission").map(|v| v.as_str()) {
        None | Some(Some("write_ahead")) => Some(Admission::WriteAhead),
        Some(Some("leased")) => Some(Admission::Leased {
            window_ms: window_ms.unwrap_or(DEFAULT_LEASE_WINDOW_MS),
            max_requests: max_requests.unwrap_or(DEFAULT_LEASE_MAX_REQUESTS),
        }),
        Some(_) => {
            errs.push("limits.admission", "must be \"write_ahead\" or \"leased\"");
            None
        }
    };
    (errs.0.len() == before).then_some(Limits {
        max_request_bytes: max_request_bytes?,
        requests_per_minute,
        key_requests_per_minute,
        tokens_per_minute,
        key_tokens_per_minute,
        reservation_ttl_ms: reservation_ttl_ms?,
        ledger_shards: ledger_shards?,
        admission: admission?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "schema_version": 1,
            "tenant_id": "acme",
            "residency": "eu",
            "models": {
                "gpt-4o-mini": {
                    "provider": "openai",
                    "endpoint": "https://eu.api.openai.com/v1",
                    "credential": "OPENAI_API_KEY"
                }
            }
        })
    }

    fn parse(v: &Value) -> Result<TenantConfig, ConfigErrors> {
        TenantConfig::parse(v.to_string().as_bytes())
    }

    #[test]
    fn a_minimal_config_gets_defaults() {
        let c = parse(&good()).expect("valid");
        let m = &c.models["gpt-4o-mini"];
        assert_eq!(m.upstream_model, "gpt-4o-mini");
        assert_eq!(m.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(c.limits.max_request_bytes, DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(
            m.url_for("chat/completions").as_str(),
            "https://eu.api.openai.com/v1/chat/completions"
        );
        assert_eq!(c.version.len(), 64);
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let bad = json!({
            "schema_version": 2,
            "tenant_id": "Acme Corp",
            "residency": 7,
            "modles": {},
            "models": {
                "gpt-4.1": {
                    "provider": "openia",
                    "endpoint": "not a url",
                    "credential": "sk-live-abc",
                    "timeout_ms": 0,
                    "weight": 3
                }
            },
            "limits": { "max_request_bytes": 10, "requests_per_minute": "lots" }
        });
        let errs = parse(&bad).expect_err("invalid");
        let paths = errs.paths();
        for expected in [
            "schema_version",
            "tenant_id",
            "residency",
            "modles",
            "models[\"gpt-4.1\"].provider",
            "models[\"gpt-4.1\"].endpoint",
            "models[\"gpt-4.1\"].credential",
            "models[\"gpt-4.1\"].timeout_ms",
            "models[\"gpt-4.1\"].weight",
            "limits.max_request_bytes",
            "limits.requests_per_minute",
        ] {
            assert!(paths.contains(&expected), "missing {expected} in {errs}");
        }
        assert_eq!(paths.len(), 11, "{errs}");
    }

    #[test]
    fn missing_required_fields_are_named() {
        let errs = parse(&json!({})).expect_err("invalid");
        assert_eq!(
            errs.paths(),
            vec!["schema_version", "tenant_id", "residency", "models"]
        );
    }

    #[test]
    fn a_key_pasted_as_credential_is_refused_without_echo() {
        let mut v = good();
        v["models"]["gpt-4o-mini"]["credential"] = json!("sk-proj-canary");
        let errs = parse(&v).expect_err("invalid");
        assert!(!errs.to_string().contains("canary"), "{errs}");
    }

    #[test]
    fn endpoints_with_credentials_or_queries_are_refused() {
        for url in [
            "https://u:p@eu.api.openai.com/v1",
            "https://eu.api.openai.com/v1?x=1",
            "ftp://x/",
        ] {
            let mut v = good();
            v["models"]["gpt-4o-mini"]["endpoint"] = json!(url);
            let errs = parse(&v).expect_err(url);
            assert_eq!(
                errs.paths(),
                vec!["models[\"gpt-4o-mini\"].endpoint"],
                "{url}"
            );
        }
    }

    #[test]
    fn admission_defaults_to_write_ahead_and_leases_are_bounded() {
        assert_eq!(
            parse(&good()).expect("valid").limits.admission,
            Admission::WriteAhead
        );
        let mut v = good();
        v["limits"] = json!({"admission": "leased", "lease_max_requests": 16});
        assert_eq!(
            parse(&v).expect("valid").limits.admission,
            Admission::Leased {
                window_ms: DEFAULT_LEASE_WINDOW_MS,
                max_requests: 16
            }
        );
        v["limits"] =
            json!({"admission": "batched", "lease_window_ms": 30_000, "lease_max_requests": 0});
        let errs = parse(&v).expect_err("invalid");
        assert_eq!(
            errs.paths(),
            vec![
                "limits.lease_window_ms",
                "limits.lease_max_requests",
                "limits.admission"
            ],
            "{errs}"
        );
    }

    #[test]
    fn not_json_is_one_error_at_the_root() {
        let errs = TenantConfig::parse(b"{").expect_err("invalid");
        assert_eq!(errs.paths(), vec![""]);
    }
}
