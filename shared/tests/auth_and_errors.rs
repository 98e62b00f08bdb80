//! Scenarios through the whole pipeline with the fake host: keys, tenants, and every error path
//! of the foundation (status, stable code, OpenAI shape, and no upstream call when refused).

mod common;

use asc_core::apikey::Scope;
use asc_core::audit::Outcome;
use asc_core::host::HostError;
use common::*;
use serde_json::json;

fn setup() -> (asc_core::Gateway, FakeHost, String) {
    let host = FakeHost::new();
    host.put_tenant(&demo_tenant());
    let key = host.mint_key("demo", 1, &all_scopes());
    (local_gateway(), host, key)
}

fn hello() -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]})
}

/// W3C Trace Context: the trace id carries on under ASC's own span, and `tracestate` (the
/// specification's own example value) is passed on unchanged, for completions and embeddings alike.
#[test]
fn trace_context_reaches_the_upstream_on_every_endpoint() {
    let (gw, host, key) = setup();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let tracestate = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let auth = format!("Bearer {key}");
    host.script(ok_json(completion_json()));
    host.script(ok_json(
        include_bytes!("fixtures/openai/embeddings-response.json").to_vec(),
    ));
    let calls = [
        ("/v1/chat/completions", hello()),
        (
            "/v1/embeddings",
            json!({"model": "gpt-4o-mini", "input": "The food was delicious"}),
        ),
    ];
    for (path, body) in &calls {
        let req = request(
            "POST",
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("traceparent", traceparent),
                ("tracestate", tracestate),
            ],
            &serde_json::to_vec(body).expect("json"),
        );
        let (status, _, body) = run(&gw, &host, req);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    }
    let sent = host.sent.borrow();
    assert_eq!(sent.len(), 2);
    for (call, (path, _)) in sent.iter().zip(&calls) {
        assert_eq!(call.header("tracestate"), Some(tracestate), "{path}");
        let parent = call.header("traceparent").expect("traceparent");
        assert!(
            parent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{path}: same trace id, got {parent}"
        );
        assert!(
            !parent.contains("00f067aa0ba902b7"),
            "{path}: ASC's span is the parent"
        );
    }
}

