//! Hostile and out-of-range client input through the whole pipeline (issue 20): counts that would
//! overflow the worst case, store failures whose internal text must stay out of the client's
//! message, and what reaches the audit record.

mod common;

use asc_core::ledger::LedgerOp;
use common::*;
use serde_json::json;

fn setup() -> (asc_core::Gateway, FakeHost, String) {
    let host = FakeHost::new();
    let mut tenant = demo_tenant();
    // A budget makes every request reserve its worst case.
    tenant["budgets"] = json!([{"id": "m", "applies_to": "tenant", "limit_usd_micros": 1_000_000_000u64,
        "period": "monthly", "mode": "hard"}]);
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    (local_gateway(), host, key)
}

fn error_of(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice::<serde_json::Value>(body).expect("JSON error body")["error"].clone()
}

fn admits(host: &FakeHost) -> Vec<LedgerOp> {
    host.ledger_ops
        .borrow()
        .iter()
        .filter(|(_, op)| matches!(op, LedgerOp::Admit(_)))
        .map(|(_, op)| op.clone())
        .collect()
}

fn reserved(op: &LedgerOp) -> u64 {
    match op {
        LedgerOp::Admit(a) => a.reserve.as_ref().expect("a reservation").amount_micros,
        _ => panic!("not an admission"),
    }
}

