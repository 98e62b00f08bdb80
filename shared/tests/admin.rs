//! The admin plane through the fake host: tokens from a test identity provider (EdDSA, its
//! JWKS fetched through the egress gate as a scripted upstream reply), config versions with
//! If-Match, keys minted here used on the request path, and every action in the audit log.

mod common;

use asc_core::admin::issuer::parse_issuers;
use asc_core::admin::AdminPlane;
use asc_core::host::Chunks;
use asc_core::pipeline::http::{Inbound, ReplyBody};
use common::*;
use serde_json::{json, Value};

fn plane() -> AdminPlane {
    AdminPlane::new(parse_issuers(&admin_issuers(&["acme", "demo"])).expect("issuers"))
}

fn acme() -> Value {
    let mut t = demo_tenant();
    t["tenant_id"] = json!("acme");
    t
}

fn call(
    plane: &AdminPlane,
    host: &FakeHost,
    req: Inbound<Chunks>,
) -> (u16, Vec<(String, String)>, Value, Vec<u8>) {
    let gw = local_gateway();
    let handled = block_on(plane.handle(&gw, host, req));
    if let Some(at_ms) = handled.refusals_due {
        assert!(block_on(gw.send_refusals(host, at_ms)).is_empty());
    }
    let reply = handled.reply;
    let ReplyBody::Full(body) = reply.body else {
        panic!("admin replies are whole")
    };
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (reply.status, reply.headers, json, body)
}

fn with_token<'a>(token: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, String)> {
    let mut h = vec![("authorization", format!("Bearer {token}"))];
    h.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    h
}

