//! The response cache through the whole pipeline: hits answer without an upstream call in the
//! caller's dialect (whole or streamed), misses store what was served after the response, and
//! nothing the gateway guarantees is weakened: tenants never share entries, errors, blocks and
//! pending tool calls are not stored, redacted answers are stored redacted, hits are recorded
//! and counted against rate limits, and a failing cache store never fails a request.

mod common;

use asc_core::audit::{AuditEvent, CacheOutcome};
use common::*;
use serde_json::{json, Value};

fn cached_tenant(id: &str, cache: Value) -> Value {
    let mut t = demo_tenant();
    t["tenant_id"] = json!(id);
    t["cache"] = cache;
    t
}

fn setup(cache: Value) -> (asc_core::Gateway, FakeHost, String) {
    let host = FakeHost::new();
    host.put_tenant(&cached_tenant("demo", cache));
    let key = host.mint_key("demo", 1, &all_scopes());
    (local_gateway(), host, key)
}

fn ask(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": text}]})
}

fn completion_saying(text: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&completion_json()).expect("json");
    v["choices"][0]["message"]["content"] = json!(text);
    v.to_string().into_bytes()
}

fn content(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).expect("json body");
    v["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_string()
}

fn last_event(host: &FakeHost) -> AuditEvent {
    host.events
        .borrow()
        .last()
        .cloned()
        .expect("an audit record")
}

/// `data:` payloads of an SSE body, in order.
fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8(body.to_vec())
        .expect("utf-8")
        .split("\n\n")
        .filter_map(|ev| {
            ev.lines()
                .find_map(|l| l.strip_prefix("data: ").map(str::to_string))
        })
        .collect()
}

#[test]
fn a_repeated_request_is_answered_from_the_cache_without_an_upstream_call() {
    let (gw, host, key) = setup(json!({}));
    host.script(ok_json(completion_json()));
    let (status, headers, first) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-asc-cache"), Some("miss"));
    let miss = last_event(&host);
    let note = miss.detail.cache.clone().expect("cache note on the miss");
    assert_eq!(note.outcome, CacheOutcome::Miss);
    assert!(note.stored);
    assert_eq!(host.cache.borrow().len(), 1);

    let (status, headers, second) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(status, 200);
    assert_eq!(host.sent_count(), 1, "a hit makes no upstream call");
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    assert_eq!(header(&headers, "x-asc-attempts"), Some("0"));
    assert_eq!(header(&headers, "x-asc-cost-usd-micros"), Some("0"));
    assert_eq!(content(&second), "Hello there!");
    let (a, b): (Value, Value) = (
        serde_json::from_slice(&first).expect("json"),
        serde_json::from_slice(&second).expect("json"),
    );
    assert_ne!(a["id"], b["id"], "a hit is a new response with its own id");
    assert_eq!(a["usage"], b["usage"]);
    let hit = last_event(&host);
    let hit_note = hit.detail.cache.clone().expect("cache note on the hit");
    assert_eq!(hit_note.outcome, CacheOutcome::Hit);
    assert_eq!(
        hit_note.key, note.key,
        "the hit names the entry the miss stored"
    );
    assert!(hit.detail.attempts.is_empty());
    assert_eq!(hit.record.status, 200);
    assert_eq!(
        hit.detail.response_sha256,
        Some(asc_core::audit::content_sha256(&second))
    );
}

