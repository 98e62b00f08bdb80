//! Budgets through the whole pipeline: reserve before the upstream call, settle after it, refuse
//! with 429 when a hard budget has no room, and report it all in `/v1/usage`.

mod common;

use asc_core::apikey::{ApiKey, KeyRecord};
use asc_core::host::HostError;
use asc_core::secret::Secret;
use common::*;
use serde_json::json;

/// gpt-4o-mini-2024-07-18 in the built-in table: $0.15 in / $0.60 out per 1M tokens.
fn budget_tenant(limit_micros: u64) -> serde_json::Value {
    let mut t = demo_tenant();
    t["budgets"] = json!([
        {"id": "monthly", "applies_to": "tenant", "limit_usd_micros": limit_micros, "period": "monthly", "alert_at_percent": [50]},
        {"id": "research", "applies_to": {"tag": "bu:research"}, "limit_usd_micros": 1_000_000_000u64, "period": "daily", "mode": "soft"}
    ]);
    t
}

fn ask(max_tokens: u64) -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "Hi"}]})
}

fn cost_header(headers: &[(String, String)]) -> u64 {
    header(headers, "x-asc-cost-usd-micros")
        .expect("cost header")
        .parse()
        .expect("integer")
}

fn usage_report(gw: &asc_core::Gateway, host: &FakeHost, key: &str) -> serde_json::Value {
    let auth = format!("Bearer {key}");
    let (status, _, body) = run(
        gw,
        host,
        request("GET", "/v1/usage", &[("authorization", &auth)], b""),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("json")
}

fn budget<'v>(report: &'v serde_json::Value, id: &str) -> &'v serde_json::Value {
    report["budgets"]
        .as_array()
        .expect("budgets")
        .iter()
        .find(|b| b["budget_id"] == id)
        .expect("budget in report")
}

