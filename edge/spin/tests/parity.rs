//! The same request scenarios through two hosts: the core tests' `FakeHost` (the reference the
//! Worker mirrors: one `TenantLedger::apply` per operation, records appended in order) and the Spin
//! host over real SQLite. Replies must agree byte for byte, the upstream must see the same
//! requests, and the Spin host's hash-chained audit entries must hold the same records.

mod support;

use std::rc::Rc;

use asc_core::audit::codec::SoftwareCodec;
use asc_core::audit::drive::chain_next;
use asc_core::audit::AuditEvent;
use asc_core::audit::Sequencer;
use asc_core::host::Chunks;
use asc_core::host::{Host, HostError};
use asc_core::pipeline::http::{Inbound, ReplyBody};
use asc_spin::app;
use serde_json::json;
use support::common::*;
use support::TestPlatform;

/// One deployment per host kind, set up identically.
struct Pair {
    reference: FakeHost,
    gw: asc_core::Gateway,
    spin: app::Prepared<TestPlatform>,
    backing: Rc<FakeHost>,
}

type Seen = (u16, Vec<(String, String)>, Vec<u8>);

impl Pair {
    fn new(setup: impl Fn(&FakeHost)) -> (Pair, Vec<String>) {
        let reference = FakeHost::new();
        let backing = Rc::new(FakeHost::new());
        setup(&reference);
        setup(&backing);
        let keys = vec![
            reference.mint_key("demo", 1, &all_scopes()),
            backing.mint_key("demo", 1, &all_scopes()),
        ];
        assert_eq!(keys[0], keys[1]);
        let platform = TestPlatform::new(backing.clone());
        let spin = block_on(app::prepare(platform)).expect("deployment");
        let pair = Pair {
            reference,
            // As the component runs it: refusals before a tenant is known sent after each reply.
            gw: local_gateway().with_refusals("spin-client-addr", 0),
            spin,
            backing,
        };
        (pair, keys)
    }

    fn script(&self, make: impl Fn() -> Scripted) {
        self.reference.script(make());
        self.backing.script(make());
    }

    fn advance(&self, ms: u64) {
        self.reference.advance(ms);
        self.backing.advance(ms);
    }

    /// Runs one request through both hosts; asserts they agree and returns what was seen.
    fn run(&self, make: impl Fn() -> Inbound<Chunks>) -> Seen {
        let expected = run(&self.gw, &self.reference, make());
        let got = block_on(async {
            let handled = self.spin.gateway.handle(&self.spin.host, make()).await;
            let reply = handled.reply;
            let body = match reply.body {
                ReplyBody::Full(b) => b,
                ReplyBody::Stream(mut relay) => {
                    let mut out = Vec::new();
                    while let Some(chunk) = relay.next_timed(&self.spin.host).await {
                        out.extend(chunk);
                    }
                    relay
                        .finish(&self.spin.gateway, &self.spin.host)
                        .await
                        .expect("finished");
                    out
                }
            };
            // No bucket in these tests: shipping is s3_upload's; everything before it must work.
            let failures: Vec<String> = app::after_response(&self.spin, handled.after)
                .await
                .into_iter()
                .filter(|f| !f.starts_with("audit flush:"))
                .collect();
            assert!(failures.is_empty(), "{failures:?}");
            (reply.status, reply.headers, body)
        });
        assert_eq!(
            (got.0, &got.1, String::from_utf8_lossy(&got.2)),
            (
                expected.0,
                &expected.1,
                String::from_utf8_lossy(&expected.2)
            ),
            "Spin host and reference host disagree"
        );
        let sent = |h: &FakeHost| -> Vec<String> {
            h.sent
                .borrow()
                .iter()
                .map(|s| format!("{} {:?} {} {}", s.url, s.headers, s.body, s.timeout_ms))
                .collect()
        };
        assert_eq!(sent(&self.backing), sent(&self.reference));
        got
    }