#[test]
fn a_hit_streams_when_the_client_asks_for_a_stream() {
    let (gw, host, key) = setup(json!({}));
    host.script(ok_json(completion_json()));
    run(&gw, &host, chat(&key, &ask("Hi")));
    let mut streamed = ask("Hi");
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, headers, body) = run(&gw, &host, chat(&key, &streamed));
    assert_eq!(status, 200);
    assert_eq!(host.sent_count(), 1);
    assert_eq!(header(&headers, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk json"))
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello there!");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    let usage = chunks
        .iter()
        .find(|c| !c["usage"].is_null())
        .expect("a usage chunk");
    assert_eq!(usage["usage"]["prompt_tokens"], 13);
    assert_eq!(usage["usage"]["completion_tokens"], 7);
}

/// Chunks as OpenAI's streaming reference shows them, ending with usage and `[DONE]`.
fn openai_stream(text: &[&str]) -> Scripted {
    let chunk = |delta: Value, finish: Value| {
        json!({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1694268190,
               "model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb",
               "choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":finish}]})
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        json!(null),
    )];
    for t in text {
        events.push(chunk(json!({"content": t}), json!(null)));
    }
    events.push(chunk(json!({}), json!("stop")));
    events.push(
        json!({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1694268190,
        "model":"gpt-4o-mini-2024-07-18","choices":[],
        "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}),
    );
    let mut bytes: Vec<Result<Vec<u8>, asc_core::host::HostError>> = events
        .iter()
        .map(|v| Ok(format!("data: {v}\n\n").into_bytes()))
        .collect();
    bytes.push(Ok(b"data: [DONE]\n\n".to_vec()));
    sse(bytes)
}

#[test]
fn a_streamed_miss_is_stored_and_serves_a_whole_reply_later() {
    let (gw, host, key) = setup(json!({}));
    host.script(openai_stream(&["Hel", "lo!"]));
    let mut streamed = ask("Hi");
    streamed["stream"] = json!(true);
    let (status, headers, _) = run(&gw, &host, chat(&key, &streamed));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-asc-cache"), Some("miss"));
    let note = last_event(&host).detail.cache.expect("note");
    assert!(note.stored, "a cleanly ended stream is stored");

    let (status, headers, body) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(status, 200);
    assert_eq!(host.sent_count(), 1);
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    assert_eq!(content(&body), "Hello!");
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["usage"]["prompt_tokens"], 9);
    assert_eq!(v["model"], "gpt-4o-mini-2024-07-18");
}

#[test]
fn a_broken_stream_is_not_stored() {
    let (gw, host, key) = setup(json!({}));
    // Cut before the finish and [DONE].
    host.script(sse(vec![Ok(
        b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n".to_vec(),
    )]));
    let mut streamed = ask("Hi");
    streamed["stream"] = json!(true);
    run(&gw, &host, chat(&key, &streamed));
    assert!(host.cache.borrow().is_empty());
    let note = last_event(&host).detail.cache.expect("note");
    assert!(!note.stored);
}

fn anthropic_tenant() -> Value {
    json!({
        "schema_version": 1, "tenant_id": "demo", "residency": "local",
        "models": {"claude": {"provider": "anthropic", "endpoint": "http://127.0.0.1:9100/anthropic/v1",
                              "upstream_model": "claude-sonnet-4-5", "credential": "OPENAI_API_KEY"}},
        "cache": {}
    })
}

/// A Messages API reply as Anthropic's reference shows it.
fn anthropic_message() -> Vec<u8> {
    json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Bonjour."}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 4}
    })
    .to_string()
    .into_bytes()
}

#[test]
fn anthropic_callers_get_hits_in_anthropics_shape_whole_and_streamed() {
    let host = FakeHost::new();
    host.put_tenant(&anthropic_tenant());
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    let body = json!({"model": "claude", "max_tokens": 64, "temperature": 0,
                      "messages": [{"role": "user", "content": "Say hello in French"}]});
    let messages = |body: &Value| {
        request(
            "POST",
            "/v1/messages",
            &[("x-api-key", &key), ("anthropic-version", "2023-06-01")],
            body.to_string().as_bytes(),
        )
    };
    host.script(ok_json(anthropic_message()));
    let (status, headers, _) = run(&gw, &host, messages(&body));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-asc-cache"), Some("miss"));

    let (status, headers, whole) = run(&gw, &host, messages(&body));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    assert_eq!(host.sent_count(), 1);
    let v: Value = serde_json::from_slice(&whole).expect("json");
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Bonjour.");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 12);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, headers, events) = run(&gw, &host, messages(&streamed));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    assert_eq!(host.sent_count(), 1);
    let text = String::from_utf8(events).expect("utf-8");
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(kinds.first(), Some(&"message_start"));
    assert_eq!(kinds.last(), Some(&"message_stop"));
    assert!(kinds.contains(&"content_block_delta"));
    assert!(text.contains("Bonjour."));
}

