//! Streaming pass-through: events reach the client as the upstream sends them, never collected
//! first; broken streams end with a terminal error event, never a clean `[DONE]`.

mod common;

use asc_core::audit::Outcome;
use asc_core::host::HostError;
use asc_core::pipeline::http::ReplyBody;
use common::*;
use serde_json::json;

fn setup() -> (asc_core::Gateway, FakeHost, String) {
    let host = FakeHost::new();
    host.put_tenant(&demo_tenant());
    let key = host.mint_key("demo", 1, &all_scopes());
    (local_gateway(), host, key)
}

fn stream_request() -> serde_json::Value {
    json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Hi"}]
    })
}

/// Chunks as OpenAI's streaming reference shows them, with `include_usage`.
fn openai_events() -> Vec<Vec<u8>> {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,
               "model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb",
               "choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":finish}],
               "usage":null})
    };
    let usage = json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,
        "model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb","choices":[],
        "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}});
    [
        chunk(json!({"role":"assistant","content":""}), json!(null)),
        chunk(json!({"content":"Hello"}), json!(null)),
        chunk(json!({"content":"!"}), json!(null)),
        chunk(json!({}), json!("stop")),
        usage,
    ]
    .iter()
    .map(|v| format!("data: {v}\n\n").into_bytes())
    .chain(std::iter::once(b"data: [DONE]\n\n".to_vec()))
    .collect()
}

#[test]
fn the_first_event_reaches_the_client_before_the_upstream_has_finished() {
    let (gw, host, key) = setup();
    let events = openai_events();
    host.script(sse(events.iter().cloned().map(Ok).collect()));
    block_on(async {
        let reply = gw.handle(&host, chat(&key, &stream_request())).await.reply;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("text/event-stream"));
        let ReplyBody::Stream(mut relay) = reply.body else {
            panic!("expected a stream")
        };
        let progress = host.last_body_progress.borrow().clone().expect("body");
        let first = relay.next().await.expect("first chunk");
        assert_eq!(first, events[0]);
        assert_eq!(progress.get(), 1, "only one upstream chunk had been read");
        assert!(host.audit.borrow().is_empty(), "the stream is not over yet");
        // ...but its record is already durable in the ledger, open, in case the client leaves.
        let opened = host.open_requests();
        assert_eq!(opened.len(), 1);
        let opening = opened[0].record.event().expect("an audit record");
        assert_eq!(opening.record.outcome, Outcome::Partial);
        assert!(opening.record.stream);
        assert!(opened[0].expires_ms > host.clock_ms.get());
        let mut rest = Vec::new();
        while let Some(c) = relay.next().await {
            rest.push(c);
        }
        assert!(
            host.audit.borrow().is_empty(),
            "recorded when the adapter finishes it"
        );
        relay.finish(&gw, &host).await.expect("finished");
        assert!(host.open_requests().is_empty());
        assert_eq!(
            rest,
            events[1..].to_vec(),
            "each event forwarded as it came, byte for byte"
        );
        let mut all = first.clone();
        all.extend(rest.concat());
        let event = host.events.borrow()[0].clone();
        assert_eq!(
            event.detail.response_sha256,
            Some(asc_core::audit::content_sha256(&all)),
            "the record hashes what the client got"
        );
        assert!(event.detail.prompt_sha256.is_some());
    });
    let audit = host.audit.borrow();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, Outcome::Ok);
    assert!(audit[0].stream);
    assert_eq!(
        audit[0].usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((9, 2))
    );
}

#[test]
fn events_split_anywhere_are_forwarded_whole() {
    let (gw, host, key) = setup();
    let whole: Vec<u8> = openai_events().concat();
    // Three-byte pieces split events, lines and (in general) UTF-8 characters.
    host.script(sse(whole.chunks(3).map(|c| Ok(c.to_vec())).collect()));
    let (status, _, body) = run(&gw, &host, chat(&key, &stream_request()));
    assert_eq!(status, 200);
    assert_eq!(body, whole);
}

