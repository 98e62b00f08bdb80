//! The admin plane on the Spin host: the tenant's admin store as a versioned SQLite row
//! (`admin/<tenant>`, compare-and-swap), configs and key records published to key-value, and the
//! admin records forwarded into the audit trail like any ledger's.

mod support;

use std::rc::Rc;

use asc_core::host::Chunks;
use asc_core::pipeline::http::Inbound;
use asc_core::pipeline::AfterResponse;
use asc_spin::app;
use serde_json::{json, Value};
use support::common::*;
use support::TestPlatform;

fn req(
    method: &str,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Inbound<Chunks> {
    let auth = format!("Bearer {token}");
    let mut h: Vec<(&str, &str)> = vec![("authorization", &auth)];
    h.extend_from_slice(extra);
    request(method, path, &h, body)
}

/// An instance with the admin plane on for tenant `acme`: the fake host, the platform, the
/// instance, a token of acme's admin, and a config for acme.
fn acme_admin() -> (
    Rc<FakeHost>,
    TestPlatform,
    app::Prepared<TestPlatform>,
    String,
    String,
) {
    let fake = Rc::new(FakeHost::new());
    let platform = TestPlatform::new(fake.clone());
    platform.set_var("admin_issuers", &admin_issuers(&["acme"]));
    let prepared = block_on(app::prepare(platform.instance())).expect("deployment");
    script_jwks(&fake);
    let token = admin_token("alice", &["acme-admins"], fake.clock_ms.get() / 1000);
    let mut config = demo_tenant();
    config["tenant_id"] = json!("acme");
    (fake, platform, prepared, token, config.to_string())
}

#[test]
fn configs_and_keys_on_spin() {
    let (fake, platform, prepared, token, body) = acme_admin();

    let put = |if_match: (&str, &str)| {
        block_on(app::admin(
            &prepared,
            req(
                "PUT",
                "/admin/v1/tenants/acme",
                &token,
                &[if_match],
                body.as_bytes(),
            ),
        ))
    };
    let (status, headers, _, _) = put(("if-none-match", "*"));
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(k, v)| k == "etag" && v == "\"1\""));
    assert_eq!(
        fake.kv.borrow().get("tenant:acme"),
        Some(&body.clone().into_bytes())
    );
    let (status, _, err, _) = put(("if-match", "\"0\""));
    assert_eq!(status, 412);
    assert_eq!(
        serde_json::from_slice::<Value>(&err).expect("json")["error"]["code"],
        "version_mismatch"
    );
    // The store is one versioned row beside the ledgers.
    let rows = platform.query("SELECT version FROM asc_ledger WHERE id = 'admin/acme'");
    assert_eq!(rows.len(), 1);

    // Another instance sees the same store.
    let other = block_on(app::prepare(platform.instance())).expect("deployment");
    let (status, _, history, _) = block_on(app::admin(
        &other,
        req("GET", "/admin/v1/tenants/acme/history", &token, &[], b""),
    ));
    assert_eq!(status, 200);
    let history: Value = serde_json::from_slice(&history).expect("json");
    assert_eq!(history["versions"].as_array().map(Vec::len), Some(1));

    // A minted key is published and works on the request path.
    let (status, _, minted, _) = block_on(app::admin(
        &prepared,
        req("POST", "/admin/v1/tenants/acme/keys", &token, &[], b"{}"),
    ));
    assert_eq!(status, 201);
    let minted: Value = serde_json::from_slice(&minted).expect("json");
    let key = minted["secret"].as_str().expect("secret");
    let auth = format!("Bearer {key}");
    let handled = block_on(prepared.gateway.handle(
        &prepared.host,
        request("GET", "/v1/models", &[("authorization", &auth)], b""),
    ));
    assert_eq!(handled.reply.status, 200);

    // The admin records leave the tenant's ledger for the audit stream like request records;
    // the sweep skips the admin store's row.
    block_on(app::after_response(&prepared, AfterResponse::default()));
    block_on(app::after_response(&other, AfterResponse::default()));
    let ops = platform.query("SELECT entries FROM asc_audit_batch");
    let text = format!("{ops:?}");
    assert!(
        text.contains("admin.tenant.put") && text.contains("admin.key.mint"),
        "{text}"
    );
    assert!(!text.contains(key));
    block_on(app::sweep(&prepared.deployment, &prepared.host)).expect("sweep skips admin rows");
}

#[test]
fn changes_the_key_value_store_refused_are_written_by_the_flush_endpoint() {
    let (fake, platform, prepared, token, body) = acme_admin();
    let call = |method: &str, path: &str, extra: &[(&str, &str)], body: &[u8]| {
        let (status, _, reply, _) = block_on(app::admin(
            &prepared,
            req(method, path, &token, extra, body),
        ));
        (
            status,
            serde_json::from_slice::<Value>(&reply).expect("json"),
        )
    };

    fake.config_store_down.set(true);
    let (status, put) = call(
        "PUT",
        "/admin/v1/tenants/acme",
        &[("if-none-match", "*")],
        body.as_bytes(),
    );
    assert_eq!((status, &put["published"]), (200, &json!(false)), "{put}");
    let (status, minted) = call("POST", "/admin/v1/tenants/acme/keys", &[], b"{}");
    assert_eq!(
        (status, &minted["published"]),
        (201, &json!(false)),
        "{minted}"
    );
    let key = minted["secret"].as_str().expect("secret").to_string();
    assert!(fake.kv.borrow().get("tenant:acme").is_none());
    let models = || {
        let auth = format!("Bearer {key}");
        block_on(prepared.gateway.handle(
            &prepared.host,
            request("GET", "/v1/models", &[("authorization", &auth)], b""),
        ))
        .reply
        .status
    };
    assert_eq!(models(), 401);
    // The queue is in the store's row, where the flush endpoint's query finds it.
    let found = platform.query(app::UNPUBLISHED_ADMIN_STORES);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0][0].as_str(), Some("admin/acme"));
    assert_eq!(block_on(app::publish_admin_stores(&prepared.host)), Ok(1));

    // The store is back: one pass writes both, and the row's queue is empty.
    fake.config_store_down.set(false);
    let other = block_on(app::prepare(platform.instance())).expect("deployment");
    assert_eq!(block_on(app::publish_admin_stores(&other.host)), Ok(0));
    assert_eq!(
        fake.kv.borrow().get("tenant:acme"),
        Some(&body.clone().into_bytes())
    );
    assert!(platform.query(app::UNPUBLISHED_ADMIN_STORES).is_empty());
    assert_eq!(models(), 200);
}