    /// The Spin host's audit entries are the reference host's records, chained in order.
    fn audit_agrees(&self) -> usize {
        let platform = self.spin.host.platform();
        let shipped =
            platform.query("SELECT head FROM asc_audit_head WHERE stream = 'audit-local'");
        assert!(!shipped.is_empty(), "the stream started");
        let batches = platform.query(
            "SELECT entries FROM asc_audit_batch WHERE stream = 'audit-local' ORDER BY first_seq",
        );
        let rows: Vec<asc_core::audit::Buffered> = batches
            .iter()
            .flat_map(|row| {
                serde_json::from_str::<Vec<asc_core::audit::Buffered>>(
                    row[0].as_str().expect("text"),
                )
                .expect("batch")
            })
            .collect();
        let events: Vec<AuditEvent> = self.reference.events.borrow().clone();
        // Shipped batches leave the table: compare the tail still buffered.
        let skip = events.len() - rows.len();
        assert!(rows
            .first()
            .is_none_or(|r| r.entry.sequence == skip as u64 + 1));
        let mut head = Sequencer::new("audit-local", 0)
            .expect("stream")
            .head()
            .clone();
        for (n, event) in events.iter().enumerate() {
            let (next, expected) = chain_next(&SoftwareCodec, &head, event, 0).expect("chains");
            if n >= skip {
                let row = &rows[n - skip];
                assert_eq!(row.entry.sequence, expected.entry.sequence);
                assert_eq!(row.entry.hash, expected.entry.hash, "record differs");
            }
            head = next;
        }
        let open = platform.query("SELECT state FROM asc_ledger WHERE id NOT LIKE 'circuits/%'");
        for row in open {
            let ledger: serde_json::Value =
                serde_json::from_str(row[0].as_str().expect("text")).expect("json");
            assert_eq!(ledger["open"], json!({}), "every request was committed");
            assert_eq!(ledger["outbox"], json!({}), "every record was forwarded");
        }
        events.len()
    }
}

fn ask(max_tokens: u64) -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "Hi"}]})
}

#[test]
fn a_chat_completion_and_the_auth_errors() {
    let (pair, keys) = Pair::new(|h| h.put_tenant(&demo_tenant()));
    let key = &keys[0];
    pair.script(|| ok_json(completion_json()));
    let (status, headers, _) = pair.run(|| chat(key, &ask(50)));
    assert_eq!(status, 200);
    assert!(header(&headers, "x-asc-cost-usd-micros").is_some());

    let (status, _, body) = pair.run(|| chat("sk-asc-not-a-key", &ask(50)));
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = pair.run(|| {
        request(
            "POST",
            "/v1/chat/completions",
            &[],
            ask(5).to_string().as_bytes(),
        )
    });
    assert_eq!(status, 401);
    let (status, _, body) = pair.run(|| {
        request(
            "GET",
            "/v1/models",
            &[
                ("host", "eu.asc.example.com"),
                ("authorization", &format!("Bearer {key}")),
            ],
            b"",
        )
    });
    assert_eq!(status, 421, "{}", String::from_utf8_lossy(&body));

    pair.reference.revoke(key);
    pair.backing.revoke(key);
    pair.advance(120_000);
    let (status, _, body) = pair.run(|| chat(key, &ask(50)));
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error_code(&body), "revoked_api_key");
    assert!(pair.audit_agrees() >= 1);
}

#[test]
fn rate_limits_hold_and_reset_through_sqlite() {
    let (pair, keys) = Pair::new(|h| {
        let mut tenant = demo_tenant();
        tenant["limits"] = json!({"requests_per_minute": 2});
        h.put_tenant(&tenant);
    });
    let key = &keys[0];
    let mut codes = Vec::new();
    for _ in 0..3 {
        pair.script(|| ok_json(completion_json()));
        codes.push(pair.run(|| chat(key, &ask(20))).0);
    }
    assert_eq!(codes, vec![200, 200, 429]);
    // The third reply was refused before the upstream: drop its unused script on both sides.
    pair.reference.script.borrow_mut().clear();
    pair.backing.script.borrow_mut().clear();
    pair.advance(60_000);
    pair.script(|| ok_json(completion_json()));
    assert_eq!(pair.run(|| chat(key, &ask(20))).0, 200);
    pair.audit_agrees();
}