#[test]
fn a_cut_stream_ends_with_a_terminal_error_event() {
    let (gw, host, key) = setup();
    let events = openai_events();
    host.script(sse(vec![
        Ok(events[0].clone()),
        Ok(events[1].clone()),
        Ok(b"data: {\"id\":".to_vec()),
    ]));
    let (_, _, body) = run(&gw, &host, chat(&key, &stream_request()));
    let text = String::from_utf8(body).expect("utf8");
    assert!(!text.contains("[DONE]"));
    assert!(
        !text.contains("data: {\"id\":\n"),
        "the partial event is not forwarded"
    );
    let last = text.trim_end().rsplit("\n\n").next().expect("last event");
    let v: serde_json::Value =
        serde_json::from_str(last.trim_start_matches("data: ")).expect("json");
    assert_eq!(v["error"]["code"], "upstream_error");
    assert_eq!(host.audit.borrow()[0].outcome, Outcome::Partial);
}

#[test]
fn a_connection_error_mid_stream_is_terminal_too() {
    let (gw, host, key) = setup();
    let events = openai_events();
    host.script(sse(vec![
        Ok(events[0].clone()),
        Err(HostError::Unreachable("reset".into())),
    ]));
    let (_, _, body) = run(&gw, &host, chat(&key, &stream_request()));
    let text = String::from_utf8(body).expect("utf8");
    assert!(
        text.ends_with("\n\n") && text.contains("\"code\":\"upstream_unreachable\""),
        "{text}"
    );
    assert!(!text.contains("[DONE]"));
}

#[test]
fn a_malformed_chunk_ends_the_stream_instead_of_breaking_the_client() {
    let (gw, host, key) = setup();
    let events = openai_events();
    host.script(sse(vec![
        Ok(events[0].clone()),
        Ok(b"data: {\"id\": \"broken\n\n".to_vec()),
        Ok(events[1].clone()),
        Ok(b"data: [DONE]\n\n".to_vec()),
    ]));
    let (_, _, body) = run(&gw, &host, chat(&key, &stream_request()));
    let text = String::from_utf8(body).expect("utf8");
    assert!(
        text.contains("\"code\":\"upstream_bad_response\""),
        "{text}"
    );
    assert!(!text.contains("broken"));
    assert!(!text.contains("[DONE]"));
}

#[test]
fn an_upstream_error_event_ends_the_stream_with_the_gateways_error_event() {
    let (gw, host, key) = setup();
    let events = openai_events();
    let error = b"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n".to_vec();
    host.script(sse(vec![
        Ok(events[0].clone()),
        Ok(error),
        Ok(events[1].clone()),
    ]));
    let (_, _, body) = run(&gw, &host, chat(&key, &stream_request()));
    // The content before the error arrives untouched; the error becomes the last event, with the
    // gateway's stable code and the provider's message; nothing after it is relayed.
    assert!(body.starts_with(&events[0]));
    let rest = std::str::from_utf8(&body[events[0].len()..]).expect("utf8");
    let data = rest
        .strip_prefix("data: ")
        .and_then(|r| r.strip_suffix("\n\n"))
        .expect("one data event");
    let v: serde_json::Value = serde_json::from_str(data).expect("json");
    assert_eq!(v["error"]["code"], "upstream_error");
    assert!(v["error"]["message"]
        .as_str()
        .expect("message")
        .contains("overloaded"));
    assert_eq!(host.audit.borrow()[0].outcome, Outcome::Partial);
}

#[test]
fn an_upstream_refusal_of_a_stream_request_is_a_json_error() {
    let (gw, host, key) = setup();
    host.script(Scripted::Reply {
        status: 503,
        headers: vec![("content-type".into(), "application/json".into())],
        chunks: vec![Ok(b"{\"error\":{\"message\":\"overloaded\"}}".to_vec())],
    });
    let (status, headers, body) = run(&gw, &host, chat(&key, &stream_request()));
    assert_eq!(
        (status, error_code(&body).as_str()),
        (502, "upstream_error")
    );
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
}
