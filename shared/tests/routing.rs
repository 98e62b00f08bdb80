//! Routing and failover through the whole pipeline, with a fake host and a simulated clock:
//! failover on 429/5xx/timeouts, Retry-After honoured, the retry budget under total failure, the
//! circuit breaker's cycle, no retry after the first byte, weighted splits, route explanations,
//! and residency over random configs and failure sequences.

mod common;

use asc_core::host::HostError;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn target(path: &str, model: &str) -> Value {
    json!({"provider": "openai", "endpoint": format!("http://127.0.0.1:9100/{path}"), "upstream_model": model,
           "credential": "OPENAI_API_KEY", "timeout_ms": 5000})
}

fn routed_tenant(route: Value, routing: Value) -> Value {
    json!({
        "schema_version": 1, "tenant_id": "demo", "residency": "local",
        "models": {"a": target("a/v1", "model-a"), "b": target("b/v1", "model-b")},
        "routes": {"smart": route},
        "routing": routing
    })
}

fn setup(route: Value, routing: Value) -> (asc_core::Gateway, FakeHost, String) {
    let host = FakeHost::new();
    host.put_tenant(&routed_tenant(route, routing));
    let key = host.mint_key("demo", 1, &all_scopes());
    (local_gateway(), host, key)
}

fn smart() -> Value {
    json!({"model": "smart", "messages": [{"role": "user", "content": "Hello"}]})
}

fn status_reply(status: u16, headers: Vec<(&str, &str)>) -> Scripted {
    Scripted::Reply {
        status,
        headers: headers
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .chain([("content-type".to_string(), "application/json".to_string())])
            .collect(),
        chunks: vec![Ok(
            br#"{"error":{"message":"upstream trouble","type":"server_error"}}"#.to_vec(),
        )],
    }
}

fn sent_paths(host: &FakeHost) -> Vec<String> {
    host.sent
        .borrow()
        .iter()
        .map(|s| {
            s.url
                .trim_start_matches("http://127.0.0.1:9100/")
                .to_string()
        })
        .collect()
}

#[test]
fn fails_over_on_500_429_and_timeouts_to_the_next_target() {
    let failures = [
        status_reply(500, vec![]),
        status_reply(429, vec![]),
        status_reply(503, vec![]),
        Scripted::Fail(HostError::Timeout),
        Scripted::Fail(HostError::Unreachable("reset".into())),
    ];
    for failure in failures {
        let (gw, host, key) = setup(json!({"targets": ["a", "b"]}), json!({}));
        host.script(failure);
        host.script(ok_json(completion_json()));
        let (status, headers, _) = run(&gw, &host, chat(&key, &smart()));
        assert_eq!(status, 200);
        assert_eq!(
            sent_paths(&host),
            ["a/v1/chat/completions", "b/v1/chat/completions"]
        );
        assert_eq!(header(&headers, "x-asc-target"), Some("b"));
        assert_eq!(header(&headers, "x-asc-attempts"), Some("2"));
        assert_eq!(header(&headers, "x-asc-route"), Some("smart"));
        // The audit record names the route and both attempts.
        let event = host.events.borrow().last().cloned().expect("audited");
        assert_eq!(event.detail.route.as_deref(), Some("smart"));
        assert_eq!(event.detail.attempts.len(), 2);
        assert_eq!(event.detail.attempts[1].model, "model-b");
        assert!(event.detail.attempts[0].error_code.is_some());
        assert_eq!(event.record.served_model.as_deref(), Some("model-b"));
    }
}

