//! The security review of issue 20, one scenario per finding, through the whole pipeline with the
//! fake host: authentication edge cases, tenant isolation of store names, redirects, upstream
//! bytes that must not panic, regex worst cases and guardrail evasions. `docs/SECURITY.md` lists
//! what is caught and what is not.

mod common;

use asc_core::audit::Outcome;
use asc_core::host::HostError;
use asc_core::ledger::LedgerOp;
use common::*;
use serde_json::json;

fn setup_with(tenant: serde_json::Value) -> (asc_core::Gateway, FakeHost, String) {
    let host = FakeHost::new();
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    (local_gateway(), host, key)
}

fn setup() -> (asc_core::Gateway, FakeHost, String) {
    setup_with(demo_tenant())
}

fn hello() -> Vec<u8> {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]})
        .to_string()
        .into_bytes()
}

fn post(
    headers: &[(&str, &str)],
    body: &[u8],
) -> asc_core::pipeline::http::Inbound<asc_core::host::Chunks> {
    request("POST", "/v1/chat/completions", headers, body)
}

fn code_of(body: &[u8]) -> String {
    error_code(body)
}

// ---- authentication ----

/// Both headers: the same key is fine; two different keys are refused (the gateway never picks
/// one silently); an empty `Authorization: Bearer` beside an `x-api-key` counts as absent. Scheme
/// case and surrounding whitespace do not matter; the key's own case does.
#[test]
fn auth_header_precedence_case_and_whitespace() {
    let (gw, host, key) = setup();
    let other = host.mint_key("demo", 2, &all_scopes());
    let bearer = format!("Bearer {key}");
    let ok = |headers: &[(&str, &str)]| {
        host.script(ok_json(completion_json()));
        let (status, _, body) = run(&gw, &host, post(headers, &hello()));
        host.script.borrow_mut().clear();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    for headers in [
        vec![
            ("authorization", bearer.clone()),
            ("x-api-key", key.clone()),
        ],
        vec![("authorization", format!("bearer {key}"))],
        vec![("authorization", format!("BEARER {key}"))],
        vec![("authorization", format!("  Bearer   {key}  "))],
        vec![("x-api-key", format!(" {key} "))],
        vec![
            ("authorization", "Bearer ".into()),
            ("x-api-key", key.clone()),
        ],
        vec![
            ("authorization", "Bearer".into()),
            ("x-api-key", key.clone()),
        ],
    ] {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(ok(&hs).0, 200, "{hs:?}");
    }
    for (headers, code) in [
        (
            vec![
                ("authorization", bearer.clone()),
                ("x-api-key", other.clone()),
            ],
            "invalid_api_key",
        ),
        (
            vec![
                ("authorization", format!("Bearer {other}")),
                ("x-api-key", key.clone()),
            ],
            "invalid_api_key",
        ),
        (
            vec![("authorization", format!("Bearer {}", key.to_uppercase()))],
            "invalid_api_key",
        ),
        (
            vec![("authorization", format!("Bearer\t{key}"))],
            "invalid_api_key",
        ),
        (
            vec![("authorization", format!("Basic {key}"))],
            "invalid_api_key",
        ),
        (
            vec![("authorization", format!("Bearer {key}, Bearer {other}"))],
            "invalid_api_key",
        ),
        (vec![("authorization", "Bearer ".into())], "missing_api_key"),
        (vec![("x-api-key", "".into())], "missing_api_key"),
    ] {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, body) = ok(&hs);
        assert_eq!(status, 401, "{hs:?}: {body}");
        assert_eq!(code_of(body.as_bytes()), code, "{hs:?}");
        assert!(
            !body.contains(&key) && !body.contains(&other),
            "no key echoed: {body}"
        );
    }
    assert_eq!(host.sent_count(), 7, "refused requests were not sent");
}

/// A revoked key keeps working for at most the key cache's 10 s in an isolate that has it cached
/// (documented), and never after; an isolate that has not cached it refuses at once.
#[test]
fn revocation_outlives_the_key_cache_by_nothing() {
    let (gw, host, key) = setup();
    host.script(ok_json(completion_json()));
    assert_eq!(
        run(
            &gw,
            &host,
            chat(&key, &json!({"model": "gpt-4o-mini", "messages": []}))
        )
        .0,
        400
    );
    host.revoke(&key);
    let fresh = local_gateway();
    let hello = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, body) = run(&fresh, &host, chat(&key, &hello));
    assert_eq!((status, code_of(&body).as_str()), (401, "revoked_api_key"));
    host.advance(9_999);
    assert_eq!(
        run(&gw, &host, chat(&key, &hello)).0,
        200,
        "cached for 10 s"
    );
    host.advance(2);
    let (status, _, body) = run(&gw, &host, chat(&key, &hello));
    assert_eq!((status, code_of(&body).as_str()), (401, "revoked_api_key"));
}

