//! The dashboard's admin endpoints through the fake host: the audit search over a region's
//! batches (one tenant's records only, newest first, paged by cursor without gaps or repeats,
//! bounded work, recorded content never returned), the routes view with live circuit states,
//! and who may call them.

mod common;

use asc_core::admin::issuer::parse_issuers;
use asc_core::admin::search::MAX_BATCH_READS;
use asc_core::admin::AdminPlane;
use asc_core::audit::batch::gzip;
use asc_core::audit::batch_key;
use asc_core::host::{Chunks, Host};
use asc_core::ids::TenantId;
use asc_core::pipeline::http::{Inbound, ReplyBody};
use asc_core::routing::circuit::CircuitOp;
use common::*;
use serde_json::{json, Value};

const STREAMS: [&str; 2] = ["audit-local-1-of-2", "audit-local-2-of-2"];

fn plane() -> AdminPlane {
    let mut issuers: Value = serde_json::from_str(&admin_issuers(&["acme", "demo"])).expect("json");
    let roles = issuers[0]["roles"].as_array_mut().expect("roles");
    roles.push(json!({"group": "acme-audit", "role": "auditor", "tenant": "acme"}));
    roles.push(json!({"group": "acme-money", "role": "finance", "tenant": "acme"}));
    roles.push(json!({"group": "acme-devs", "role": "developer", "tenant": "acme"}));
    AdminPlane::new(parse_issuers(&issuers.to_string()).expect("issuers"))
        .with_audit_streams(STREAMS.iter().map(|s| s.to_string()).collect())
}