#[test]
fn a_client_error_is_not_retried_or_failed_over() {
    let refusal = || {
        Scripted::Reply {
        status: 400,
        headers: vec![("content-type".into(), "application/json".into())],
        chunks: vec![Ok(br#"{"error":{"message":"bad input","type":"invalid_request_error","param":"input","code":null}}"#.to_vec())],
    }
    };
    let embed = json!({"model": "smart", "input": "Hello"});
    let cases = [
        ("chat", "/v1/chat/completions", smart()),
        ("embeddings", "/v1/embeddings", embed),
    ];
    for (operation, path, body) in cases {
        let (gw, host, key) = setup(json!({"targets": ["a", "b"]}), json!({}));
        host.script(refusal());
        let auth = format!("Bearer {key}");
        let inbound = request(
            "POST",
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        );
        let (status, headers, body) = run(&gw, &host, inbound);
        assert_eq!(status, 400, "{operation}");
        assert_eq!(host.sent_count(), 1, "{operation}");
        assert_eq!(sent_paths(&host), [format!("a{path}")], "{operation}");
        // The upstream's own answer, with the route's headers, alike for every operation.
        let answer: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(answer["error"]["message"], "bad input", "{operation}");
        assert_eq!(header(&headers, "x-asc-attempts"), Some("1"), "{operation}");
        assert_eq!(
            header(&headers, "x-asc-route"),
            Some("smart"),
            "{operation}"
        );
        let event = host.events.borrow().last().cloned().expect("audited");
        assert_eq!(event.record.status, 400, "{operation}");
    }
}

#[test]
fn retry_after_is_honoured_no_attempt_before_it_expires() {
    let (gw, host, key) = setup(
        json!({"targets": ["a"], "retry": {"max_attempts": 3, "base_backoff_ms": 50, "max_backoff_ms": 400}}),
        json!({}),
    );
    host.script(status_reply(429, vec![("retry-after", "2")]));
    host.script(ok_json(completion_json()));
    let (status, _, _) = run(&gw, &host, chat(&key, &smart()));
    assert_eq!(status, 200);
    let sent = host.sent.borrow();
    assert_eq!(sent.len(), 2);
    assert!(
        sent[1].at_ms - sent[0].at_ms >= 2_000,
        "waited {} ms",
        sent[1].at_ms - sent[0].at_ms
    );
}

#[test]
fn a_retry_after_longer_than_the_route_allows_ends_the_request() {
    let (gw, host, key) = setup(
        json!({"targets": ["a"], "retry": {"max_attempts": 3, "max_retry_after_ms": 1000}}),
        json!({}),
    );
    host.script(status_reply(429, vec![("retry-after", "30")]));
    let (status, headers, body) = run(&gw, &host, chat(&key, &smart()));
    assert_eq!(
        (status, error_code(&body).as_str()),
        (429, "upstream_rate_limited")
    );
    assert_eq!(header(&headers, "retry-after"), Some("30"));
    assert_eq!(host.sent_count(), 1);
    assert!(host.sleeps.borrow().is_empty());
}

#[test]
fn retries_back_off_exponentially_on_the_same_target() {
    let (gw, host, key) = setup(
        json!({"targets": ["a"], "retry": {"max_attempts": 4, "base_backoff_ms": 100, "max_backoff_ms": 10000}}),
        json!({"breaker": {"failure_threshold": 100}}),
    );
    for _ in 0..3 {
        host.script(status_reply(502, vec![]));
    }
    host.script(ok_json(completion_json()));
    let (status, _, _) = run(&gw, &host, chat(&key, &smart()));
    assert_eq!(status, 200);
    let sleeps = host.sleeps.borrow().clone();
    assert_eq!(sleeps.len(), 3);
    // Equal jitter: retry n waits between half and all of base * 2^(n-1).
    for (n, wait) in sleeps.iter().enumerate() {
        let step = 100u64 << n;
        assert!(
            (step / 2..=step).contains(wait),
            "retry {} waited {wait}",
            n + 1
        );
    }
}

#[test]
fn the_retry_budget_holds_under_total_upstream_failure() {
    let (gw, host, key) = setup(
        json!({"targets": ["a", "b"], "retry": {"max_attempts": 2}}),
        json!({"retry_budget_percent": 20, "breaker": {"failure_threshold": 1000}}),
    );
    let requests = 200;
    for _ in 0..requests * 2 {
        host.script(status_reply(500, vec![]));
    }
    for _ in 0..requests {
        let (status, _, _) = run(&gw, &host, chat(&key, &smart()));
        assert!(status >= 500);
    }
    // Switching targets does not sleep, so all of this is one 10 s window.
    let extra = host.sent_count() - requests;
    assert!(extra > 0, "some retries happen");
    assert!(
        extra <= requests * 20 / 100,
        "{extra} extra attempts for {requests} requests"
    );
}

#[test]
fn the_breaker_opens_half_opens_with_one_probe_and_closes() {
    let (gw, host, key) = setup(
        json!({"targets": ["a", "b"]}),
        json!({"breaker": {"failure_threshold": 2, "cooldown_ms": 5000}}),
    );
    // Two requests: `a` fails each time, `b` serves.
    for _ in 0..2 {
        host.script(status_reply(500, vec![]));
        host.script(ok_json(completion_json()));
        assert_eq!(run(&gw, &host, chat(&key, &smart())).0, 200);
    }
    assert_eq!(host.sent_count(), 4);
    // Open: straight to `b`.
    host.script(ok_json(completion_json()));
    let (_, headers, _) = run(&gw, &host, chat(&key, &smart()));
    assert_eq!(header(&headers, "x-asc-target"), Some("b"));
    assert_eq!(sent_paths(&host)[4], "b/v1/chat/completions");
    // After the cooldown one probe goes to `a`; it succeeds and closes the circuit.
    host.advance(5_000);
    host.script(ok_json(completion_json()));
    let (_, headers, _) = run(&gw, &host, chat(&key, &smart()));
    assert_eq!(header(&headers, "x-asc-target"), Some("a"));
    host.advance(1_500); // past the isolate's circuit cache
    host.script(ok_json(completion_json()));
    let (_, headers, _) = run(&gw, &host, chat(&key, &smart()));
    assert_eq!(header(&headers, "x-asc-target"), Some("a"));
}

#[test]
fn with_every_circuit_open_requests_fail_fast_without_sending() {
    let (gw, host, key) = setup(
        json!({"targets": ["a", "b"]}),
        json!({"breaker": {"failure_threshold": 1, "cooldown_ms": 60000}}),
    );
    host.script(status_reply(500, vec![]));
    host.script(status_reply(500, vec![]));
    assert_eq!(run(&gw, &host, chat(&key, &smart())).0, 502);
    let before = host.sent_count();
    let (status, _, body) = run(&gw, &host, chat(&key, &smart()));
    assert_eq!(
        (status, error_code(&body).as_str()),
        (503, "all_targets_unavailable")
    );
    assert_eq!(host.sent_count(), before);
}

#[test]
fn no_retry_after_the_first_byte() {
    let (gw, host, key) = setup(json!({"targets": ["a", "b"]}), json!({}));
    let first = b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n".to_vec();
    host.script(sse(vec![
        Ok(first),
        Err(HostError::Unreachable("reset".into())),
    ]));
    let mut body = smart();
    body["stream"] = json!(true);
    let (status, _, out) = run(&gw, &host, chat(&key, &body));
    assert_eq!(status, 200);
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.contains("Hel") && text.contains("\"error\"") && !text.contains("[DONE]"));
    assert_eq!(
        host.sent_count(),
        1,
        "the fallback target is never tried mid-stream"
    );
}

#[test]
fn weighted_routing_splits_within_tolerance() {
    let (gw, host, key) = setup(
        json!({"strategy": "weighted", "targets": [{"model": "a", "weight": 3}, {"model": "b", "weight": 1}]}),
        json!({}),
    );
    let n = 2_000;
    for _ in 0..n {
        host.script(ok_json(completion_json()));
    }
    let mut on_a = 0;
    for _ in 0..n {
        let (_, headers, _) = run(&gw, &host, chat(&key, &smart()));
        if header(&headers, "x-asc-target") == Some("a") {
            on_a += 1;
        }
    }
    let share = on_a as f64 / n as f64;
    assert!((0.72..=0.78).contains(&share), "share on a: {share}");
}

#[test]
fn route_explain_shows_the_decision_without_calling_a_provider() {
    let host = FakeHost::new();
    let mut tenant = routed_tenant(
        json!({"targets": ["outside", "a", "b"], "rules": [{"when": {"workloads": ["extraction"]}, "targets": ["b"]}]}),
        json!({}),
    );
    tenant["models"]["outside"] = json!({"provider": "anthropic", "endpoint": "https://api.anthropic.com/v1", "credential": "K"});
    tenant["workloads"] = json!({"extraction": {"timeout_ms": 20000}});
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    let auth = format!("Bearer {key}");
    let explain = |workload: Option<&str>| {
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(w) = workload {
            headers.push(("x-asc-workload", w));
        }
        run(
            &gw,
            &host,
            request(
                "POST",
                "/v1/route/explain",
                &headers,
                smart().to_string().as_bytes(),
            ),
        )
    };
    let (status, _, body) = explain(None);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["decision"], "route");
    assert_eq!(v["route"], "smart");
    assert_eq!(v["candidates"], json!(["a", "b"]));
    let outside = &v["considered"][0];
    assert_eq!(outside["model"], "outside");
    assert!(outside["excluded"]
        .as_str()
        .expect("reason")
        .contains("allowlist"));
    let (_, _, body) = explain(Some("extraction"));
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        (v["rule"].clone(), v["candidates"].clone()),
        (json!(0), json!(["b"]))
    );
    assert_eq!(v["timeout_ms"], 20000);
    assert_eq!(host.sent_count(), 0, "explaining calls no provider");
}