#[test]
fn a_chat_completion_is_served_and_audited() {
    let (gw, host, key) = setup();
    host.script(ok_json(completion_json()));
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut req = chat(&key, &hello());
    req.headers.push(("traceparent".into(), traceparent.into()));
    let (status, headers, body) = run(&gw, &host, req);

    assert_eq!(status, 200);
    assert_eq!(
        body,
        completion_json(),
        "the upstream body passes through unchanged"
    );
    let request_id = header(&headers, "x-request-id").expect("x-request-id");
    assert!(request_id.starts_with("req_"));

    let sent = host.sent.borrow()[0].clone();
    assert_eq!(sent.url, "http://127.0.0.1:9100/v1/chat/completions");
    assert_eq!(
        sent.body["model"], "gpt-4o-mini-2024-07-18",
        "model mapped to the upstream name"
    );
    assert_eq!(sent.body["messages"], hello()["messages"]);
    assert_eq!(
        sent.header("authorization"),
        Some(&*format!("Bearer {UPSTREAM_KEY}"))
    );
    let upstream_trace = sent
        .header("traceparent")
        .expect("traceparent sent upstream");
    assert!(upstream_trace.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
    assert!(
        !upstream_trace.contains("b7ad6b7169203331"),
        "ASC's own span is the parent"
    );
    assert_eq!(sent.timeout_ms, 5000);

    let audit = host.audit.borrow();
    assert_eq!(audit.len(), 1);
    let rec = &audit[0];
    assert_eq!(rec.request_id, request_id);
    assert_eq!(rec.tenant_id.as_deref(), Some("demo"));
    assert_eq!(rec.key_id.as_deref(), Some("k_1"));
    assert_eq!(rec.outcome, Outcome::Ok);
    assert_eq!(rec.requested_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(rec.served_model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(rec.endpoint_host.as_deref(), Some("127.0.0.1"));
    let usage = rec.usage.expect("usage");
    assert_eq!(
        (
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens
        ),
        (13, 7, 4)
    );
    assert_eq!(rec.trace_id, "0af7651916cd43dd8448eb211c80319c");
}

#[test]
fn secrets_never_reach_replies_or_audit_records() {
    let (gw, host, key) = setup();
    host.script(Scripted::Fail(HostError::Unreachable(
        "connect refused".into(),
    )));
    let (_, headers, body) = run(&gw, &host, chat(&key, &hello()));
    let audit = serde_json::to_string(&*host.audit.borrow()).expect("json");
    for haystack in [
        String::from_utf8_lossy(&body).to_string(),
        format!("{headers:?}"),
        audit,
    ] {
        assert!(
            !haystack.contains("CANARY"),
            "upstream key leaked: {haystack}"
        );
        assert!(
            !haystack.contains(&key[4..]),
            "client key leaked: {haystack}"
        );
        assert!(
            !haystack.contains(KEY_SECRET),
            "hash secret leaked: {haystack}"
        );
    }
}

fn expect_error(
    gw: &asc_core::Gateway,
    host: &FakeHost,
    req: asc_core::pipeline::http::Inbound<asc_core::host::Chunks>,
    status: u16,
    code: &str,
) -> Vec<(String, String)> {
    let sent_before = host.sent_count();
    let (got, headers, body) = run(gw, host, req);
    assert_eq!(
        (got, error_code(&body).as_str()),
        (status, code),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(v["error"]["type"].is_string());
    assert!(header(&headers, "x-request-id").is_some());
    if status < 500 && status != 429 {
        assert_eq!(
            host.sent_count(),
            sent_before,
            "a refused request never reaches the upstream"
        );
    }
    headers
}

#[test]
fn missing_malformed_unknown_and_revoked_keys() {
    let (gw, host, key) = setup();
    let no_auth = request(
        "POST",
        "/v1/chat/completions",
        &[],
        hello().to_string().as_bytes(),
    );
    expect_error(&gw, &host, no_auth, 401, "missing_api_key");

    // A mistyped key fails its checksum before any KV read.
    let reads = host.kv_reads.get();
    let mut typo = key.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    expect_error(&gw, &host, chat(&typo, &hello()), 401, "invalid_api_key");
    assert_eq!(
        host.kv_reads.get(),
        reads,
        "checksum failures cost no KV read"
    );

    // Well-formed but never issued.
    let stranger = asc_core::apikey::new_key(&[99; 32]);
    expect_error(
        &gw,
        &host,
        chat(&stranger, &hello()),
        401,
        "invalid_api_key",
    );

    // x-api-key works like Bearer.
    host.script(ok_json(completion_json()));
    let req = request(
        "POST",
        "/v1/chat/completions",
        &[("x-api-key", &key)],
        hello().to_string().as_bytes(),
    );
    assert_eq!(run(&gw, &host, req).0, 200);

    // Revocation takes effect once the key cache entry expires.
    host.revoke(&key);
    host.advance(10_001);
    expect_error(&gw, &host, chat(&key, &hello()), 401, "revoked_api_key");
}

/// Sets a key record's expiry, as a rotation does for the key it replaces.
fn expire_key(host: &FakeHost, key: &str, at_ms: u64) {
    use asc_core::apikey::{record_name, ApiKey, KeyRecord};
    let hash = ApiKey::parse(key)
        .expect("key")
        .hash(&asc_core::secret::Secret::new(KEY_SECRET));
    let mut kv = host.kv.borrow_mut();
    let name = record_name(&hash);
    let mut record: KeyRecord = serde_json::from_slice(&kv[&name]).expect("record");
    record.expires_ms = Some(at_ms);
    kv.insert(name, serde_json::to_vec(&record).expect("json"));
}

/// The trail shows who presented a credential that may not be used: a revoked key, an expired
/// (rotated) key and a key without the scope are refused and recorded in their tenant's trail,
/// with the key, the operation and the refusal's status and code, after the reply. A key nobody
/// issued names no tenant: it is counted into the region's trail instead (`tests/refusals.rs`).
#[test]
fn refused_credentials_of_a_known_tenant_are_in_its_trail() {
    let (gw, host, key) = setup();
    // The last `n` records, each as "tenant key operation status code".
    let refused = |n: usize| -> Vec<String> {
        let audit = host.audit.borrow();
        audit[audit.len() - n..]
            .iter()
            .map(|r| {
                assert_eq!(r.outcome, Outcome::Refused, "{r:?}");
                assert_eq!(r.usage.map(|u| u.input_tokens).unwrap_or(0), 0);
                format!(
                    "{} {} {} {} {}",
                    r.tenant_id.as_deref().unwrap_or("-"),
                    r.key_id.as_deref().unwrap_or("-"),
                    r.operation,
                    r.status,
                    r.error_code.as_deref().unwrap_or("-"),
                )
            })
            .collect()
    };

    let stranger = asc_core::apikey::new_key(&[99; 32]);
    expect_error(
        &gw,
        &host,
        chat(&stranger, &hello()),
        401,
        "invalid_api_key",
    );
    let unattributed = host.audit.borrow_mut().drain(..).collect::<Vec<_>>();
    assert!(
        matches!(&unattributed[..], [r] if r.tenant_id.is_none() && r.error_code.as_deref() == Some("invalid_api_key")),
        "an unknown key names no tenant: {unattributed:?}"
    );

    let models_only = host.mint_key("demo", 2, &[Scope::Models]);
    expect_error(
        &gw,
        &host,
        chat(&models_only, &hello()),
        403,
        "insufficient_scope",
    );
    let usage = request(
        "GET",
        "/v1/usage",
        &[("authorization", &format!("Bearer {models_only}"))],
        b"",
    );
    expect_error(&gw, &host, usage, 403, "insufficient_scope");
    assert_eq!(
        refused(2),
        [
            "demo k_2 chat.completions 403 insufficient_scope",
            "demo k_2 usage.read 403 insufficient_scope",
        ]
    );

    let rotated = host.mint_key("demo", 3, &all_scopes());
    expire_key(&host, &rotated, host.clock_ms.get());
    let messages = request(
        "POST",
        "/v1/messages",
        &[("x-api-key", rotated.as_str()), ("anthropic-version", "2023-06-01")],
        json!({"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]})
            .to_string()
            .as_bytes(),
    );
    let (status, _, body) = run(&gw, &host, messages);
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    host.revoke(&key);
    host.advance(10_001);
    expect_error(&gw, &host, chat(&key, &hello()), 401, "revoked_api_key");
    assert_eq!(
        refused(2),
        [
            "demo k_3 messages 401 expired_api_key",
            "demo k_1 chat.completions 401 revoked_api_key",
        ]
    );
    assert_eq!(host.audit.borrow().len(), 4);
    assert_eq!(host.sent_count(), 0, "nothing refused reached the upstream");

    // The record goes after the reply, with the isolate's next ledger call (group commit): the
    // refusal does not wait for the ledger, and repeated attempts cost it one call per group.
    let asc_core::pipeline::Handled { reply, after } =
        block_on(gw.handle(&host, chat(&key, &hello())));
    assert_eq!(reply.status, 401);
    assert_eq!(
        host.audit.borrow().len(),
        4,
        "nothing stored before the reply"
    );
    assert!(
        matches!(
            after.work(),
            [asc_core::pipeline::Deferred::Ledger(_, op, _)]
                if matches!(**op, asc_core::ledger::LedgerOp::Record(_))
        ),
        "{:?}",
        after.work()
    );
    assert!(block_on(after.run(&gw, &host)).is_empty());
    assert_eq!(
        refused(1),
        ["demo k_1 chat.completions 401 revoked_api_key"]
    );
    assert_eq!(host.audit.borrow().len(), 5);
    // Without the ledger the refusal still goes out; its record is what is lost.
    host.ledger_down.set(true);
    expect_error(&gw, &host, chat(&key, &hello()), 401, "revoked_api_key");
    assert_eq!(host.audit.borrow().len(), 5);
}

/// A dead key of a tenant that lives in another region is refused here and not recorded in its
/// tenant's trail, which is kept in its own region (its ledger is not started in this one): this
/// region's trail counts it among the refusals before a tenant was known, by key id.
#[test]
fn a_dead_key_of_another_regions_tenant_is_counted_in_this_regions_trail_only() {
    let host = FakeHost::new();
    let mut tenant = demo_tenant();
    tenant["residency"] = json!("eu");
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    host.revoke(&key);
    let gw = local_gateway();
    expect_error(&gw, &host, chat(&key, &hello()), 401, "revoked_api_key");
    let ledgers: Vec<String> = host.ledgers.borrow().keys().cloned().collect();
    assert!(
        matches!(&ledgers[..], [l] if l.starts_with(&format!("{}#", asc_core::pipeline::UNATTRIBUTED_LEDGER))),
        "no tenant ledger started here: {ledgers:?}"
    );
    let audit = host.audit.borrow();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].tenant_id, None);
    assert_eq!(audit[0].key_id.as_deref(), Some("k_1"));
    assert_eq!(audit[0].error_code.as_deref(), Some("revoked_api_key"));
}

#[test]
fn scopes_are_enforced() {
    let (gw, host, _) = setup();
    let models_only = host.mint_key("demo", 2, &[Scope::Models]);
    expect_error(
        &gw,
        &host,
        chat(&models_only, &hello()),
        403,
        "insufficient_scope",
    );
    let auth = format!("Bearer {models_only}");
    let (status, _, body) = run(
        &gw,
        &host,
        request("GET", "/v1/models", &[("authorization", &auth)], b""),
    );
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "gpt-4o-mini");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
}

#[test]
fn bad_bodies_get_400s_with_their_param() {
    let (gw, host, key) = setup();
    let auth = format!("Bearer {key}");
    let raw = |body: &[u8]| {
        request(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            body,
        )
    };
    expect_error(&gw, &host, raw(b"{\"model\": "), 400, "invalid_json");
    expect_error(&gw, &host, raw(b"[1,2]"), 400, "invalid_request");
    expect_error(
        &gw,
        &host,
        raw(b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"),
        400,
        "missing_required_parameter",
    );
    expect_error(
        &gw,
        &host,
        raw(b"{\"model\":\"gpt-4o-mini\"}"),
        400,
        "missing_required_parameter",
    );
    expect_error(
        &gw,
        &host,
        raw(b"{\"model\":\"gpt-4o-mini\",\"messages\":[]}"),
        400,
        "invalid_request",
    );
    expect_error(
        &gw,
        &host,
        raw(b"{\"model\":5,\"messages\":[1]}"),
        400,
        "invalid_request",
    );
    expect_error(
        &gw,
        &host,
        raw(b"{\"model\":\"gpt-4o-mini\",\"messages\":[1],\"stream\":\"yes\"}"),
        400,
        "invalid_request",
    );
    expect_error(&gw, &host, raw(&[0xff, 0xfe, 0x00]), 400, "invalid_json");
}

#[test]
fn unknown_and_unapproved_models() {
    let (gw, host, key) = setup();
    let ask = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "x"}]});
    expect_error(
        &gw,
        &host,
        chat(&key, &ask("gpt-4o-mni")),
        404,
        "model_not_found",
    );
    expect_error(
        &gw,
        &host,
        chat(&key, &ask("gpt-4.1")),
        403,
        "model_not_approved",
    );
    let audit = host.audit.borrow();
    assert_eq!(audit.last().map(|r| r.outcome), Some(Outcome::Refused));
    assert_eq!(
        audit.last().and_then(|r| r.error_code.clone()).as_deref(),
        Some("model_not_approved")
    );
}

