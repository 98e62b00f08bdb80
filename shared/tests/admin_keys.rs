//! Listing keys through the admin API a page at a time: newest first or in creation order,
//! `after` a key id, a developer's own keys only, and bad parameters refused with the name of
//! the parameter.

mod common;

use asc_core::admin::issuer::parse_issuers;
use asc_core::admin::AdminPlane;
use common::*;
use serde_json::{json, Value};

const ISSUERS: &str = r#"[{"group": "acme-admins", "role": "tenant-admin", "tenant": "acme"},
    {"group": "acme-devs", "role": "developer", "tenant": "acme"}]"#;

struct Admin {
    host: FakeHost,
    plane: AdminPlane,
}

impl Admin {
    fn new() -> Admin {
        let host = FakeHost::new();
        script_jwks(&host);
        let roles: Value = serde_json::from_str(ISSUERS).expect("roles");
        let issuers = json!([{"issuer": ADMIN_ISSUER, "audience": ADMIN_AUDIENCE,
            "jwks_uri": ADMIN_JWKS_URL, "roles": roles}]);
        let plane = AdminPlane::new(parse_issuers(&issuers.to_string()).expect("issuers"));
        Admin { host, plane }
    }

    fn call(&self, who: (&str, &str), method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        self.call_with(who, method, path, &[], body)
    }

    fn call_with(
        &self,
        who: (&str, &str),
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        let token = admin_token(who.0, &[who.1], self.host.clock_ms.get() / 1000);
        let auth = format!("Bearer {token}");
        let gw = local_gateway();
        let handled = block_on(self.plane.handle(
            &gw,
            &self.host,
            request(
                method,
                path,
                &[&[("authorization", auth.as_str())], headers].concat(),
                body,
            ),
        ));
        let asc_core::pipeline::http::ReplyBody::Full(bytes) = handled.reply.body else {
            panic!("admin replies are whole")
        };
        (
            handled.reply.status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Mints a key (a millisecond after the last, so creation order is the order of calls).
    fn mint(&self, who: (&str, &str)) -> String {
        self.host.advance(1);
        let (status, minted) = self.call(who, "POST", "/admin/v1/tenants/acme/keys", b"{}");
        assert_eq!(status, 201, "{minted}");
        minted["key"]["key_id"].as_str().expect("id").to_string()
    }

    /// The ids listed, `has_more` and `last_id` of `GET .../keys?{query}`.
    fn list(&self, who: (&str, &str), query: &str) -> (Vec<String>, bool, Value) {
        let path = format!("/admin/v1/tenants/acme/keys?{query}");
        let (status, page) = self.call(who, "GET", &path, b"");
        assert_eq!(status, 200, "{query}: {page}");
        let ids = page["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["key_id"].as_str().expect("id").to_string())
            .collect();
        (
            ids,
            page["has_more"].as_bool().expect("has_more"),
            page["last_id"].clone(),
        )
    }
}

fn acme() -> Value {
    let mut t = demo_tenant();
    t["tenant_id"] = json!("acme");
    t
}

const ADMIN: (&str, &str) = ("alice", "acme-admins");
const DEV: (&str, &str) = ("dave", "acme-devs");

#[test]
fn keys_are_listed_a_page_at_a_time_newest_first_or_in_creation_order() {
    let a = Admin::new();
    let (status, _) = a.call_with(
        ADMIN,
        "PUT",
        "/admin/v1/tenants/acme",
        &[("if-none-match", "*")],
        acme().to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    // Minted in this order: admin, dev, admin, dev, admin.
    let minted: Vec<String> = [ADMIN, DEV, ADMIN, DEV, ADMIN]
        .into_iter()
        .map(|who| a.mint(who))
        .collect();
    let newest_first: Vec<String> = minted.iter().rev().cloned().collect();

    // No parameters: the first page of 100, newest first.
    let (ids, more, last) = a.list(ADMIN, "");
    assert_eq!((ids.clone(), more), (newest_first.clone(), false));
    assert_eq!(last, json!(minted[0]));
    // Pages of two, each after the last id of the one before.
    let (p1, more1, last1) = a.list(ADMIN, "limit=2");
    assert_eq!((p1.as_slice(), more1), (&newest_first[..2], true));
    let after1 = last1.as_str().expect("last id");
    let (p2, more2, last2) = a.list(ADMIN, &format!("limit=2&after={after1}"));
    assert_eq!((p2.as_slice(), more2), (&newest_first[2..4], true));
    let after2 = last2.as_str().expect("last id");
    let (p3, more3, _) = a.list(ADMIN, &format!("limit=2&after={after2}"));
    assert_eq!((p3.as_slice(), more3), (&newest_first[4..], false));
    // Creation order.
    let (asc, more, _) = a.list(ADMIN, "order=asc&limit=3");
    assert_eq!((asc.as_slice(), more), (&minted[..3], true));
    let (rest, more, _) = a.list(ADMIN, &format!("order=asc&after={}", minted[2]));
    assert_eq!((rest.as_slice(), more), (&minted[3..], false));

    // A developer lists the keys it minted, in full pages.
    let (own, more, last) = a.list(DEV, "limit=1");
    assert_eq!((own, more), (vec![minted[3].clone()], true));
    let after = last.as_str().expect("last id");
    let (own, more, _) = a.list(DEV, &format!("limit=1&after={after}"));
    assert_eq!((own, more), (vec![minted[1].clone()], false));

    // Another's key as `after` is refused as an unknown one (it would tell that key exists).
    let path = format!("/admin/v1/tenants/acme/keys?after={}", minted[2]);
    let (status, err) = a.call(DEV, "GET", &path, b"");
    assert_eq!((status, &err["error"]["param"]), (400, &json!("after")));

    // Bad parameters: 400 naming the parameter, never a 5xx.
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("after=K%21", "after"),
        ("after=k_000000000000", "after"),
        ("order=sideways", "order"),
        ("status=active", "status"),
    ] {
        let path = format!("/admin/v1/tenants/acme/keys?{query}");
        let (status, err) = a.call(ADMIN, "GET", &path, b"");
        assert_eq!(status, 400, "{query}: {err}");
        assert_eq!(err["error"]["code"], "invalid_request", "{query}");
        assert_eq!(err["error"]["param"], param, "{query}");
    }
    assert_eq!(a.list(ADMIN, "limit=1000").0.len(), 5);

    // Rotating finds the key whoever minted it; an unknown key is a 404.
    a.host.advance(1);
    let rotate = format!("/admin/v1/tenants/acme/keys/{}/rotate", minted[1]);
    let (status, rotated) = a.call(ADMIN, "POST", &rotate, b"{}");
    assert_eq!(status, 201, "{rotated}");
    assert_eq!(rotated["retired"]["key_id"], json!(minted[1]));
    let (status, err) = a.call(
        ADMIN,
        "POST",
        "/admin/v1/tenants/acme/keys/k_000000000000/rotate",
        b"{}",
    );
    assert_eq!((status, &err["error"]["code"]), (404, &json!("not_found")));
    // The replacement is the newest key.
    let replacement = rotated["key"]["key_id"].as_str().expect("id");
    assert_eq!(a.list(ADMIN, "limit=1").0, [replacement]);
}