fn req(method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Inbound<Chunks> {
    let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    request(method, path, &hs, body)
}

/// A host whose identity provider the plane trusts, the plane, and a token of acme's admin.
fn acme_admin() -> (FakeHost, AdminPlane, String) {
    let host = FakeHost::new();
    script_jwks(&host);
    let now_s = host.clock_ms.get() / 1000;
    let admin = admin_token("alice", &["acme-admins"], now_s);
    (host, plane(), admin)
}

#[test]
fn configs_keys_and_audit_through_the_fake_host() {
    let (host, plane, admin) = acme_admin();
    let now_s = host.clock_ms.get() / 1000;
    let h = with_token(&admin, &[("if-none-match", "*")]);

    // Create, then a stale write and a write from the other tenant's admin.
    let body = acme().to_string();
    let (status, headers, _, _) = call(
        &plane,
        &host,
        req("PUT", "/admin/v1/tenants/acme", &h, body.as_bytes()),
    );
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(k, v)| k == "etag" && v == "\"1\""));
    assert_eq!(
        host.kv.borrow().get("tenant:acme"),
        Some(&body.clone().into_bytes())
    );
    let (status, _, err, _) = call(
        &plane,
        &host,
        req("PUT", "/admin/v1/tenants/acme", &h, body.as_bytes()),
    );
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (412, Some("version_mismatch"))
    );
    let demo_admin = admin_token("mallory", &["demo-admins"], now_s);
    let (status, _, err, _) = call(
        &plane,
        &host,
        req(
            "GET",
            "/admin/v1/tenants/acme",
            &with_token(&demo_admin, &[]),
            b"",
        ),
    );
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (403, Some("admin_forbidden"))
    );

    // A key minted here works on the request path until it is revoked.
    let (status, _, minted, _) = call(
        &plane,
        &host,
        req(
            "POST",
            "/admin/v1/tenants/acme/keys",
            &with_token(&admin, &[]),
            b"{}",
        ),
    );
    assert_eq!(status, 201, "{minted}");
    let secret = minted["secret"].as_str().expect("secret").to_string();
    let gw = local_gateway();
    let models = |key: &str| {
        run(
            &gw,
            &host,
            request(
                "GET",
                "/v1/models",
                &[("authorization", &format!("Bearer {key}"))],
                b"",
            ),
        )
        .0
    };
    assert_eq!(models(&secret), 200);
    let key_id = minted["key"]["key_id"].as_str().expect("id").to_string();
    let path = format!("/admin/v1/tenants/acme/keys/{key_id}/revoke");
    assert_eq!(
        call(
            &plane,
            &host,
            req("POST", &path, &with_token(&admin, &[]), b"")
        )
        .0,
        200
    );
    host.advance(11_000); // past another isolate's key cache
    assert_eq!(models(&secret), 401);

    // An expired token: 401 (exp + 60 s skew).
    host.advance(400_000);
    let (status, _, err, _) = call(
        &plane,
        &host,
        req(
            "GET",
            "/admin/v1/tenants/acme",
            &with_token(&admin, &[]),
            b"",
        ),
    );
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("invalid_admin_token"))
    );
    let (status, _, err, _) = call(
        &plane,
        &host,
        req("POST", "/admin/v1/tenants/acme/keys/k_1/revoke", &[], b""),
    );
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("missing_admin_token"))
    );
    // Refused before a token was verified: no admin to record them under, so the region's
    // trail counts them (operation `admin`, no tenant), never the token.
    let unverified: Vec<Value> = host
        .events
        .borrow()
        .iter()
        .map(|e| serde_json::to_value(e).expect("json"))
        .filter(|e| e["operation"] == "admin")
        .collect();
    let codes: Vec<(&str, &Value, &Value)> = unverified
        .iter()
        .map(|e| {
            (
                e["error_code"].as_str().unwrap_or(""),
                &e["tenant_id"],
                &e["refusals"]["count"],
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("invalid_admin_token", &Value::Null, &json!(1)),
            ("missing_admin_token", &Value::Null, &json!(1)),
        ]
    );
    let text = serde_json::to_string(&unverified).expect("json");
    assert!(!text.contains(admin.split('.').nth(2).expect("sig")));

    // Every action past authentication is one audit record, with who and what, never a secret.
    let admin_events = admin_events(&host);
    let ops: Vec<(&str, &str)> = admin_events
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("admin.tenant.put", "ok"),
            ("admin.tenant.put", "refused"),
            ("admin.tenant.get", "refused"),
            ("admin.key.mint", "ok"),
            ("admin.key.revoke", "ok"),
        ]
    );
    let put = &admin_events[0];
    assert_eq!(put["admin"]["subject"], "alice");
    assert_eq!(put["admin"]["version_before"], 0);
    assert_eq!(put["admin"]["version_after"], 1);
    assert_eq!(put["actor"], "operator:alice");
    let all = serde_json::to_string(&admin_events).expect("json");
    assert!(!all.contains(&secret) && !all.contains(admin.split('.').nth(2).expect("sig")));
    // One JWKS fetch for all of it (cached), through the egress gate.
    let sent = host.sent.borrow();
    assert_eq!(sent.iter().filter(|s| s.url == ADMIN_JWKS_URL).count(), 1);
}

/// The admin records of the trail so far, as JSON.
fn admin_events(host: &FakeHost) -> Vec<Value> {
    host.events
        .borrow()
        .iter()
        .map(|e| serde_json::to_value(e).expect("json"))
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with("admin."))
        })
        .collect()
}

#[test]
fn no_change_is_made_without_its_record_in_the_trail() {
    let (host, plane, admin) = acme_admin();
    let create = with_token(&admin, &[("if-none-match", "*")]);
    let body = acme().to_string();
    let put = |host: &FakeHost| {
        call(
            &plane,
            host,
            req("PUT", "/admin/v1/tenants/acme", &create, body.as_bytes()),
        )
    };
    let get = |host: &FakeHost| {
        call(
            &plane,
            host,
            req(
                "GET",
                "/admin/v1/tenants/acme",
                &with_token(&admin, &[]),
                b"",
            ),
        )
        .0
    };

    // The audit log cannot take the change's record before it: nothing is changed.
    host.ledger_fails
        .set(Some(|op| matches!(op, asc_core::ledger::LedgerOp::Open(_))));
    let (status, _, err, _) = put(&host);
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (503, Some("audit_unavailable"))
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nothing was changed")),
        "{err}"
    );
    assert!(host.kv.borrow().get("tenant:acme").is_none());
    assert_eq!(get(&host), 404, "no version was stored");

    // The change is made, and its final record is lost on the way to the audit log.
    host.ledger_fails.set(Some(|op| {
        matches!(op, asc_core::ledger::LedgerOp::Record(_))
    }));
    let (status, _, err, _) = put(&host);
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (503, Some("audit_unavailable"))
    );
    assert_eq!(
        host.kv.borrow().get("tenant:acme"),
        Some(&body.clone().into_bytes()),
        "the change was made and published"
    );
    host.ledger_fails.set(None);
    assert_eq!(get(&host), 200);
    let put_records = |host: &FakeHost| {
        admin_events(host)
            .into_iter()
            .filter(|e| e["operation"] == "admin.tenant.put")
            .collect::<Vec<_>>()
    };
    assert!(
        put_records(&host).is_empty(),
        "held write-ahead until expiry"
    );

    // Its record, kept by the ledger since before the change, enters the trail at expiry.
    host.advance(60_000);
    host.expire_all();
    let records = put_records(&host);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["outcome"], "partial");
    assert_eq!(r["error_code"], "request_unfinished");
    assert_eq!(r["actor"], "operator:alice");
    assert_eq!(r["tenant_id"], "acme");
    assert_eq!(r["admin"]["subject"], "alice");
}

