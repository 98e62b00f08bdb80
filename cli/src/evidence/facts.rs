//! What an evidence pack says about a period, computed from verified audit records: a summary,
//! the residency report, config versions and admin changes, key use and price-table versions.
//! Pure functions over records, so each is unit-tested on its own.

use std::collections::BTreeMap;

use asc_core::apikey::KeyRecord;
use asc_core::audit::{AuditEvent, GuardrailAction, Outcome};
use asc_core::region::RegionCatalog;
use serde_json::{json, Value};

/// Counts by a key, kept sorted so the pack's bytes do not depend on record order.
type Counts = BTreeMap<String, u64>;

fn bump(map: &mut Counts, key: impl Into<String>) {
    bump_by(map, key, 1);
}

fn bump_by(map: &mut Counts, key: impl Into<String>, n: u64) {
    *map.entry(key.into()).or_default() += n;
}

/// The clients with the most refusals before a tenant was known, this many at most (a flood
/// from many addresses would otherwise fill the pack); the rest summed as `(others)`.
const TOP_CLIENTS: usize = 100;

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Refused => "refused",
        Outcome::Error => "error",
        Outcome::Partial => "partial",
    }
}

/// Requests by tenant, model, provider, region, outcome and error code; blocked requests by
/// guardrail detector; response-cache outcomes.
pub fn summary(events: &[AuditEvent]) -> Value {
    let (mut tenants, mut models, mut providers, mut regions) = Default::default();
    let (mut outcomes, mut errors, mut blocked, mut cache) = Default::default();
    let mut operations = Counts::new();
    let (mut requests, mut unattributed_records, mut unattributed) = (0u64, 0u64, 0u64);
    let (mut unattributed_codes, mut clients) = (Counts::new(), Counts::new());
    for e in events {
        let r = &e.record;
        // A record of refusals before a tenant was known stands for `count` requests.
        let n = e.detail.refusals.as_ref().map_or(1, |note| note.count);
        requests += n;
        if let Some(note) = &e.detail.refusals {
            unattributed_records += 1;
            unattributed += n;
            bump_by(
                &mut unattributed_codes,
                r.error_code.as_deref().unwrap_or("-"),
                n,
            );
            bump_by(
                &mut clients,
                note.client.as_deref().unwrap_or("(not kept)"),
                n,
            );
        }
        bump_by(&mut tenants, r.tenant_id.as_deref().unwrap_or("(none)"), n);
        bump_by(
            &mut models,
            r.served_model
                .as_deref()
                .or(r.requested_model.as_deref())
                .unwrap_or("(none)"),
            n,
        );
        bump_by(&mut providers, r.provider.as_deref().unwrap_or("(none)"), n);
        bump_by(&mut regions, r.region.as_str(), n);
        bump_by(&mut outcomes, outcome_name(r.outcome), n);
        bump_by(&mut operations, r.operation.as_str(), n);
        if let Some(code) = &r.error_code {
            bump_by(&mut errors, code.as_str(), n);
        }
        for g in &e.detail.guardrails {
            if g.action == GuardrailAction::Block {
                let name = match &g.pattern {
                    Some(p) => format!("{}:{p}", g.detector),
                    None => g.detector.clone(),
                };
                bump(&mut blocked, name);
            }
        }
        if let Some(note) = &e.detail.cache {
            bump(
                &mut cache,
                serde_json::to_value(note.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            );
        }
    }
    json!({
        "requests": requests,
        "records": events.len(),
        "by_tenant": tenants,
        "by_model": models,
        "by_provider": providers,
        "by_region": regions,
        "by_operation": operations,
        "by_outcome": outcomes,
        "by_error_code": errors,
        "blocked_by_guardrail": blocked,
        "response_cache": cache,
        "refused_before_a_tenant": {
            "records": unattributed_records,
            "requests": unattributed,
            "by_error_code": unattributed_codes,
            "top_clients": top(clients, TOP_CLIENTS),
        },
    })
}

/// The `limit` largest counts (ties by key), the rest summed as `(others)`.
fn top(counts: Counts, limit: usize) -> Counts {
    let mut by_size: Vec<(String, u64)> = counts.into_iter().collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let rest: u64 = by_size.iter().skip(limit).map(|(_, n)| n).sum();
    let mut kept: Counts = by_size.into_iter().take(limit).collect();
    if rest > 0 {
        kept.insert("(others)".into(), rest);
    }
    kept
}

/// Every upstream host contacted, per region (every attempt, fallbacks included), checked
/// against that region's allowlist; a host outside it, or a region this build does not know, is
/// flagged.
pub fn residency(events: &[AuditEvent], regions: &RegionCatalog) -> Value {
    let mut hosts: BTreeMap<String, Counts> = BTreeMap::new();
    for e in events {
        // Attempts are the upstream calls actually made; `endpoint_host` alone is where a request
        // was headed (a refusal, a cache hit), not a contact.
        let contacted = hosts.entry(e.record.region.clone()).or_default();
        for attempt in &e.detail.attempts {
            bump(contacted, attempt.endpoint_host.to_ascii_lowercase());
        }
    }
    let mut flagged = Vec::new();
    let mut report = Vec::new();
    for (region_id, contacted) in &hosts {
        let region = regions.get(region_id);
        let allowed =
            |h: &str| region.is_some_and(|r| r.allowed_upstream_hosts.iter().any(|a| a == h));
        let rows: Vec<Value> = contacted
            .iter()
            .map(|(host, n)| {
                let ok = allowed(host);
                if !ok {
                    flagged.push(json!({"region": region_id, "host": host, "attempts": n}));
                }
                json!({"host": host, "attempts": n, "allowed": ok})
            })
            .collect();
        report.push(json!({
            "region": region_id,
            "known_region": region.is_some(),
            "storage_jurisdiction": region.and_then(|r| r.storage_jurisdiction.clone()),
            "allowed_upstream_hosts": region.map(|r| r.allowed_upstream_hosts.clone()).unwrap_or_default(),
            "hosts_contacted": rows,
        }));
    }
    json!({"ok": flagged.is_empty(), "flagged": flagged, "regions": report})
}

/// Per tenant, the config versions (policy hashes) in force with when each was first and last
/// seen; and every admin action recorded in the trail (who, what, when).
pub fn config_versions(events: &[AuditEvent]) -> Value {
    let mut tenants: BTreeMap<String, BTreeMap<String, (u64, u64, u64)>> = BTreeMap::new();
    let mut admin = Vec::new();
    for e in events {
        let r = &e.record;
        if r.operation.starts_with("admin.") {
            admin.push(json!({
                "timestamp_ms": r.timestamp_ms,
                "operation": r.operation,
                "tenant_id": r.tenant_id,
                "actor": e.detail.actor,
                // Who (subject, issuer, roles) and what (versions before and after, the change's
                // digest and paths), as the admin plane recorded it.
                "admin": e.detail.admin,
                "policy_version": r.policy_version,
                "request_id": r.request_id,
                "outcome": outcome_name(r.outcome),
            }));
        }
        let (Some(tenant), Some(version)) = (&r.tenant_id, &r.policy_version) else {
            continue;
        };
        let slot = tenants
            .entry(tenant.clone())
            .or_default()
            .entry(version.clone())
            .or_insert((r.timestamp_ms, r.timestamp_ms, 0));
        slot.0 = slot.0.min(r.timestamp_ms);
        slot.1 = slot.1.max(r.timestamp_ms);
        slot.2 += 1;
    }
    let tenants: BTreeMap<String, Vec<Value>> = tenants
        .into_iter()
        .map(|(t, versions)| {
            let mut rows: Vec<(u64, Value)> = versions
                .into_iter()
                .map(|(v, (first, last, n))| {
                    (
                        first,
                        json!({"policy_version": v, "first_seen_ms": first, "last_seen_ms": last, "requests": n}),
                    )
                })
                .collect();
            rows.sort_by_key(|(first, _)| *first);
            (t, rows.into_iter().map(|(_, v)| v).collect())
        })
        .collect();
    json!({"tenants": tenants, "admin_actions": admin})
}

/// Every key that made requests in the period (requests, first and last use), with its scopes
/// and status when the key records are given; keys on record that were not used are listed too.
pub fn key_use(events: &[AuditEvent], records: &[KeyRecord]) -> Value {
    let mut used: BTreeMap<(String, String), (u64, u64, u64)> = BTreeMap::new();
    for e in events {
        let (Some(t), Some(k)) = (&e.record.tenant_id, &e.record.key_id) else {
            continue;
        };
        let ts = e.record.timestamp_ms;
        let slot = used.entry((t.clone(), k.clone())).or_insert((ts, ts, 0));
        slot.0 = slot.0.min(ts);
        slot.1 = slot.1.max(ts);
        slot.2 += 1;
    }
    let by_id: BTreeMap<(String, String), &KeyRecord> = records
        .iter()
        .map(|r| ((r.tenant_id.0.clone(), r.key_id.0.clone()), r))
        .collect();
    let mut all: Vec<(String, String)> = used.keys().cloned().collect();
    all.extend(by_id.keys().filter(|k| !used.contains_key(*k)).cloned());
    all.sort();
    let rows: Vec<Value> = all
        .into_iter()
        .map(|id| {
            let usage = used.get(&id);
            let record = by_id.get(&id);
            json!({
                "tenant_id": id.0,
                "key_id": id.1,
                "requests": usage.map_or(0, |u| u.2),
                "first_used_ms": usage.map(|u| u.0),
                "last_used_ms": usage.map(|u| u.1),
                "on_record": record.is_some(),
                "status": record.map(|r| serde_json::to_value(r.status).unwrap_or(Value::Null)),
                "scopes": record.map(|r| serde_json::to_value(&r.scopes).unwrap_or(Value::Null)),
                "tags": record.map(|r| r.tags.clone()),
                "label": record.and_then(|r| r.label.clone()),
                "created_ms": record.and_then(|r| r.created_ms),
            })
        })
        .collect();
    json!({"keys": rows, "key_records_given": !records.is_empty()})
}

/// The price-table versions that priced the period's requests, and the one this build carries.
pub fn price_versions(events: &[AuditEvent], builtin_version: &str) -> Value {
    let mut seen = Counts::new();
    for e in events {
        if let Some(v) = &e.detail.price_table_version {
            bump(&mut seen, v.as_str());
        }
    }
    json!({"priced_requests_by_version": seen, "builtin_version": builtin_version})
}

#[cfg(test)]
mod tests {
    use super::*;
    use asc_core::audit::{
        Attempt, AuditRecord, CacheNote, CacheOutcome, GuardrailDecision, AUDIT_SCHEMA_VERSION,
    };

    fn event(n: u64, tenant: &str, region: &str, host: &str) -> AuditEvent {
        let mut e = AuditEvent::from(AuditRecord {
            schema_version: AUDIT_SCHEMA_VERSION,
            request_id: format!("req_{n}"),
            timestamp_ms: 1_000 + n,
            region: region.into(),
            tenant_id: Some(tenant.into()),
            key_id: Some(format!("k_{tenant}")),
            operation: "chat.completions".into(),
            requested_model: Some("gpt-4o-mini".into()),
            served_model: Some("gpt-4o-mini-2024-07-18".into()),
            provider: Some("openai".into()),
            endpoint_host: Some(host.into()),
            stream: false,
            outcome: Outcome::Ok,
            status: 200,
            error_code: None,
            usage: None,
            latency_ms: 1,
            policy_version: Some(format!("v{}", n / 3)),
            trace_id: String::new(),
        });
        e.detail.attempts = vec![Attempt {
            provider: "openai".into(),
            endpoint_host: host.into(),
            model: "m".into(),
            status: Some(200),
            error_code: None,
            latency_ms: 1,
        }];
        e
    }

    #[test]
    fn residency_flags_a_host_outside_the_regions_allowlist_and_an_unknown_region() {
        let regions = asc_core::builtin_regions().expect("regions");
        let mut events = vec![
            event(1, "acme", "eu", "eu.api.openai.com"),
            event(2, "acme", "eu", "EU.API.OPENAI.COM"),
            event(3, "acme", "eu", "api.openai.com"),
            event(4, "acme", "mars", "api.openai.com"),
        ];
        // A fallback's failed attempt counts as contact too.
        events[0].detail.attempts.insert(
            0,
            Attempt {
                provider: "anthropic".into(),
                endpoint_host: "api.anthropic.com".into(),
                model: "c".into(),
                status: Some(500),
                error_code: Some("upstream_error".into()),
                latency_ms: 1,
            },
        );
        let r = residency(&events, &regions);
        assert_eq!(r["ok"], false);
        let flagged: Vec<(String, String)> = r["flagged"]
            .as_array()
            .expect("list")
            .iter()
            .map(|f| {
                (
                    f["region"].as_str().unwrap_or("").into(),
                    f["host"].as_str().unwrap_or("").into(),
                )
            })
            .collect();
        assert_eq!(
            flagged,
            vec![
                ("eu".to_string(), "api.anthropic.com".to_string()),
                ("eu".to_string(), "api.openai.com".to_string()),
                ("mars".to_string(), "api.openai.com".to_string()),
            ]
        );
        let eu = &r["regions"][0];
        assert_eq!(eu["region"], "eu");
        let ok_host = eu["hosts_contacted"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|h| h["host"] == "eu.api.openai.com")
            .expect("row");
        assert_eq!(
            ok_host["attempts"], 2,
            "host names compare case-insensitively"
        );
        assert_eq!(ok_host["allowed"], true);

        let clean = residency(&events[1..2], &regions);
        assert_eq!(clean["ok"], true);
    }

    #[test]
    fn the_summary_counts_blocks_by_detector_and_cache_outcomes() {
        let mut blocked = event(1, "acme", "eu", "eu.api.openai.com");
        blocked.record.outcome = Outcome::Refused;
        blocked.record.error_code = Some("guardrail_credit_card".into());
        blocked.detail.guardrails = vec![GuardrailDecision {
            detector: "credit_card".into(),
            action: GuardrailAction::Block,
            count: 1,
            side: Some("request".into()),
            pattern: None,
            mode: None,
        }];
        let mut hit = event(2, "globex", "eu", "eu.api.openai.com");
        hit.detail.cache = Some(CacheNote {
            outcome: CacheOutcome::Hit,
            key: Some("ab".into()),
            stored: false,
            reason: None,
        });
        let s = summary(&[blocked, hit, event(3, "acme", "eu", "eu.api.openai.com")]);
        assert_eq!(s["requests"], 3);
        assert_eq!(s["by_tenant"], json!({"acme": 2, "globex": 1}));
        assert_eq!(s["by_outcome"], json!({"ok": 2, "refused": 1}));
        assert_eq!(s["blocked_by_guardrail"], json!({"credit_card": 1}));
        assert_eq!(s["by_error_code"], json!({"guardrail_credit_card": 1}));
        assert_eq!(s["response_cache"], json!({"hit": 1}));
        assert_eq!(s["refused_before_a_tenant"]["requests"], 0);
    }

    #[test]
    fn a_record_of_refusals_before_a_tenant_counts_as_its_attempts() {
        let counted = |code: &str, client: Option<&str>, count: u64| {
            let mut e = event(9, "x", "eu", "h");
            e.record.tenant_id = None;
            e.record.outcome = Outcome::Refused;
            e.record.error_code = Some(code.into());
            e.detail.refusals = Some(asc_core::audit::RefusalsNote {
                count,
                client: client.map(str::to_string),
                ..Default::default()
            });
            e
        };
        let s = summary(&[
            counted("missing_api_key", Some("203.0.113.7"), 5),
            counted("invalid_api_key", Some("203.0.113.7"), 2),
            counted("invalid_api_key", None, 40),
            event(3, "acme", "eu", "eu.api.openai.com"),
        ]);
        assert_eq!(
            (s["requests"].as_u64(), s["records"].as_u64()),
            (Some(48), Some(4))
        );
        assert_eq!(s["by_tenant"], json!({"(none)": 47, "acme": 1}));
        assert_eq!(s["by_outcome"], json!({"ok": 1, "refused": 47}));
        assert_eq!(
            s["refused_before_a_tenant"],
            json!({
                "records": 3,
                "requests": 47,
                "by_error_code": {"invalid_api_key": 42, "missing_api_key": 5},
                "top_clients": {"203.0.113.7": 7, "(not kept)": 40},
            })
        );
        let many: Counts = (0..150).map(|i| (format!("c{i:03}"), 1 + i)).collect();
        let kept = top(many, 100);
        assert_eq!(kept.len(), 101);
        assert_eq!(kept["c149"], 150);
        // c000..c049 hold 1..=50: 1,275 in all.
        assert_eq!(kept["(others)"], 1_275);
    }

    #[test]
    fn config_versions_in_order_of_first_use_and_admin_actions_with_their_actor() {
        let mut events: Vec<AuditEvent> = (0..7).map(|n| event(n, "acme", "eu", "h")).collect();
        let mut admin = event(9, "acme", "eu", "h");
        admin.record.operation = "admin.tenant.put".into();
        admin.detail.actor = Some("operator:alice@example.com".into());
        events.push(admin);
        let c = config_versions(&events);
        let versions: Vec<&str> = c["tenants"]["acme"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|v| v["policy_version"].as_str())
            .collect();
        assert_eq!(versions, ["v0", "v1", "v2", "v3"]);
        assert_eq!(c["tenants"]["acme"][0]["requests"], 3);
        assert_eq!(c["tenants"]["acme"][0]["first_seen_ms"], 1_000);
        assert_eq!(c["tenants"]["acme"][0]["last_seen_ms"], 1_002);
        assert_eq!(c["admin_actions"][0]["actor"], "operator:alice@example.com");
        assert_eq!(c["admin_actions"][0]["operation"], "admin.tenant.put");
    }

    #[test]
    fn key_use_joins_the_records_and_lists_unused_keys() {
        let events = vec![event(1, "acme", "eu", "h"), event(5, "acme", "eu", "h")];
        let record = |tenant: &str, key: &str| -> KeyRecord {
            serde_json::from_value(json!({
                "schema_version": 1, "key_id": key, "tenant_id": tenant, "status": "active",
                "scopes": ["chat"], "key_hash": "00", "created_ms": 5
            }))
            .expect("record")
        };
        let k = key_use(
            &events,
            &[record("acme", "k_acme"), record("acme", "k_idle")],
        );
        let rows = k["keys"].as_array().expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["key_id"], "k_acme");
        assert_eq!(rows[0]["requests"], 2);
        assert_eq!(rows[0]["first_used_ms"], 1_001);
        assert_eq!(rows[0]["last_used_ms"], 1_005);
        assert_eq!(rows[0]["scopes"], json!(["chat"]));
        assert_eq!(rows[1]["key_id"], "k_idle");
        assert_eq!(rows[1]["requests"], 0);
        assert!(rows[1]["last_used_ms"].is_null());
        assert!(
            !k.to_string().contains("key_hash"),
            "no key material in the pack"
        );
    }
}