#[test]
fn a_hard_budget_refuses_at_the_same_request_and_usage_agrees() {
    let (pair, keys) = Pair::new(|h| {
        let mut t = demo_tenant();
        t["budgets"] = json!([
            {"id": "monthly", "applies_to": "tenant", "limit_usd_micros": 700, "period": "monthly", "alert_at_percent": [50]}
        ]);
        h.put_tenant(&t);
    });
    let key = &keys[0];
    let mut served = 0;
    for _ in 0..50 {
        pair.script(|| ok_json(completion_json()));
        let (status, _, body) = pair.run(|| chat(key, &ask(1000)));
        if status == 429 {
            assert_eq!(error_code(&body), "budget_exceeded");
            break;
        }
        assert_eq!(status, 200);
        served += 1;
    }
    assert!(served > 0 && served < 50, "served {served}");
    pair.reference.script.borrow_mut().clear();
    pair.backing.script.borrow_mut().clear();
    let auth = format!("Bearer {key}");
    let (status, _, _) = pair.run(|| request("GET", "/v1/usage", &[("authorization", &auth)], b""));
    assert_eq!(status, 200);
    pair.audit_agrees();
}

fn openai_events() -> Vec<Vec<u8>> {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,
               "model":"gpt-4o-mini-2024-07-18",
               "choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":finish}],
               "usage":null})
    };
    let usage = json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,
        "model":"gpt-4o-mini-2024-07-18","choices":[],
        "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}});
    [
        chunk(json!({"role":"assistant","content":""}), json!(null)),
        chunk(json!({"content":"Hello"}), json!(null)),
        chunk(json!({}), json!("stop")),
        usage,
    ]
    .iter()
    .map(|v| format!("data: {v}\n\n").into_bytes())
    .chain(std::iter::once(b"data: [DONE]\n\n".to_vec()))
    .collect()
}

#[test]
fn streams_and_upstream_failures() {
    let (pair, keys) = Pair::new(|h| h.put_tenant(&demo_tenant()));
    let key = &keys[0];
    let body = json!({"model": "gpt-4o-mini", "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Hi"}]});
    pair.script(|| sse(openai_events().into_iter().map(Ok).collect()));
    let (status, _, text) = pair.run(|| chat(key, &body));
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&text).contains("[DONE]"));

    // Cut mid-stream: a terminal error event, the same on both.
    pair.script(|| {
        let mut events: Vec<Result<Vec<u8>, HostError>> =
            openai_events().into_iter().take(2).map(Ok).collect();
        events.push(Err(HostError::Unreachable("reset".into())));
        sse(events)
    });
    pair.run(|| chat(key, &body));

    pair.script(|| Scripted::Fail(HostError::Timeout));
    let (status, _, _) = pair.run(|| chat(key, &ask(10)));
    assert_eq!(status, 504);
    pair.script(|| Scripted::Fail(HostError::Unreachable("refused".into())));
    let (status, _, _) = pair.run(|| chat(key, &ask(10)));
    assert_eq!(status, 502);
    pair.audit_agrees();
}

#[test]
fn a_missing_credential_fails_the_same_way() {
    let (pair, keys) = Pair::new(|h| {
        let mut t = demo_tenant();
        t["models"]["gpt-4o-mini"]["credential"] = json!("UNSET_API_KEY");
        h.put_tenant(&t);
    });
    let (status, _, body) = pair.run(|| chat(&keys[0], &ask(10)));
    assert!(status >= 500, "{status} {}", String::from_utf8_lossy(&body));
    assert!(pair
        .spin
        .host
        .secret(&asc_core::secret::SecretRef("UNSET_API_KEY".into()))
        .is_none());
    pair.audit_agrees();
}