#[test]
fn a_change_the_config_store_refused_stays_queued_until_it_is_written() {
    let (host, plane, admin) = acme_admin();
    let h = with_token(&admin, &[]);
    let put = |precondition: (&str, &str), config: &str| {
        let (status, _, reply, _) = call(
            &plane,
            &host,
            req(
                "PUT",
                "/admin/v1/tenants/acme",
                &with_token(&admin, &[precondition]),
                config.as_bytes(),
            ),
        );
        (status, reply)
    };
    let v1 = acme().to_string();
    let (status, stored) = put(("if-none-match", "*"), &v1);
    assert_eq!((status, &stored["published"]), (200, &json!(true)));
    let (status, _, minted, _) = call(
        &plane,
        &host,
        req("POST", "/admin/v1/tenants/acme/keys", &h, b"{}"),
    );
    assert_eq!((status, &minted["published"]), (201, &json!(true)));
    let secret = minted["secret"].as_str().expect("secret").to_string();
    let key_id = minted["key"]["key_id"].as_str().expect("id").to_string();
    let gw = local_gateway();
    let models = |key: &str| {
        let auth = format!("Bearer {key}");
        run(
            &gw,
            &host,
            request("GET", "/v1/models", &[("authorization", &auth)], b""),
        )
        .0
    };
    assert_eq!(models(&secret), 200);

    // KV refuses writes: the revocation and the new version are stored and recorded, and the
    // replies say they are not published yet. The request path still reads the old values.
    host.config_store_down.set(true);
    let revoke = format!("/admin/v1/tenants/acme/keys/{key_id}/revoke");
    let (status, _, revoked, _) = call(&plane, &host, req("POST", &revoke, &h, b""));
    assert_eq!((status, &revoked["published"]), (200, &json!(false)));
    assert_eq!(revoked["key"]["status"], "revoked");
    let mut v2 = acme();
    v2["models"]["gpt-4o"] = v2["models"]["gpt-4o-mini"].clone();
    let v2 = v2.to_string();
    let (status, stored) = put(("if-match", "\"1\""), &v2);
    assert_eq!(
        (status, &stored["published"]),
        (200, &json!(false)),
        "{stored}"
    );
    assert_eq!(
        host.kv.borrow().get("tenant:acme"),
        Some(&v1.clone().into_bytes())
    );
    host.advance(11_000); // past the key cache: the edge still holds the active record
    assert_eq!(models(&secret), 200);

    // KV is back: the next call to the store writes everything queued, oldest values never
    // after newer ones, and the revoked key is refused.
    host.config_store_down.set(false);
    let (status, _, other, _) = call(
        &plane,
        &host,
        req("POST", "/admin/v1/tenants/acme/keys", &h, b"{}"),
    );
    assert_eq!((status, &other["published"]), (201, &json!(true)));
    assert_eq!(
        host.kv.borrow().get("tenant:acme"),
        Some(&v2.clone().into_bytes())
    );
    host.advance(11_000);
    assert_eq!(models(&secret), 401);
    let stores = host.admin_stores.borrow();
    assert!(stores.get("acme").expect("store").unpublished().is_empty());
}