#[test]
fn a_hard_budget_admits_only_what_fits_and_usage_agrees_with_the_charges() {
    let host = FakeHost::new();
    // Worst case of one request: ~130 body bytes as input tokens + 1000 output tokens
    // = 1000 * 0.6 + 130 * 0.15 ~= 620 micro-USD. Actual (completion_json): 13 input tokens of
    // which 4 cached, 7 output: 9 * 0.15 + 4 * 0.075 + 7 * 0.60 = 5.85 -> 6 micro-USD.
    host.put_tenant(&budget_tenant(2_000));
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    let mut charged = 0;
    let mut served = 0;
    for _ in 0..400 {
        host.script(ok_json(completion_json()));
        let (status, headers, body) = run(&gw, &host, chat(&key, &ask(1000)));
        match status {
            200 => {
                served += 1;
                charged += cost_header(&headers);
                assert!(header(&headers, "x-asc-reserved-usd-micros").is_some());
            }
            429 => {
                assert_eq!(error_code(&body), "budget_exceeded");
                let retry: u64 = header(&headers, "retry-after")
                    .expect("retry-after")
                    .parse()
                    .expect("int");
                assert!(retry > 0);
                break;
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert_eq!(charged, served * 6);
    let report = usage_report(&gw, &host, &key);
    let monthly = budget(&report, "monthly");
    assert_eq!(monthly["spent_micros"], charged);
    assert_eq!(monthly["reserved_micros"], 0);
    assert!(charged <= 2_000);
    // Nothing more fits: the remaining room is below one request's worst case.
    assert!(monthly["remaining_micros"].as_u64().expect("u64") < 700);
    let upstream_calls = host.sent_count() as u64;
    assert_eq!(
        upstream_calls, served,
        "refused requests never reached the upstream"
    );
}

#[test]
fn failed_upstream_calls_release_their_reservation() {
    let host = FakeHost::new();
    host.put_tenant(&budget_tenant(1_000_000));
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    host.script(Scripted::Fail(HostError::Timeout));
    assert_eq!(run(&gw, &host, chat(&key, &ask(100))).0, 504);
    host.script(Scripted::Reply {
        status: 500,
        headers: vec![],
        chunks: vec![Ok(b"{}".to_vec())],
    });
    assert_eq!(run(&gw, &host, chat(&key, &ask(100))).0, 502);
    let monthly = budget(&usage_report(&gw, &host, &key), "monthly").clone();
    assert_eq!(
        (
            monthly["spent_micros"].as_u64(),
            monthly["reserved_micros"].as_u64()
        ),
        (Some(0), Some(0))
    );
}

#[test]
fn a_lost_settle_is_charged_at_the_reserved_amount_when_the_reservation_expires() {
    let host = FakeHost::new();
    let mut tenant = budget_tenant(1_000_000);
    tenant["limits"] = json!({"reservation_ttl_ms": 5_000});
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    host.script(ok_json(completion_json()));
    // A first request settles normally and shows what one such request reserves.
    let (status, headers, _) = run(&gw, &host, chat(&key, &ask(100)));
    assert_eq!(status, 200);
    let reserved = header(&headers, "x-asc-reserved-usd-micros")
        .expect("reserved")
        .parse::<u64>()
        .expect("int");
    // The next one is answered, but the isolate dies before its commit runs.
    let before = budget(&usage_report(&gw, &host, &key), "monthly")["spent_micros"]
        .as_u64()
        .expect("u64");
    host.script(ok_json(completion_json()));
    let handled = block_on(gw.handle(&host, chat(&key, &ask(100))));
    assert_eq!(handled.reply.status, 200);
    let lost = handled
        .reply
        .header("x-request-id")
        .expect("id")
        .to_string();
    drop(handled.after);
    assert!(
        !host.audit.borrow().iter().any(|r| r.request_id == lost),
        "not recorded yet"
    );
    let open = budget(&usage_report(&gw, &host, &key), "monthly").clone();
    assert_eq!(
        open["reserved_micros"].as_u64(),
        Some(reserved),
        "the reservation is still held"
    );
    host.advance(5_001);
    let after = budget(&usage_report(&gw, &host, &key), "monthly").clone();
    assert_eq!(after["reserved_micros"].as_u64(), Some(0));
    assert_eq!(
        after["spent_micros"].as_u64(),
        Some(before + reserved),
        "charged at the reserved amount"
    );
    let audit = host.audit.borrow();
    let record = audit
        .iter()
        .find(|r| r.request_id == lost)
        .expect("recorded from its opening record");
    assert_eq!(record.outcome, asc_core::audit::Outcome::Partial);
    assert_eq!(record.error_code.as_deref(), Some("request_unfinished"));
    let events = host.events.borrow();
    let event = events
        .iter()
        .find(|e| e.record.request_id == lost)
        .expect("event");
    assert_eq!(event.detail.settled_usd_micros, Some(reserved));
}

#[test]
fn a_stream_is_charged_from_its_usage_which_the_client_did_not_ask_for() {
    let host = FakeHost::new();
    host.put_tenant(&budget_tenant(1_000_000));
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    let usage_chunk = json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],
        "usage":{"prompt_tokens":1000,"completion_tokens":1000,"total_tokens":2000}});
    host.script(sse(vec![
        Ok(b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n".to_vec()),
        Ok(format!("data: {usage_chunk}\n\n").into_bytes()),
        Ok(b"data: [DONE]\n\n".to_vec()),
    ]));
    let body = json!({"model": "gpt-4o-mini", "stream": true,
        "stream_options": {"include_obfuscation": false},
        "messages": [{"role": "user", "content": "Hi"}]});
    let (status, _, out) = run(&gw, &host, chat(&key, &body));
    assert_eq!(status, 200);
    let sent = host.sent.borrow()[0].body.clone();
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "the gateway asked for usage"
    );
    assert_eq!(
        sent["stream_options"]["include_obfuscation"], false,
        "the client's own stream options are kept"
    );
    let text = String::from_utf8(out).expect("utf8");
    assert!(
        !text.contains("\"prompt_tokens\""),
        "the usage chunk the client did not ask for is removed: {text}"
    );
    assert!(text.ends_with("data: [DONE]\n\n"));
    // 1000 * 0.15 + 1000 * 0.60 = 750 micro-USD.
    let monthly = budget(&usage_report(&gw, &host, &key), "monthly").clone();
    assert_eq!(monthly["spent_micros"].as_u64(), Some(750));
}