#[test]
fn bodies_over_the_limit_are_refused_before_parsing() {
    let host = FakeHost::new();
    let mut tenant = demo_tenant();
    tenant["limits"] = json!({"max_request_bytes": 2048});
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    let auth = format!("Bearer {key}");
    // Declared too large: refused from Content-Length alone, even though the body is not JSON.
    let declared = request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth), ("content-length", "4096")],
        b"not json",
    );
    expect_error(&gw, &host, declared, 413, "request_too_large");
    // Undeclared (chunked): refused while reading, still before parsing.
    let big = vec![b'x'; 4096];
    let chunked = request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        &big,
    );
    expect_error(&gw, &host, chunked, 413, "request_too_large");
    // Exactly at the limit is fine (and then fails as the JSON it is not).
    let exact = vec![b' '; 2048];
    let at_limit = request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        &exact,
    );
    expect_error(&gw, &host, at_limit, 400, "invalid_json");
}

#[test]
fn upstream_failures_become_502_504_and_429() {
    let (gw, host, key) = setup();
    let error_body =
        br#"{"error":{"message":"boom","type":"server_error","param":null,"code":null}}"#.to_vec();
    host.script(Scripted::Reply {
        status: 500,
        headers: vec![],
        chunks: vec![Ok(error_body)],
    });
    expect_error(&gw, &host, chat(&key, &hello()), 502, "upstream_error");

    host.script(Scripted::Fail(HostError::Timeout));
    expect_error(&gw, &host, chat(&key, &hello()), 504, "upstream_timeout");

    host.script(Scripted::Fail(HostError::Unreachable("dns".into())));
    expect_error(
        &gw,
        &host,
        chat(&key, &hello()),
        502,
        "upstream_unreachable",
    );

    host.script(Scripted::Reply {
        status: 401,
        headers: vec![],
        chunks: vec![Ok(b"{}".to_vec())],
    });
    expect_error(
        &gw,
        &host,
        chat(&key, &hello()),
        502,
        "upstream_auth_failed",
    );

    host.script(Scripted::Reply {
        status: 429,
        headers: vec![("retry-after".into(), "7".into())],
        chunks: vec![Ok(b"{}".to_vec())],
    });
    let headers = expect_error(
        &gw,
        &host,
        chat(&key, &hello()),
        429,
        "upstream_rate_limited",
    );
    assert_eq!(header(&headers, "retry-after"), Some("7"));

    host.script(ok_json(b"<html>bad gateway</html>".to_vec()));
    expect_error(
        &gw,
        &host,
        chat(&key, &hello()),
        502,
        "upstream_bad_response",
    );

    let audit = host.audit.borrow();
    assert!(
        audit.iter().all(|r| r.outcome == Outcome::Error),
        "{audit:?}"
    );
    assert_eq!(audit.len(), 6);
}