/// A tiny deterministic generator (xorshift64*): the seed is printed on failure.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn ten_thousand_random_tenant_prompt_pairs_never_hit_another_tenants_entry() {
    let host = FakeHost::new();
    host.observing.set(false);
    let tenants: Vec<(String, String)> = (0..24u8)
        .map(|i| {
            let id = format!("t{i}");
            host.put_tenant(&cached_tenant(&id, json!({})));
            let key = host.mint_key(&id, i + 1, &all_scopes());
            (id, key)
        })
        .collect();
    let gw = local_gateway();
    let seed = 0x5eed_cafe_u64;
    let mut rng = Rng(seed);
    let mut seen = std::collections::HashSet::new();
    let (mut hits, mut misses) = (0, 0);
    for i in 0..10_000 {
        let (tenant, key) = &tenants[(rng.next() % tenants.len() as u64) as usize];
        let prompt = format!("p{}", rng.next() % 40);
        let first_time = seen.insert((tenant.clone(), prompt.clone()));
        if first_time {
            // Only this tenant's upstream answer names this tenant and prompt.
            host.script(ok_json(completion_saying(&format!("{tenant}|{prompt}"))));
        }
        let scripted_before = host.script.borrow().len();
        let (status, headers, body) = run(&gw, &host, chat(key, &ask(&prompt)));
        assert_eq!(status, 200, "seed {seed:#x}, request {i}");
        assert_eq!(
            content(&body),
            format!("{tenant}|{prompt}"),
            "seed {seed:#x}, request {i}: an answer from another tenant or prompt"
        );
        let outcome = header(&headers, "x-asc-cache");
        if first_time {
            misses += 1;
            assert_eq!(outcome, Some("miss"), "seed {seed:#x}, request {i}");
            assert_eq!(
                host.script.borrow().len(),
                scripted_before - 1,
                "one upstream call"
            );
        } else {
            hits += 1;
            assert_eq!(outcome, Some("hit"), "seed {seed:#x}, request {i}");
            assert_eq!(
                host.script.borrow().len(),
                scripted_before,
                "no upstream call"
            );
        }
    }
    assert!(host.script.borrow().is_empty());
    // 24 tenants x 40 prompts: every pair is seen, most requests are repeats.
    assert_eq!(misses, seen.len());
    assert!(hits > 8_000, "{hits} hits");
}

#[test]
fn no_cache_refreshes_the_entry_and_no_store_leaves_the_cache_alone() {
    let (gw, host, key) = setup(json!({}));
    host.script(ok_json(completion_saying("old")));
    run(&gw, &host, chat(&key, &ask("Hi")));
    let with = |cc: &str| {
        let auth = format!("Bearer {key}");
        request(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth), ("cache-control", cc)],
            ask("Hi").to_string().as_bytes(),
        )
    };
    // no-store: upstream again, nothing read or written.
    host.script(ok_json(completion_saying("fresh, unstored")));
    let reads = host.cache_reads.get();
    let (_, headers, body) = run(&gw, &host, with("no-store"));
    assert_eq!(content(&body), "fresh, unstored");
    assert_eq!(header(&headers, "x-asc-cache"), Some("bypass"));
    assert_eq!(host.cache_reads.get(), reads);
    let note = last_event(&host).detail.cache.expect("note");
    assert_eq!(
        (note.outcome, note.reason.as_deref()),
        (CacheOutcome::Bypass, Some("no_store"))
    );
    let (_, _, body) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(content(&body), "old", "no-store did not replace the entry");

    // no-cache: upstream again, and the fresh answer replaces the entry.
    host.script(ok_json(completion_saying("new")));
    let (_, headers, body) = run(&gw, &host, with("no-cache"));
    assert_eq!(content(&body), "new");
    assert_eq!(header(&headers, "x-asc-cache"), Some("miss"));
    let (_, headers, body) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    assert_eq!(content(&body), "new");
    assert_eq!(host.sent_count(), 3);
}

#[test]
fn an_entry_expires_after_its_ttl_on_the_simulated_clock() {
    let (gw, host, key) = setup(json!({"ttl_seconds": 60}));
    host.script(ok_json(completion_saying("first")));
    run(&gw, &host, chat(&key, &ask("Hi")));
    host.advance(59_000);
    let (_, headers, _) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    host.advance(2_000);
    host.script(ok_json(completion_saying("second")));
    let (_, headers, body) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(header(&headers, "x-asc-cache"), Some("miss"));
    assert_eq!(content(&body), "second");
    assert_eq!(host.sent_count(), 2);
}

#[test]
fn sampled_requests_bypass_the_cache_unless_the_tenant_opts_them_in() {
    let (gw, host, key) = setup(json!({}));
    let sampled = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]});
    for _ in 0..2 {
        host.script(ok_json(completion_json()));
        let (_, headers, _) = run(&gw, &host, chat(&key, &sampled));
        assert_eq!(header(&headers, "x-asc-cache"), Some("bypass"));
    }
    assert_eq!(host.sent_count(), 2);
    assert!(host.cache.borrow().is_empty());
    let note = last_event(&host).detail.cache.expect("note");
    assert_eq!(note.reason.as_deref(), Some("nondeterministic"));

    let (gw, host, key) = setup(json!({"nondeterministic": true}));
    host.script(ok_json(completion_json()));
    run(&gw, &host, chat(&key, &sampled));
    let (_, headers, _) = run(&gw, &host, chat(&key, &sampled));
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    assert_eq!(host.sent_count(), 1);
}