#[test]
fn a_cut_stream_without_usage_is_charged_what_was_counted_never_zero() {
    let host = FakeHost::new();
    host.put_tenant(&budget_tenant(1_000_000));
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    let content = "x".repeat(4000);
    host.script(sse(vec![Ok(format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
    ).into_bytes())]));
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let (status, _, _) = run(&gw, &host, chat(&key, &body));
    assert_eq!(status, 200);
    let spent = budget(&usage_report(&gw, &host, &key), "monthly")["spent_micros"]
        .as_u64()
        .expect("u64");
    // 4000 bytes of output ~ 1000 tokens * 0.60 = 600 micro-USD, plus the request's input estimate.
    assert!((600..700).contains(&spent), "charged {spent}");
}

#[test]
fn tag_budgets_count_only_keys_with_the_tag() {
    let host = FakeHost::new();
    host.put_tenant(&budget_tenant(1_000_000));
    let plain = host.mint_key("demo", 1, &all_scopes());
    let tagged = host.mint_key("demo", 2, &all_scopes());
    // Give the second key the business-unit tag.
    {
        let hash = ApiKey::parse(&tagged)
            .expect("key")
            .hash(&Secret::new(KEY_SECRET));
        let name = format!("key:{hash}");
        let mut kv = host.kv.borrow_mut();
        let mut rec: KeyRecord = serde_json::from_slice(&kv[&name]).expect("record");
        rec.tags = vec!["bu:research".into()];
        kv.insert(name, serde_json::to_vec(&rec).expect("json"));
    }
    let gw = local_gateway();
    host.script(ok_json(completion_json()));
    host.script(ok_json(completion_json()));
    assert_eq!(run(&gw, &host, chat(&plain, &ask(10))).0, 200);
    assert_eq!(run(&gw, &host, chat(&tagged, &ask(10))).0, 200);
    let report = usage_report(&gw, &host, &tagged);
    assert_eq!(
        budget(&report, "research")["spent_micros"].as_u64(),
        Some(6)
    );
    assert_eq!(
        budget(&report, "monthly")["spent_micros"].as_u64(),
        Some(12),
        "both keys count against the tenant"
    );
    let plain_report = usage_report(&gw, &host, &plain);
    assert!(plain_report["budgets"]
        .as_array()
        .expect("list")
        .iter()
        .all(|b| b["budget_id"] != "research"));
}

#[test]
fn an_unpriced_model_with_budgets_is_refused() {
    let host = FakeHost::new();
    let mut tenant = budget_tenant(1_000_000);
    tenant["models"]["gpt-4o-mini"]["upstream_model"] = json!("some-private-finetune");
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let (status, _, body) = run(&local_gateway(), &host, chat(&key, &ask(10)));
    assert_eq!((status, error_code(&body).as_str()), (503, "price_unknown"));
    assert_eq!(host.sent_count(), 0);
}