#[test]
fn a_missing_upstream_credential_is_a_gateway_problem() {
    let (gw, host, key) = setup();
    host.secrets.borrow_mut().remove("OPENAI_API_KEY");
    expect_error(
        &gw,
        &host,
        chat(&key, &hello()),
        502,
        "upstream_auth_failed",
    );
}

#[test]
fn tenant_config_problems() {
    let host = FakeHost::new();
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    expect_error(
        &gw,
        &host,
        chat(&key, &hello()),
        403,
        "tenant_not_configured",
    );

    let mut bad = demo_tenant();
    bad["models"]["gpt-4o-mini"]["timeout_ms"] = json!(-1);
    host.put_tenant(&bad);
    host.advance(30_001);
    let (status, _, body) = run(&gw, &host, chat(&key, &hello()));
    assert_eq!(
        (status, error_code(&body).as_str()),
        (503, "tenant_config_invalid")
    );
    assert!(
        String::from_utf8_lossy(&body).contains("models[\\\"gpt-4o-mini\\\"].timeout_ms"),
        "names the path: {}",
        String::from_utf8_lossy(&body)
    );
}

#[test]
fn routes_and_methods() {
    let (gw, host, key) = setup();
    let auth = format!("Bearer {key}");
    expect_error(
        &gw,
        &host,
        request("GET", "/v1/nope", &[("authorization", &auth)], b""),
        404,
        "unknown_url",
    );
    expect_error(
        &gw,
        &host,
        request(
            "GET",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            b"",
        ),
        405,
        "method_not_allowed",
    );
    let (status, headers, body) = run(
        &gw,
        &host,
        request("GET", "/healthz", &[("host", "anything")], b""),
    );
    assert_eq!(status, 200);
    assert_eq!(body, br#"{"status":"ok","region":"local"}"#);
    assert_eq!(header(&headers, "x-asc-region"), Some("local"));
}

#[test]
fn rate_limits_hold_and_reset_at_the_window() {
    let host = FakeHost::new();
    let mut tenant = demo_tenant();
    tenant["limits"] = json!({"requests_per_minute": 2});
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    for _ in 0..2 {
        host.script(ok_json(completion_json()));
        assert_eq!(run(&gw, &host, chat(&key, &hello())).0, 200);
    }
    let headers = expect_error(&gw, &host, chat(&key, &hello()), 429, "rate_limit_exceeded");
    let retry: u64 = header(&headers, "retry-after")
        .expect("retry-after")
        .parse()
        .expect("int");
    assert!((1..=60).contains(&retry));
    assert_eq!(host.sent_count(), 2, "the refused request was not sent");
    host.advance(retry * 1000);
    host.script(ok_json(completion_json()));
    assert_eq!(run(&gw, &host, chat(&key, &hello())).0, 200);
}

#[test]
fn a_ledger_outage_fails_closed_before_anything_is_sent() {
    // Without its write-ahead record a request could not be accounted for: it is not sent.
    let (gw, host, key) = setup();
    host.ledger_down.set(true);
    let (status, _, body) = run(&gw, &host, chat(&key, &hello()));
    assert_eq!(
        (status, error_code(&body).as_str()),
        (503, "store_unavailable")
    );
    assert_eq!(host.sent_count(), 0);
    // Read-only requests are recorded before they are answered: refused too.
    let models = request(
        "GET",
        "/v1/models",
        &[("authorization", &format!("Bearer {key}"))],
        b"",
    );
    let (status, _, body) = run(&gw, &host, models);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (503, "audit_unavailable")
    );
    let text = String::from_utf8(body).expect("utf8");
    assert!(
        !text.contains("ledger down"),
        "internal detail stays out: {text}"
    );
}