// ---- tenant isolation ----

/// Store names come from the key record's tenant and the gateway's own ids, never from the
/// request; a key record naming a tenant id that could alias another tenant's ledger shard
/// (`demo#1`) finds no valid tenant and touches no store.
#[test]
fn store_names_cannot_be_aliased_from_request_data() {
    let mut tenant = demo_tenant();
    tenant["limits"] = json!({"ledger_shards": 2});
    let (gw, host, key) = setup_with(tenant);
    // Request data that looks like store names changes nothing.
    host.script(ok_json(completion_json()));
    let req = request(
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", &format!("Bearer {key}")),
            ("x-request-id", "req_forged"),
            ("x-asc-workload", "other#1"),
            ("x-asc-tenant", "other"),
        ],
        &hello(),
    );
    assert_eq!(run(&gw, &host, req).0, 200);
    let ledgers: Vec<String> = host
        .ledger_ops
        .borrow()
        .iter()
        .map(|(l, _)| l.clone())
        .collect();
    assert!(
        ledgers.iter().all(|l| l == "demo#0" || l == "demo#1"),
        "{ledgers:?}"
    );
    assert!(host
        .events
        .borrow()
        .iter()
        .all(|e| e.record.request_id != "req_forged"));

    // A forged key record whose tenant id aliases demo's shard 1.
    let forged = host.mint_key("demo#1", 9, &all_scopes());
    host.ledger_ops.borrow_mut().clear();
    host.circuit_ops.set(0);
    let (status, _, body) = run(
        &gw,
        &host,
        chat(
            &forged,
            &json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}]}),
        ),
    );
    assert!((400..600).contains(&status) && status != 200, "{status}");
    assert_eq!(code_of(&body), "tenant_not_configured");
    // Refused before a tenant was known: only the region's own ledgers count it, once.
    let ops = host.ledger_ops.borrow();
    assert!(
        matches!(&ops[..], [(l, asc_core::ledger::LedgerOp::Record(_))]
            if l.starts_with(&format!("{}#", asc_core::pipeline::UNATTRIBUTED_LEDGER))),
        "no tenant ledger touched: {ops:?}"
    );
    drop(ops);
    assert_eq!(host.circuit_ops.get(), 0, "no circuit board touched");
}

// ---- redirects ----

/// A 3xx from an upstream is its answer, never followed (the adapters call fetch with
/// `redirect: "manual"`; wasi:http does not follow): one call, and the client gets an error, not
/// the redirect target's content.
#[test]
fn upstream_redirects_are_not_followed() {
    let (gw, host, key) = setup();
    for status in [301, 302, 303, 307, 308] {
        host.script(Scripted::Reply {
            status,
            headers: vec![("location".into(), "https://evil.example/steal".into())],
            chunks: vec![Ok(Vec::new())],
        });
        let before = host.sent_count();
        let (got, headers, body) = run(
            &gw,
            &host,
            post(&[("authorization", &format!("Bearer {key}"))], &hello()),
        );
        assert_eq!(host.sent_count(), before + 1, "{status}: one call");
        assert!(got >= 400, "{status}: answered {got}");
        assert!(
            header(&headers, "location").is_none(),
            "{status}: no Location passed on"
        );
        assert!(!String::from_utf8_lossy(&body).contains("evil.example"));
        assert!(host.sent.borrow().iter().all(|s| !s.url.contains("evil")));
    }
}

// ---- upstream bytes ----

fn stream_body() -> Vec<u8> {
    json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Hi"}]})
        .to_string()
        .into_bytes()
}

fn chunk(content: &str) -> Vec<u8> {
    format!(
        "data: {}\n\n",
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
    )
    .into_bytes()
}