#[test]
fn token_rate_limits_refuse_what_would_exceed_the_minute() {
    let host = FakeHost::new();
    let mut tenant = demo_tenant();
    tenant["limits"] = json!({"tokens_per_minute": 2000});
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    host.script(ok_json(completion_json()));
    assert_eq!(run(&gw, &host, chat(&key, &ask(1000))).0, 200);
    // The first request used 20 tokens of its ~1130 reserved; the rest came back.
    host.script(ok_json(completion_json()));
    assert_eq!(run(&gw, &host, chat(&key, &ask(1000))).0, 200);
    // 40 tokens are used; a worst case of 1990 (body bytes + max_tokens) fits the limit but not
    // what is left of this minute.
    let body_bytes = ask(1000).to_string().len() as u64;
    let (status, headers, body) = run(&gw, &host, chat(&key, &ask(1990 - body_bytes)));
    assert_eq!(
        (status, error_code(&body).as_str()),
        (429, "token_rate_limit_exceeded")
    );
    let retry: u64 = header(&headers, "retry-after")
        .expect("retry-after")
        .parse()
        .expect("int");
    assert!((1..=60).contains(&retry));
    // A request larger than the whole limit can never fit: no Retry-After to wait for.
    let (status, headers, _) = run(&gw, &host, chat(&key, &ask(5000)));
    assert_eq!(status, 429);
    assert!(header(&headers, "retry-after").is_none());
}

#[test]
fn sharded_ledgers_never_exceed_the_tenant_budget_and_report_it_whole() {
    let host = FakeHost::new();
    let mut tenant = budget_tenant(2_000);
    tenant["limits"] = json!({"ledger_shards": 4});
    host.put_tenant(&tenant);
    let keys: Vec<String> = (1..=12)
        .map(|seed| host.mint_key("demo", seed, &all_scopes()))
        .collect();
    let gw = local_gateway();
    let mut charged = 0;
    for round in 0..200 {
        let key = &keys[round % keys.len()];
        host.script(ok_json(completion_json()));
        let (status, headers, _) = run(&gw, &host, chat(key, &ask(1000)));
        if status == 200 {
            charged += cost_header(&headers);
        } else {
            assert_eq!(status, 429);
        }
    }
    // Four ledgers hold a share of 500 each.
    let ledgers: Vec<String> = host.ledgers.borrow().keys().cloned().collect();
    assert!(ledgers.len() > 1, "keys spread over shards: {ledgers:?}");
    assert!(ledgers.iter().all(|l| l.starts_with("demo#")));
    let report = usage_report(&gw, &host, &keys[0]);
    assert_eq!(report["ledger_shards"], 4);
    let monthly = budget(&report, "monthly");
    assert_eq!(
        monthly["limit_micros"], 2_000,
        "shares add up to the whole budget"
    );
    assert_eq!(monthly["spent_micros"], charged);
    assert!(charged <= 2_000);
}

/// Tenant `demo` with a budget of 100 micro-USD alerting at 5% to a `finance` webhook, and a key.
fn alerting_budget_tenant() -> (FakeHost, asc_core::Gateway, String) {
    let host = FakeHost::new();
    let mut tenant = budget_tenant(100);
    tenant["budgets"][0]["alert_at_percent"] = json!([5]);
    tenant["alerts"] = json!({"webhooks": [{"id": "finance", "url": "http://127.0.0.1:9100/hooks",
        "secret": "OPENAI_API_KEY", "events": ["budget.threshold"]}]});
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    (host, local_gateway(), key)
}

#[test]
fn a_threshold_the_last_requests_charge_crosses_is_delivered_after_it_with_no_more_traffic() {
    // 5% of 100 is crossed by the settled 6 micro-USD, not by the reservation (nothing spent at
    // admission): the commit raises the alert, and its call hands it over.
    let (host, gw, key) = alerting_budget_tenant();
    host.script(ok_json(completion_json()));
    host.script(ok_json(b"{}".to_vec()));
    let (status, headers, body) = run(&gw, &host, chat(&key, &ask(10)));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(cost_header(&headers), 6);
    let hooks: Vec<serde_json::Value> = host
        .sent
        .borrow()
        .iter()
        .filter(|s| s.url.ends_with("/hooks"))
        .map(|s| s.body.clone())
        .collect();
    assert_eq!(hooks.len(), 1, "delivered once, right after the request");
    assert_eq!(hooks[0]["type"], "budget.threshold");
    assert_eq!(hooks[0]["data"]["detail"]["percent"], 5);
    assert_eq!(hooks[0]["data"]["detail"]["spent_usd_micros"], 6);
}