/// A new isolate's first chat needs the key record, the tenant config and the price table from
/// KV. The table does not depend on the caller, so it is read while the key record's read is in
/// flight: the request waits for two reads in series, not three. Once cached it is not read
/// again, and a route that prices nothing (`/v1/models`) never reads it.
#[test]
fn a_cold_chat_reads_the_price_table_alongside_the_key_record() {
    let (gw, host, key) = setup();
    host.kv_yields.set(true);
    host.script(ok_json(completion_json()));
    let (status, _, body) = run(&gw, &host, chat(&key, &hello()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let log = host.kv_log.borrow().clone();
    let keys: Vec<&str> = log.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 3, "{log:?}");
    assert!(keys[0].starts_with("key:"), "{log:?}");
    assert_eq!(
        log[1],
        ("prices:current".to_string(), 2),
        "begun while the key record's read was in flight"
    );
    assert_eq!(keys[2], "tenant:demo", "{log:?}");

    host.kv_log.borrow_mut().clear();
    host.script(ok_json(completion_json()));
    assert_eq!(run(&gw, &host, chat(&key, &hello())).0, 200);
    assert!(host.kv_log.borrow().is_empty(), "all three cached");

    let (gw, host, key) = setup();
    let models = request(
        "GET",
        "/v1/models",
        &[("authorization", &format!("Bearer {key}"))],
        b"",
    );
    assert_eq!(run(&gw, &host, models).0, 200);
    let log = host.kv_log.borrow();
    assert!(
        log.iter().all(|(k, _)| k != "prices:current"),
        "the model list prices nothing: {log:?}"
    );
}