/// Hostile stream bytes end the stream with the gateway's error event (or pass whole), never a
/// panic: a UTF-8 character split across chunks, invalid UTF-8, an endless event, a bare `data:`.
#[test]
fn hostile_stream_bytes_never_panic() {
    let (gw, host, key) = setup();
    let auth = format!("Bearer {key}");
    // "é" (C3 A9) split between two chunks: delivered whole.
    let whole = chunk("caf\u{e9}");
    let at = whole.iter().position(|b| *b == 0xc3).expect("c3") + 1;
    host.script(sse(vec![
        Ok(whole[..at].to_vec()),
        Ok(whole[at..].to_vec()),
        Ok(b"data: [DONE]\n\n".to_vec()),
    ]));
    let (status, _, body) = run(
        &gw,
        &host,
        post(&[("authorization", &auth)], &stream_body()),
    );
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).expect("utf8").contains("caf\u{e9}"));

    let endless = {
        let mut e = b"data: {\"x\":\"".to_vec();
        e.extend(std::iter::repeat_n(b'a', 4 << 20));
        e
    };
    let cases: Vec<Vec<Result<Vec<u8>, HostError>>> = vec![
        vec![Ok(b"data: {\"id\":\"\xff\xfe\"}\n\n".to_vec())],
        vec![Ok(chunk("ok")), Ok(b"data: \xc3\n\n".to_vec())],
        vec![Ok(endless)],
        vec![Ok(b"data:\n\n".to_vec()), Ok(b"data: [DONE]\n\n".to_vec())],
        vec![Ok(b"event: error\ndata: \n\n".to_vec())],
        vec![Ok(b"\n\n\n\r\n:comment\n".to_vec())],
        vec![Ok(b"data: {\"choices\":[{\"index\":18446744073709551616,\"delta\":{}}]}\n\n".to_vec())],
        vec![Ok(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":18446744073709551615,\"completion_tokens\":18446744073709551615}}\n\n".to_vec()),
            Ok(b"data: [DONE]\n\n".to_vec())],
    ];
    for chunks in cases {
        host.script(sse(chunks));
        let (status, _, body) = run(
            &gw,
            &host,
            post(&[("authorization", &auth)], &stream_body()),
        );
        assert_eq!(status, 200);
        let text = String::from_utf8_lossy(&body);
        assert!(text.ends_with("\n\n"), "events stay framed: {text:.200}");
    }
    // Every stream was recorded, none lost.
    assert_eq!(host.audit.borrow().len(), 9);
    assert!(host
        .audit
        .borrow()
        .iter()
        .all(|r| r.outcome != Outcome::Refused));
}

// ---- regex worst cases ----

/// Tenant patterns run on `regex` (finite automata, no backtracking): the classic catastrophic
/// patterns take linear time. A pattern without a bounded longest match is refused when the
/// config is read (a stream must know how much to hold back).
#[test]
fn tenant_regex_worst_cases_stay_linear() {
    let mut tenant = demo_tenant();
    tenant["guardrails"] = json!({"custom_patterns": [
        {"name": "nested", "regex": "(a|aa|a?a){1,200}b", "mode": "block"},
        {"name": "alternation", "regex": "(x+x+)+y", "mode": "block"}
    ]});
    let host = FakeHost::new();
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    let (status, _, body) = run(
        &gw,
        &host,
        chat(
            &key,
            &json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}]}),
        ),
    );
    assert_eq!(status, 503, "an unbounded pattern is a config error");
    assert!(String::from_utf8_lossy(&body).contains("custom_patterns[1]"));

    tenant["guardrails"]["custom_patterns"] =
        json!([{"name": "nested", "regex": "(a|aa|a?a){1,200}b", "mode": "block"}]);
    host.put_tenant(&tenant);
    host.advance(30_001);
    host.script(ok_json(completion_json()));
    let text = "a".repeat(500_000);
    #[allow(
        clippy::disallowed_methods,
        reason = "the test measures the scan's wall time; the core itself stays clock-free"
    )]
    let started = std::time::Instant::now();
    let (status, _, _) = run(
        &gw,
        &host,
        chat(
            &key,
            &json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": text}]}),
        ),
    );
    let took = started.elapsed();
    assert_eq!(status, 200);
    // A backtracking engine needs exponential time here; this is a generous linear bound.
    assert!(took.as_secs() < 10, "{took:?}");
}

// ---- guardrail evasion ----

fn guarded() -> (asc_core::Gateway, FakeHost, String) {
    let mut tenant = demo_tenant();
    tenant["guardrails"] = json!({"detectors": {
        "credit_card": {"mode": "block"}, "email": {"mode": "redact"}}});
    setup_with(tenant)
}