fn get(plane: &AdminPlane, host: &FakeHost, token: &str, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let req: Inbound<Chunks> = request("GET", path, &[("authorization", auth.as_str())], b"");
    let gw = local_gateway();
    let handled = block_on(plane.handle(&gw, host, req));
    if let Some(at_ms) = handled.refusals_due {
        assert!(block_on(gw.send_refusals(host, at_ms)).is_empty());
    }
    let reply = handled.reply;
    let ReplyBody::Full(body) = reply.body else {
        panic!("admin replies are whole")
    };
    (
        reply.status,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// Writes `per_batch`-record batches to both streams: records alternate between acme and
/// other, one millisecond apart, stream by stream.
fn fill_bucket(host: &FakeHost, batches: u64, per_batch: u64) -> Vec<(String, u64)> {
    let mut acme = Vec::new();
    for (s, stream) in STREAMS.iter().enumerate() {
        for b in 0..batches {
            let first = b * per_batch + 1;
            let last = first + per_batch - 1;
            let mut text = String::new();
            for seq in first..=last {
                let tenant = if seq % 2 == 0 { "acme" } else { "other" };
                let ts = 1_000_000 + seq * 10 + s as u64;
                let record = json!({"tenant_id": tenant, "key_id": "k_1", "operation": "chat.completions",
                    "requested_model": "gpt-4o-mini", "outcome": if seq % 4 == 0 { "error" } else { "ok" },
                    "timestamp_ms": ts, "content": {"prompt": "words nobody may read here"}});
                if tenant == "acme" {
                    acme.push((stream.to_string(), seq));
                }
                text.push_str(
                    &json!({"stream": stream, "sequence": seq, "prev_hash": "p",
                    "hash": format!("h{seq}"), "record": record})
                    .to_string(),
                );
                text.push('\n');
            }
            host.audit_bucket.borrow_mut().insert(
                batch_key(stream, first, last),
                gzip(text.as_bytes()).expect("gzip"),
            );
        }
        // A digest beside the batches is not a batch.
        host.audit_bucket
            .borrow_mut()
            .insert(asc_core::audit::digest_key(stream, 1), b"{}".to_vec());
    }
    acme
}

#[test]
fn the_audit_search_pages_through_one_tenants_records_newest_first() {
    let host = FakeHost::new();
    let plane = plane();
    script_jwks(&host);
    let now_s = host.clock_ms.get() / 1000;
    let admin = admin_token("alice", &["acme-admins"], now_s);
    let mut expected = fill_bucket(&host, 6, 10);
    expected.sort();

    let mut seen = Vec::new();
    let mut cursor = String::new();
    for page in 0.. {
        assert!(page < 40, "the search ends");
        let q = if cursor.is_empty() {
            "limit=7".to_string()
        } else {
            format!("limit=7&cursor={cursor}")
        };
        let reads_before = host.audit_bucket_reads.get();
        let (status, body) = get(
            &plane,
            &host,
            &admin,
            &format!("/admin/v1/tenants/acme/audit?{q}"),
        );
        assert_eq!(status, 200, "{body}");
        let objects_read = body["batches_read"].as_u64().expect("count") as usize;
        assert!(objects_read <= MAX_BATCH_READS);
        assert!(host.audit_bucket_reads.get() - reads_before <= objects_read + STREAMS.len());
        let data = body["data"].as_array().expect("list");
        assert!(data.len() <= 7);
        let times: Vec<u64> = data
            .iter()
            .map(|d| d["record"]["timestamp_ms"].as_u64().expect("ts"))
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "newest first: {times:?}"
        );
        for d in data {
            assert_eq!(d["record"]["tenant_id"], "acme");
            assert!(d["record"].get("content").is_none(), "no recorded content");
            let (stream, seq) = (
                d["stream"].as_str().expect("stream"),
                d["sequence"].as_u64().expect("seq"),
            );
            let batch = d["batch"].as_str().expect("batch");
            assert!(batch.starts_with(&format!("audit/{stream}/batches/")));
            assert!(host.audit_bucket.borrow().contains_key(batch));
            seen.push((stream.to_string(), seq));
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no record twice");
    assert_eq!(
        sorted, expected,
        "every record of the tenant, and only those"
    );

    // Filters: the outcome, a time window.
    let (_, errors) = get(
        &plane,
        &host,
        &admin,
        "/admin/v1/tenants/acme/audit?outcome=error&limit=200",
    );
    let data = errors["data"].as_array().expect("list");
    assert!(!data.is_empty());
    assert!(data.iter().all(|d| d["record"]["outcome"] == "error"));
    let (_, window) = get(
        &plane,
        &host,
        &admin,
        "/admin/v1/tenants/acme/audit?from_ms=1000200&to_ms=1000300",
    );
    for d in window["data"].as_array().expect("list") {
        let ts = d["record"]["timestamp_ms"].as_u64().expect("ts");
        assert!((1_000_200..1_000_300).contains(&ts), "{ts}");
    }
}

#[test]
fn the_audit_search_is_for_admins_and_auditors_and_refuses_bad_input_with_400() {
    let host = FakeHost::new();
    let plane = plane();
    script_jwks(&host);
    fill_bucket(&host, 1, 4);
    let now_s = host.clock_ms.get() / 1000;
    let auditor = admin_token("audrey", &["acme-audit"], now_s);
    let (status, _) = get(&plane, &host, &auditor, "/admin/v1/tenants/acme/audit");
    assert_eq!(status, 200);
    for group in ["acme-money", "acme-devs", "demo-admins"] {
        let token = admin_token("x", &[group], now_s);
        let (status, body) = get(&plane, &host, &token, "/admin/v1/tenants/acme/audit");
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("admin_forbidden")),
            "{group}"
        );
    }
    for q in [
        "limit=0",
        "limit=abc",
        "tenant_id=other",
        "from_ms=9&to_ms=1",
        "outcome=fine",
        "cursor=%00",
        "key_id=a%20b",
    ] {
        let (status, body) = get(
            &plane,
            &host,
            &auditor,
            &format!("/admin/v1/tenants/acme/audit?{q}"),
        );
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{q}");
        assert!(body["error"]["param"].is_string(), "{q}");
    }
}

#[test]
fn the_routes_view_shows_targets_weights_and_live_circuits() {
    let host = FakeHost::new();
    let plane = plane();
    script_jwks(&host);
    let mut tenant = demo_tenant();
    tenant["tenant_id"] = json!("acme");
    let first_model = tenant["models"]["gpt-4o-mini"].clone();
    tenant["models"]["backup"] = first_model;
    let names = ["gpt-4o-mini".to_string(), "backup".to_string()];
    tenant["routes"] = json!({"smart": {"strategy": "weighted",
        "targets": [{"model": names[0], "weight": 3}, {"model": names[names.len() - 1], "weight": 1}]}});
    host.kv
        .borrow_mut()
        .insert("tenant:acme".into(), tenant.to_string().into_bytes());
    // One failure reported on the first target.
    let breaker = asc_core::config::routes::BreakerSettings {
        failure_threshold: 5,
        cooldown_ms: 30_000,
    };
    block_on(host.circuits(
        &TenantId("acme".into()),
        &CircuitOp::Report {
            target: names[0].clone(),
            ok: false,
            now_ms: host.clock_ms.get(),
            breaker,
        },
    ))
    .expect("reported");
    let now_s = host.clock_ms.get() / 1000;
    let dev = admin_token("dev", &["acme-devs"], now_s);
    let (status, body) = get(&plane, &host, &dev, "/admin/v1/tenants/acme/routes");
    assert_eq!(status, 200, "{body}");
    let route = &body["routes"][0];
    assert_eq!(route["id"], "smart");
    assert_eq!(route["default"]["strategy"], "weighted");
    assert_eq!(route["default"]["targets"][0]["weight"], 3);
    let first = body["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["id"] == names[0].as_str())
        .expect("first target");
    assert_eq!(first["circuit"], json!({"state": "closed", "failures": 1}));
    assert!(
        !body.to_string().contains("CANARY"),
        "no credential value, only names"
    );
    let finance = admin_token("fin", &["acme-money"], now_s);
    assert_eq!(
        get(&plane, &host, &finance, "/admin/v1/tenants/acme/routes").0,
        403
    );
}