/// Counts beyond any model's output limit (2^63, 2^64 - 1, past u64, fractions, negatives) are a
/// 400 naming the field the client used; nothing is reserved and nothing is sent.
#[test]
fn out_of_range_output_counts_are_refused_naming_the_field() {
    let (gw, host, key) = setup();
    let cases = [
        ("max_tokens", "9223372036854775808"),
        ("max_tokens", "18446744073709551615"),
        ("max_tokens", "18446744073709551616"),
        ("max_tokens", "1e30"),
        ("max_tokens", "-1"),
        ("max_tokens", "0"),
        ("max_tokens", "1.5"),
        ("max_tokens", "\"100\""),
        ("max_completion_tokens", "9223372036854775808"),
        // Over gpt-4o-mini's published 16,384-token output limit, far under 2^53.
        ("max_completion_tokens", "16385"),
    ];
    for (field, value) in cases {
        let body = format!(
            r#"{{"model":"gpt-4o-mini","{field}":{value},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let req = request(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &format!("Bearer {key}"))],
            body.as_bytes(),
        );
        let (status, _, reply) = run(&gw, &host, req);
        let err = error_of(&reply);
        assert_eq!(status, 400, "{field}={value}: {err}");
        assert_eq!(err["param"], field, "{field}={value}: {err}");
        assert!(
            err["message"].as_str().unwrap_or("").contains(field),
            "{field}={value}: {err}"
        );
    }
    // The same through Anthropic's dialect.
    let req = request(
        "POST",
        "/v1/messages",
        &[
            ("x-api-key", &key),
            ("anthropic-version", "2023-06-01"),
        ],
        br#"{"model":"gpt-4o-mini","max_tokens":9223372036854775808,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let (status, _, reply) = run(&gw, &host, req);
    assert_eq!(status, 400);
    assert_eq!(error_of(&reply)["param"], "max_tokens");
    assert!(admits(&host).is_empty(), "nothing was reserved");
    assert_eq!(host.sent_count(), 0, "nothing was sent");
}

/// Every choice of `n` is billed (OpenAI: "charged based on the number of generated tokens across
/// all of the choices"), so the worst case reserved grows with `n`; `n` outside 1..=128 is a 400.
#[test]
fn every_choice_is_reserved_for() {
    let (gw, host, key) = setup();
    let ask = |n: u64| {
        json!({"model": "gpt-4o-mini", "n": n, "max_tokens": 1000,
        "messages": [{"role": "user", "content": "hi"}]})
    };
    for n in [1, 4] {
        host.script(ok_json(completion_json()));
        assert_eq!(run(&gw, &host, chat(&key, &ask(n))).0, 200);
    }
    let ops = admits(&host);
    let (one, four) = (reserved(&ops[0]), reserved(&ops[1]));
    // gpt-4o-mini output is $0.60 per 1M tokens: 3,000 more output tokens cost 1,800 micro-USD
    // (the request bodies differ by no byte; each total is rounded up once).
    assert!(
        four.abs_diff(one + 1_800) <= 1,
        "n=1 reserved {one}, n=4 reserved {four}"
    );
    for bad in [
        json!(0),
        json!(129),
        json!(-1),
        json!(1.5),
        json!("2"),
        json!(9223372036854775808u64),
    ] {
        let body = json!({"model": "gpt-4o-mini", "n": bad, "messages": [{"role": "user", "content": "hi"}]});
        let (status, _, reply) = run(&gw, &host, chat(&key, &body));
        assert_eq!(
            (status, error_of(&reply)["param"].clone()),
            (400, json!("n")),
            "n={bad}"
        );
    }
    assert_eq!(host.sent_count(), 2);
}

/// A store's own error text (binding names, serde messages) goes to the operator's log line, never
/// into the client's message.
#[test]
fn store_failures_keep_internal_text_out_of_the_client_message() {
    let (gw, host, key) = setup();
    host.kv_down.set(true);
    let (status, headers, reply) = run(
        &gw,
        &host,
        chat(
            &key,
            &json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}]}),
        ),
    );
    let err = error_of(&reply);
    assert_eq!(
        (status, err["code"].clone()),
        (503, json!("store_unavailable"))
    );
    let text = String::from_utf8_lossy(&reply);
    assert!(
        !text.contains("internal detail") && !text.contains("ASC_CONFIG"),
        "{text}"
    );
    assert!(header(&headers, "x-request-id").is_some());

    // The operator's log line still carries it, with the request id.
    let reply = block_on(async {
        gw.handle(
            &host,
            chat(&key, &json!({"model": "gpt-4o-mini", "messages": []})),
        )
        .await
        .reply
    });
    let line = reply.failure_log_line().expect("a 5xx is logged");
    assert!(line.contains("kv down (internal detail)"), "{line}");
    assert!(
        line.contains(reply.header("x-request-id").expect("id")),
        "{line}"
    );

    // The usage report, when the ledger fails.
    host.kv_down.set(false);
    host.ledger_fails
        .set(Some(|op| matches!(op, LedgerOp::Usage(_))));
    let usage = request(
        "GET",
        "/v1/usage",
        &[("authorization", &format!("Bearer {key}"))],
        b"",
    );
    let (status, _, reply) = run(&gw, &host, usage);
    assert_eq!(status, 503);
    assert!(!String::from_utf8_lossy(&reply).contains("ledger down"));
}

/// A client-chosen string (a 10,000-character model name, with multi-byte characters) is stored
/// bounded: its start, its full length and its SHA-256, so the trail cannot be inflated.
#[test]
fn client_strings_are_bounded_in_the_audit_record() {
    let (gw, host, key) = setup();
    let model = format!("gpt-{}", "\u{00e9}x".repeat(3_333));
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, _) = run(&gw, &host, chat(&key, &body));
    assert_eq!(status, 404);
    let events = host.events.borrow();
    let recorded = events
        .last()
        .and_then(|e| e.record.requested_model.clone())
        .expect("a record with the requested model");
    assert!(
        recorded.len() <= asc_core::audit::bound::MAX_FIELD_BYTES,
        "{} bytes",
        recorded.len()
    );
    assert!(recorded.starts_with("gpt-\u{00e9}x"));
    let marker = format!(
        "...[truncated {} bytes sha256:{}]",
        model.len(),
        asc_core::audit::content_sha256(model.as_bytes())
    );
    assert!(recorded.ends_with(&marker), "{recorded}");
    // The whole serialized record stays small.
    let json = serde_json::to_vec(events.last().expect("event")).expect("json");
    assert!(json.len() < 2_000, "{} bytes", json.len());
}