/// Caught: look-alike digits (full-width, Arabic-Indic, Devanagari), invisible characters and
/// Unicode spaces between digits, a full-width `@`, card numbers in tool-call arguments and tool
/// results. Not caught (docs/SECURITY.md): a number split across messages or fields, digits
/// written as words, unusual separators (dots).
#[test]
fn guardrail_evasions_caught_and_not() {
    let (gw, host, key) = guarded();
    // 4111 1111 1111 1111 passes Luhn (the classic test card).
    let caught = [
        json!([{"role": "user", "content": "card \u{ff14}\u{ff11}\u{ff11}\u{ff11} \u{ff11}\u{ff11}\u{ff11}\u{ff11} \u{ff11}\u{ff11}\u{ff11}\u{ff11} \u{ff11}\u{ff11}\u{ff11}\u{ff11}"}]),
        json!([{"role": "user", "content": "\u{664}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}"}]),
        json!([{"role": "user", "content": "\u{96a}\u{967}\u{967}\u{967} \u{967}\u{967}\u{967}\u{967} \u{967}\u{967}\u{967}\u{967} \u{967}\u{967}\u{967}\u{967}"}]),
        json!([{"role": "user", "content": "4\u{200b}1\u{200b}1\u{200b}1\u{200b}1\u{200b}1\u{200b}1\u{200b}1\u{200b}1\u{200b}1\u{200b}1\u{200b}1\u{200b}1\u{200b}1\u{200b}1\u{200b}1"}]),
        json!([{"role": "user", "content": "4111\u{2060}1111\u{feff}1111\u{ad}1111"}]),
        json!([{"role": "user", "content": "4111\u{a0}1111\u{3000}1111\u{2009}1111"}]),
        json!([{"role": "user", "content": "4111\u{2013}1111\u{2013}1111\u{2013}1111"}]),
        json!([{"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "pay", "arguments": "{\"card\":\"4111111111111111\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}]),
        json!([{"role": "tool", "tool_call_id": "c1", "content": "4111111111111111"}]),
    ];
    for messages in caught {
        let (status, _, body) = run(
            &gw,
            &host,
            chat(&key, &json!({"model": "gpt-4o-mini", "messages": messages})),
        );
        assert_eq!(
            (status, code_of(&body)),
            (400, "guardrail_credit_card".into()),
            "{messages}"
        );
    }
    assert_eq!(host.sent_count(), 0);

    // A full-width @ is redacted like an ASCII one; what goes upstream is the folded, redacted text.
    host.script(ok_json(completion_json()));
    let (status, _, _) = run(
        &gw,
        &host,
        chat(
            &key,
            &json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "write to jane\u{ff20}example.com"}]}),
        ),
    );
    assert_eq!(status, 200);
    let sent = host.sent.borrow()[0].body["messages"][0]["content"].clone();
    assert_eq!(sent, json!("write to [EMAIL_1]"));
    drop(host.sent.borrow_mut().drain(..));

    // Writing that needs these characters, with nothing to find, is sent unchanged.
    let family = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467} \u{ff01} \u{664}\u{662}";
    host.script(ok_json(completion_json()));
    run(
        &gw,
        &host,
        chat(
            &key,
            &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": family}]}),
        ),
    );
    assert_eq!(
        host.sent.borrow()[0].body["messages"][0]["content"],
        json!(family)
    );

    // Not caught, by decision: each piece alone is not a card number.
    let not_caught = [
        json!([{"role": "user", "content": "4111 1111"}, {"role": "user", "content": "1111 1111"}]),
        json!([{"role": "user", "content": [{"type": "text", "text": "4111 1111"}, {"type": "text", "text": "1111 1111"}]}]),
        json!([{"role": "user", "content": "four one one one, one one one one, one one one one, one one one one"}]),
        json!([{"role": "user", "content": "4111.1111.1111.1111"}]),
    ];
    for messages in not_caught {
        host.script(ok_json(completion_json()));
        let (status, _, _) = run(
            &gw,
            &host,
            chat(&key, &json!({"model": "gpt-4o-mini", "messages": messages})),
        );
        assert_eq!(status, 200, "{messages}");
    }
    assert!(host
        .ledger_ops
        .borrow()
        .iter()
        .any(|(_, op)| matches!(op, LedgerOp::Admit(_))));
}