#[test]
fn the_audit_bucket_must_be_https_outside_the_loopback_region() {
    let platform = TestPlatform::new(Rc::new(FakeHost::new()));
    platform.set_var("asc_region", "eu");
    let always = asc_core::audit::Validity {
        not_before_ms: 0,
        not_after_ms: None,
    };
    let (spec, _) = asc_core::audit::keys::key_pair("k1", &[3; 32], always).expect("key");
    let keys = serde_json::to_string(&spec).expect("json");
    for (name, value) in [
        ("audit_signing_keys", keys.as_str()),
        ("audit_bucket_endpoint", "http://bucket.example.com"),
        ("audit_bucket_name", "asc-audit-eu"),
        ("audit_bucket_access_key_id", "a"),
        ("audit_bucket_secret_access_key", "s"),
    ] {
        platform.set_var(name, value);
    }
    let prepared = block_on(app::prepare(platform)).expect("deployment");
    assert_eq!(prepared.gateway.region().id, "eu");
    let err = block_on(app::flush(&prepared.deployment, &prepared.host)).expect_err("refused");
    assert!(err.contains("must be https"), "{err}");
}

/// Routing through both hosts: failover on 500, Retry-After honoured with the simulated clock,
/// the breaker opening (its state in SQLite on Spin, in the fake host's board otherwise), and an
/// Anthropic client served by an OpenAI target.
#[test]
fn routing_failover_retry_after_and_the_breaker_agree() {
    let (pair, keys) = Pair::new(|h| {
        let mut t = demo_tenant();
        t["models"]["backup"] = json!({"provider": "openai", "endpoint": "http://127.0.0.1:9100/b/v1",
            "credential": "OPENAI_API_KEY", "timeout_ms": 5000});
        t["routes"] =
            json!({"smart": {"targets": ["gpt-4o-mini", "backup"], "retry": {"max_attempts": 3}}});
        t["routing"] = json!({"breaker": {"failure_threshold": 2, "cooldown_ms": 60000}});
        h.put_tenant(&t);
    });
    let key = &keys[0];
    let smart = json!({"model": "smart", "messages": [{"role": "user", "content": "Hi"}]});
    let failing = || Scripted::Reply {
        status: 500,
        headers: vec![("content-type".into(), "application/json".into())],
        chunks: vec![Ok(
            br#"{"error":{"message":"down","type":"server_error"}}"#.to_vec()
        )],
    };
    for _ in 0..2 {
        pair.script(failing);
        pair.script(|| ok_json(completion_json()));
        let (status, headers, _) = pair.run(|| chat(key, &smart));
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-asc-target"), Some("backup"));
    }
    // The primary's circuit is open on both hosts: straight to the backup.
    pair.script(|| ok_json(completion_json()));
    let (_, headers, _) = pair.run(|| chat(key, &smart));
    assert_eq!(header(&headers, "x-asc-attempts"), Some("1"));
    assert_eq!(header(&headers, "x-asc-target"), Some("backup"));
    let rows = pair
        .spin
        .host
        .platform()
        .query("SELECT state FROM asc_ledger WHERE id = 'circuits/demo'");
    assert!(rows[0][0].as_str().expect("text").contains("open_until_ms"));

    // A plain model has one attempt: an upstream 429 is the answer on both hosts, with its
    // Retry-After passed on.
    pair.script(|| Scripted::Reply {
        status: 429,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("retry-after".into(), "2".into()),
        ],
        chunks: vec![Ok(
            br#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#.to_vec(),
        )],
    });
    let (status, headers, _) = pair.run(|| {
        chat(
            key,
            &json!({"model": "backup", "messages": [{"role": "user", "content": "Hi"}]}),
        )
    });
    assert_eq!((status, header(&headers, "retry-after")), (429, Some("2")));

    // An Anthropic client, served by an OpenAI target, in Anthropic's shape on both hosts.
    pair.script(|| ok_json(completion_json()));
    let (status, _, body) = pair.run(|| {
        request(
            "POST",
            "/v1/messages",
            &[("x-api-key", key.as_str()), ("anthropic-version", "2023-06-01")],
            json!({"model": "backup", "max_tokens": 20, "messages": [{"role": "user", "content": "Hi"}]})
                .to_string()
                .as_bytes(),
        )
    });
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["type"], "message");
    pair.audit_agrees();
}

