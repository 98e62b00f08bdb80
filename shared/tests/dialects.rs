//! The caller's dialect through the pipeline: Anthropic clients get Anthropic's error shape (with
//! ASC's stable code), versions and betas the mapper does not implement are refused, and an
//! upstream provider's error reaches a client of another dialect with its status and words.

mod common;

use common::*;
use serde_json::{json, Value};

fn tenant() -> Value {
    json!({
        "schema_version": 1, "tenant_id": "demo", "residency": "local",
        "models": {
            "claude": {"provider": "anthropic", "endpoint": "http://127.0.0.1:9100/anthropic/v1", "credential": "OPENAI_API_KEY"},
            "gpt": {"provider": "openai", "endpoint": "http://127.0.0.1:9100/v1", "credential": "OPENAI_API_KEY"}
        }
    })
}

fn messages(
    key: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> asc_core::pipeline::http::Inbound<asc_core::host::Chunks> {
    let mut all = vec![("x-api-key", key)];
    all.extend_from_slice(headers);
    request("POST", "/v1/messages", &all, body.to_string().as_bytes())
}

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]})
}

fn setup() -> (asc_core::Gateway, FakeHost, String) {
    let host = FakeHost::new();
    host.put_tenant(&tenant());
    let key = host.mint_key("demo", 1, &all_scopes());
    (local_gateway(), host, key)
}

#[test]
fn anthropic_clients_get_anthropics_error_shape_with_the_stable_code() {
    let (gw, host, key) = setup();
    let (status, _, body) = run(
        &gw,
        &host,
        messages(&key, &[], json!({"model": "claude", "messages": []})),
    );
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status, 400);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["code"].is_string());
    assert_eq!(host.sent_count(), 0);
}

#[test]
fn unknown_versions_and_betas_are_refused_before_anything_is_sent() {
    let (gw, host, key) = setup();
    let (status, _, body) = run(
        &gw,
        &host,
        messages(&key, &[("anthropic-version", "latest")], hello("claude")),
    );
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        (status, v["error"]["param"].as_str()),
        (400, Some("anthropic-version"))
    );
    let before_any_version = messages(
        &key,
        &[("anthropic-version", "2022-12-01")],
        hello("claude"),
    );
    assert_eq!(run(&gw, &host, before_any_version).0, 400);
    let (status, _, body) = run(
        &gw,
        &host,
        messages(
            &key,
            &[("anthropic-beta", "files-api-2025-04-14")],
            hello("claude"),
        ),
    );
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("unsupported_parameter"))
    );
    assert_eq!(host.sent_count(), 0);
}

#[test]
fn newer_sdk_versions_are_served_with_the_version_the_mapper_writes() {
    let (gw, host, key) = setup();
    host.script(ok_json(completion_json()));
    let (status, _, body) = run(
        &gw,
        &host,
        messages(&key, &[("anthropic-version", "2026-10-21")], hello("gpt")),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Hello there!");
}

#[test]
fn an_anthropic_upstream_error_reaches_an_openai_client_with_its_status_and_words() {
    let (gw, host, key) = setup();
    host.script(Scripted::Reply {
        status: 400,
        headers: vec![("content-type".into(), "application/json".into())],
        chunks: vec![Ok(br#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}"#.to_vec())],
    });
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "Hi"}]});
    let (status, _, out) = run(&gw, &host, chat(&key, &body));
    let v: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(status, 400);
    assert!(v["error"]["message"]
        .as_str()
        .expect("message")
        .contains("roles must alternate"));
    // The upstream got Anthropic's wire format and the gateway's credential as x-api-key.
    let sent = &host.sent.borrow()[0];
    assert!(sent.url.ends_with("/anthropic/v1/messages"));
    assert_eq!(sent.header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert!(sent.header("authorization").is_none());
    assert_eq!(
        sent.body["max_tokens"], 4096,
        "Anthropic needs max_tokens: the default is sent"
    );
}

#[test]
fn an_openai_upstream_error_reaches_an_anthropic_client_in_anthropics_shape() {
    let (gw, host, key) = setup();
    host.script(Scripted::Reply {
        status: 400,
        headers: vec![("content-type".into(), "application/json".into())],
        chunks: vec![Ok(br#"{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":null}}"#.to_vec())],
    });
    let (status, _, out) = run(&gw, &host, messages(&key, &[], hello("gpt")));
    let v: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!((status, v["type"].as_str()), (400, Some("error")));
    assert!(v["error"]["message"]
        .as_str()
        .expect("message")
        .contains("temperature"));
}