#[test]
fn errors_blocks_and_pending_tool_calls_are_not_stored() {
    let mut tenant = cached_tenant("demo", json!({}));
    tenant["guardrails"] = json!({"detectors": {"credit_card": {"mode": "block"}}});
    let host = FakeHost::new();
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();

    // An upstream error.
    host.script(Scripted::Reply {
        status: 400,
        headers: vec![("content-type".into(), "application/json".into())],
        chunks: vec![Ok(br#"{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}"#.to_vec())],
    });
    let (status, _, _) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(status, 400);
    assert!(host.cache.borrow().is_empty());

    // A guardrail block never reaches the upstream or the cache.
    let (status, _, _) = run(&gw, &host, chat(&key, &ask("card 4111 1111 1111 1111")));
    assert_eq!(status, 400);
    assert!(host.cache.borrow().is_empty());

    // A reply asking for tool calls.
    let mut tool: Value = serde_json::from_slice(&completion_json()).expect("json");
    tool["choices"][0]["message"] = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]});
    tool["choices"][0]["finish_reason"] = json!("tool_calls");
    host.script(ok_json(tool.to_string().into_bytes()));
    let (status, _, _) = run(&gw, &host, chat(&key, &ask("Weather?")));
    assert_eq!(status, 200);
    assert!(host.cache.borrow().is_empty());
    let note = last_event(&host).detail.cache.expect("note");
    assert_eq!(note.reason.as_deref(), Some("tool_calls"));

    // ...unless the tenant says so.
    let (gw, host, key) = setup(json!({"store_tool_calls": true}));
    host.script(ok_json(tool.to_string().into_bytes()));
    run(&gw, &host, chat(&key, &ask("Weather?")));
    let (_, headers, body) = run(&gw, &host, chat(&key, &ask("Weather?")));
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "weather"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn a_response_redacted_on_its_way_out_is_stored_redacted() {
    let mut tenant = cached_tenant("demo", json!({}));
    tenant["guardrails"] = json!({"detectors": {"email": {"mode": "redact"}},
                                  "apply_to": {"requests": true, "responses": true}});
    let host = FakeHost::new();
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    host.script(ok_json(completion_saying("Write to jane.doe@example.com")));
    let (_, _, first) = run(&gw, &host, chat(&key, &ask("Who?")));
    assert!(!content(&first).contains("jane.doe@example.com"));
    let stored: Vec<Vec<u8>> = host
        .cache
        .borrow()
        .values()
        .map(|(e, _)| e.clone())
        .collect();
    assert_eq!(stored.len(), 1);
    assert!(
        !String::from_utf8_lossy(&stored[0]).contains("jane.doe@example.com"),
        "the stored entry holds the redacted answer"
    );
    let (_, headers, second) = run(&gw, &host, chat(&key, &ask("Who?")));
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    assert_eq!(content(&second), content(&first));
}

#[test]
fn hits_are_free_by_default_but_count_against_request_rate_limits() {
    let mut tenant = cached_tenant("demo", json!({}));
    tenant["limits"] = json!({"requests_per_minute": 3});
    tenant["budgets"] = json!([{"id": "monthly", "applies_to": "tenant",
        "limit_usd_micros": 1_000_000, "period": "monthly"}]);
    let host = FakeHost::new();
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    host.script(ok_json(completion_json()));
    let (_, headers, _) = run(&gw, &host, chat(&key, &ask("Hi")));
    let miss_cost: u64 = header(&headers, "x-asc-cost-usd-micros")
        .expect("cost")
        .parse()
        .expect("int");
    assert!(miss_cost > 0);
    for _ in 0..2 {
        let (status, headers, _) = run(&gw, &host, chat(&key, &ask("Hi")));
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
        assert_eq!(header(&headers, "x-asc-cost-usd-micros"), Some("0"));
    }
    let (status, _, body) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(status, 429, "the fourth request in the minute, hit or not");
    assert_eq!(error_code(&body), "rate_limit_exceeded");
    let auth = format!("Bearer {key}");
    let (_, _, usage) = run(
        &gw,
        &host,
        request("GET", "/v1/usage", &[("authorization", &auth)], b""),
    );
    let usage: Value = serde_json::from_slice(&usage).expect("json");
    assert_eq!(
        usage["budgets"][0]["spent_micros"], miss_cost,
        "hits added nothing"
    );
}