#[test]
fn the_response_cache_in_sqlite_hits_expires_and_sweeps_like_the_reference() {
    let (pair, keys) = Pair::new(|h| {
        let mut t = demo_tenant();
        t["cache"] = json!({"ttl_seconds": 60});
        h.put_tenant(&t);
    });
    let key = &keys[0];
    let deterministic = || {
        json!({"model": "gpt-4o-mini", "temperature": 0,
               "messages": [{"role": "user", "content": "Hi"}]})
    };
    pair.script(|| ok_json(completion_json()));
    let (_, headers, _) = pair.run(|| chat(key, &deterministic()));
    assert_eq!(header(&headers, "x-asc-cache"), Some("miss"));
    let (_, headers, _) = pair.run(|| chat(key, &deterministic()));
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    assert_eq!(pair.backing.sent_count(), 1, "the hit came from SQLite");
    let platform = pair.spin.host.platform();
    let rows = platform.query("SELECT name FROM asc_response_cache");
    assert_eq!(rows.len(), 1);
    assert!(rows[0][0].as_str().expect("name").starts_with("demo/"));

    // Past the TTL: a miss, and the fresh answer's write sweeps the expired row.
    pair.advance(61_000);
    pair.script(|| ok_json(completion_json()));
    let (_, headers, _) = pair.run(|| chat(key, &deterministic()));
    assert_eq!(header(&headers, "x-asc-cache"), Some("miss"));
    assert_eq!(pair.backing.sent_count(), 2);
    let expiries = platform.query("SELECT expires_ms FROM asc_response_cache");
    assert_eq!(expiries.len(), 1);
    assert!(expiries[0][0].as_u64().expect("ms") > pair.backing.clock_ms.get());
    pair.audit_agrees();
}

/// One instance at a time flushes after a response: the lease is refused while held, free again
/// once released, and taken over once it lapses (an instance that died holding it).
#[test]
fn the_flush_lease_admits_one_flusher_and_lapses() {
    let fake = Rc::new(FakeHost::new());
    let platform = TestPlatform::new(fake.clone());
    let prepared = block_on(app::prepare(platform)).expect("deployment");
    let (d, p) = (&prepared.deployment, prepared.host.platform());
    let held = block_on(app::take_flush_lease(d, p))
        .expect("sql")
        .expect("free at first");
    assert_eq!(block_on(app::take_flush_lease(d, p)).expect("sql"), None);
    block_on(app::release_flush_lease(p, held));
    let again = block_on(app::take_flush_lease(d, p))
        .expect("sql")
        .expect("free once released");
    // Held and never released: another instance takes it once it lapses, not before.
    let lease = again - asc_spin::platform::Platform::now_ms(p);
    fake.advance(lease - 1);
    assert_eq!(block_on(app::take_flush_lease(d, p)).expect("sql"), None);
    fake.advance(1);
    let taken = block_on(app::take_flush_lease(d, p)).expect("sql");
    assert!(taken.is_some(), "a lapsed lease is taken over");
    // The old holder's late release does not free the new holder's lease.
    block_on(app::release_flush_lease(p, again));
    assert_eq!(block_on(app::take_flush_lease(d, p)).expect("sql"), None);
}