/// The webhook deliveries the host made, in order.
fn hook_deliveries(host: &FakeHost) -> Vec<Sent> {
    host.sent
        .borrow()
        .iter()
        .filter(|s| s.url.ends_with("/hooks"))
        .cloned()
        .collect()
}

#[test]
fn a_failed_alert_of_a_tenant_without_traffic_is_delivered_by_the_sweep() {
    use asc_core::host::Host;
    use asc_core::ledger::insights::SWEEP_AFTER_MS;
    use asc_core::ledger::LedgerId;
    let (host, gw, key) = alerting_budget_tenant();
    host.script(ok_json(completion_json()));
    // The receiver is down when the request's after-work delivers: a retry is due in 2 s.
    host.script(Scripted::Reply {
        status: 503,
        headers: vec![],
        chunks: vec![Ok(Vec::new())],
    });
    let (status, _, body) = run(&gw, &host, chat(&key, &ask(10)));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(hook_deliveries(&host).len(), 1);
    let ledger = LedgerId("demo".into());
    let due = {
        let ledgers = host.ledgers.borrow();
        ledgers["demo"]
            .alerts_sweep_due_ms()
            .expect("a pending alert")
    };
    assert_eq!(
        due,
        host.now().millis() + asc_core::alerts::retry_delay_ms(1) + SWEEP_AFTER_MS
    );

    // No more traffic. A sweep before the retry is due claims and sends nothing.
    let (claimed, _) = block_on(gw.deliver_swept_alerts(&host, &ledger)).expect("swept");
    assert_eq!(claimed, 0);
    assert_eq!(hook_deliveries(&host).len(), 1);

    // The ledger marks itself at `due`; the sweep then delivers the same event again, signed.
    host.advance(due - host.now().millis());
    host.script(ok_json(b"{}".to_vec()));
    let (claimed, failures) = block_on(gw.deliver_swept_alerts(&host, &ledger)).expect("swept");
    assert_eq!((claimed, failures.len()), (1, 0), "{failures:?}");
    let hooks = hook_deliveries(&host);
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[1].body, hooks[0].body, "the same event");
    assert_eq!(hooks[1].header("webhook-id"), hooks[0].header("webhook-id"));
    assert!(hooks[1]
        .header("webhook-signature")
        .is_some_and(|s| s.starts_with("v1,")));
    let ledgers = host.ledgers.borrow();
    assert_eq!(ledgers["demo"].alerts_sweep_due_ms(), None, "delivered");
}

#[test]
fn a_swept_alert_of_a_tenant_whose_config_is_gone_is_settled_unsubscribed() {
    use asc_core::ledger::insights::SWEEP_AFTER_MS;
    use asc_core::ledger::LedgerId;
    let (host, gw, key) = alerting_budget_tenant();
    host.script(ok_json(completion_json()));
    host.script(Scripted::Fail(HostError::Unreachable(
        "receiver down".into(),
    )));
    let (status, _, _) = run(&gw, &host, chat(&key, &ask(10)));
    assert_eq!(status, 200);
    // The tenant is deleted (and this isolate forgets it) before the sweep comes.
    host.kv.borrow_mut().retain(|k, _| !k.starts_with("tenant"));
    gw.forget_tenant("demo");
    host.advance(asc_core::alerts::retry_delay_ms(1) + SWEEP_AFTER_MS);
    let ledger = LedgerId("demo".into());
    let (claimed, failures) = block_on(gw.deliver_swept_alerts(&host, &ledger)).expect("swept");
    assert_eq!((claimed, failures.len()), (1, 0), "{failures:?}");
    assert_eq!(hook_deliveries(&host).len(), 1, "nobody to send it to");
    let ledgers = host.ledgers.borrow();
    assert_eq!(ledgers["demo"].alerts_sweep_due_ms(), None, "settled");
}