#[test]
fn hits_are_charged_what_the_answer_cost_when_the_tenant_says_so() {
    let (gw, host, key) = setup(json!({"charge_hits": true}));
    host.script(ok_json(completion_json()));
    let (_, headers, _) = run(&gw, &host, chat(&key, &ask("Hi")));
    let miss_cost = header(&headers, "x-asc-cost-usd-micros").map(str::to_string);
    let (_, headers, _) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    assert_eq!(
        header(&headers, "x-asc-cost-usd-micros").map(str::to_string),
        miss_cost
    );
    let hit = last_event(&host);
    assert_eq!(hit.record.usage.map(|u| u.output_tokens), Some(7));
}

#[test]
fn a_failing_cache_store_never_fails_a_request() {
    let (gw, host, key) = setup(json!({}));
    host.cache_down.set(true);
    for _ in 0..2 {
        host.script(ok_json(completion_json()));
        let (status, headers, body) = run(&gw, &host, chat(&key, &ask("Hi")));
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-asc-cache"), Some("miss"));
        assert_eq!(content(&body), "Hello there!");
    }
    assert_eq!(host.sent_count(), 2);
}

#[test]
fn embeddings_are_cached_whole() {
    let (gw, host, key) = setup(json!({"operations": ["embeddings"]}));
    let reply = json!({"object": "list", "data": [{"object": "embedding", "index": 0,
        "embedding": [0.1, -0.2]}], "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 3, "total_tokens": 3}});
    host.script(ok_json(reply.to_string().into_bytes()));
    let body = json!({"model": "gpt-4o-mini", "input": "hello", "encoding_format": "float"});
    let auth = format!("Bearer {key}");
    let embed = |body: &Value| {
        request(
            "POST",
            "/v1/embeddings",
            &[("authorization", &auth)],
            body.to_string().as_bytes(),
        )
    };
    let (status, headers, first) = run(&gw, &host, embed(&body));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    assert_eq!(header(&headers, "x-asc-cache"), Some("miss"));
    let (status, headers, second) = run(&gw, &host, embed(&body));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    assert_eq!(host.sent_count(), 1);
    let (a, b): (Value, Value) = (
        serde_json::from_slice(&first).expect("json"),
        serde_json::from_slice(&second).expect("json"),
    );
    assert_eq!(a["data"], b["data"]);

    // An upstream's refusal of another input is answered with the cache's outcome and the
    // route's headers, as chat answers one, and is not stored.
    let refused = json!({"model": "gpt-4o-mini", "input": "refuse me"});
    for _ in 0..2 {
        host.script(Scripted::Reply {
            status: 400,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![Ok(br#"{"error":{"message":"bad input","type":"invalid_request_error","param":"input","code":null}}"#.to_vec())],
        });
        let (status, headers, _) = run(&gw, &host, embed(&refused));
        assert_eq!(status, 400);
        assert_eq!(header(&headers, "x-asc-cache"), Some("miss"));
        assert_eq!(header(&headers, "x-asc-attempts"), Some("1"));
    }
    assert_eq!(
        host.sent_count(),
        3,
        "the refusal was not served from the cache"
    );

    // Chat is not among this tenant's cached operations: no cache header at all.
    host.script(ok_json(completion_json()));
    let (_, headers, _) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(header(&headers, "x-asc-cache"), None);
}

#[test]
fn an_isolate_reads_an_entry_from_the_store_once_and_drops_it_on_a_refresh() {
    let (gw, host, key) = setup(json!({}));
    host.script(ok_json(completion_saying("one")));
    run(&gw, &host, chat(&key, &ask("Hi")));
    let reads = host.cache_reads.get();
    for _ in 0..3 {
        let (_, headers, body) = run(&gw, &host, chat(&key, &ask("Hi")));
        assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
        assert_eq!(content(&body), "one");
    }
    assert_eq!(
        host.cache_reads.get(),
        reads + 1,
        "later hits come from the isolate's copy"
    );

    // A refresh in this isolate: the next hit is the new answer, read from the store again.
    host.script(ok_json(completion_saying("two")));
    let auth = format!("Bearer {key}");
    run(
        &gw,
        &host,
        request(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth), ("cache-control", "no-cache")],
            ask("Hi").to_string().as_bytes(),
        ),
    );
    let (_, _, body) = run(&gw, &host, chat(&key, &ask("Hi")));
    assert_eq!(content(&body), "two");

    // Another isolate (a new gateway) sees the stored entry.
    let (_, headers, body) = run(&local_gateway(), &host, chat(&key, &ask("Hi")));
    assert_eq!(header(&headers, "x-asc-cache"), Some("hit"));
    assert_eq!(content(&body), "two");
}