const HOSTS: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "api.openai.com",
    "eu.api.openai.com",
    "api.anthropic.com",
    "evil.example",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Random targets, routes and failure sequences through the whole pipeline: every request
    /// that reaches the fake upstream goes to a host on the local region's allowlist.
    #[test]
    fn nothing_planned_or_sent_leaves_the_region(
        hosts in proptest::collection::vec(0usize..HOSTS.len(), 1..5),
        weighted in any::<bool>(),
        attempts in 1u32..5,
        failures in proptest::collection::vec(0u8..5, 0..6),
    ) {
        let mut models = serde_json::Map::new();
        for (i, h) in hosts.iter().enumerate() {
            models.insert(format!("m{i}"), json!({"provider": "openai", "endpoint": format!("http://{}:9100/v1", HOSTS[*h]), "credential": "OPENAI_API_KEY"}));
        }
        let names: Vec<String> = (0..hosts.len()).map(|i| format!("m{i}")).collect();
        let tenant = json!({
            "schema_version": 1, "tenant_id": "demo", "residency": "local", "models": models,
            "routes": {"smart": {"strategy": if weighted { "weighted" } else { "fallback" }, "targets": names, "retry": {"max_attempts": attempts, "base_backoff_ms": 1, "max_backoff_ms": 2}}}
        });
        let host = FakeHost::new();
        host.put_tenant(&tenant);
        let key = host.mint_key("demo", 1, &all_scopes());
        for f in &failures {
            host.script(match f {
                0 => status_reply(500, vec![]),
                1 => status_reply(429, vec![("retry-after", "0")]),
                2 => Scripted::Fail(HostError::Timeout),
                3 => Scripted::Fail(HostError::Unreachable("x".into())),
                _ => ok_json(completion_json()),
            });
        }
        host.script(ok_json(completion_json()));
        let gw = local_gateway();
        let _ = run(&gw, &host, chat(&key, &smart()));
        for sent in host.sent.borrow().iter() {
            let url = url::Url::parse(&sent.url).expect("url");
            prop_assert!(matches!(url.host_str(), Some("127.0.0.1") | Some("localhost")), "sent to {}", sent.url);
        }
    }
}

#[test]
fn a_circuit_opening_and_closing_raise_one_alert_each_delivered_signed() {
    use asc_core::ledger::{LedgerId, LedgerOp, LedgerReply};
    let host = FakeHost::new();
    let mut tenant = routed_tenant(
        json!({"targets": ["a", "b"]}),
        json!({"breaker": {"failure_threshold": 2, "cooldown_ms": 5000}}),
    );
    tenant["alerts"] = json!({"webhooks": [{"id": "ops", "url": "http://127.0.0.1:9100/hooks",
        "secret": "OPENAI_API_KEY", "events": ["circuit.opened", "circuit.closed"]}]});
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    // `a` fails twice (the second failure opens its circuit); `b` serves. The second request's
    // report raises the alert after its response, and its commit's call (which ends with the
    // commit) hands the alert over: the webhook POST comes right after that request.
    for i in 0..2 {
        host.script(status_reply(500, vec![]));
        host.script(ok_json(completion_json()));
        if i == 1 {
            host.script(ok_json(b"{}".to_vec()));
        }
        assert_eq!(run(&gw, &host, chat(&key, &smart())).0, 200);
    }
    // More traffic delivers nothing twice.
    host.script(ok_json(completion_json()));
    assert_eq!(run(&gw, &host, chat(&key, &smart())).0, 200);
    let hooks: Vec<_> = host
        .sent
        .borrow()
        .iter()
        .filter(|s| s.url.ends_with("/hooks"))
        // The fake keeps bodies as JSON; the payload's keys are sorted, so this is its bytes.
        .map(|s| {
            (
                s.headers.clone(),
                serde_json::to_vec(&s.body).expect("bytes"),
            )
        })
        .collect();
    assert_eq!(hooks.len(), 1, "one delivery for one opening");
    let (headers, body) = &hooks[0];
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .expect(n)
    };
    let payload: Value = serde_json::from_slice(body.as_slice()).expect("json");
    assert_eq!(payload["type"], "circuit.opened");
    assert_eq!(payload["data"]["detail"]["target"], "a");
    assert_eq!(
        find("webhook-id"),
        payload["data"]["id"].as_str().expect("id")
    );
    // Signed with the named secret (the Standard Webhooks scheme; its reference vector is
    // checked in alerts.rs).
    let ts: u64 = find("webhook-timestamp").parse().expect("seconds");
    let secret = host.secrets.borrow()["OPENAI_API_KEY"].clone();
    assert_eq!(
        find("webhook-signature"),
        asc_core::alerts::signature(&secret, &find("webhook-id"), ts, body)
    );
    // The ledger's log: raised once, delivered.
    let reply = futures::executor::block_on(async {
        use asc_core::host::Host;
        host.ledger(&LedgerId("demo".into()), LedgerOp::Alerts { limit: 10 })
            .await
            .expect("ledger")
    });
    let LedgerReply::Alerts { alerts } = reply else {
        panic!("alerts")
    };
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].status,
        asc_core::ledger::insights::DeliveryStatus::Delivered
    );
}
