//! Expected values follow Anthropic's Messages reference (request fields, content blocks) and
//! OpenAI's chat-completions reference (the hub shape).

use serde_json::{json, Value};

use super::*;
use crate::providers::stream::ClientEncoder;

fn hub(body: Value) -> InboundRequest {
    request_to_hub(body.to_string().as_bytes()).expect("valid request")
}

fn refused(body: Value) -> GatewayError {
    request_to_hub(body.to_string().as_bytes()).expect_err("refused")
}

fn base() -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
           "messages": [{"role": "user", "content": "Hello, world"}]})
}

#[test]
fn minimal_request() {
    let r = hub(base());
    assert_eq!(r.model, "claude-sonnet-4-5");
    assert!(!r.stream);
    assert_eq!(
        Value::Object(r.hub),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
               "messages": [{"role": "user", "content": "Hello, world"}]})
    );
}

#[test]
fn system_sampling_and_metadata() {
    let mut b = base();
    b["system"] =
        json!([{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}]);
    b["temperature"] = json!(0.5);
    b["top_p"] = json!(0.9);
    b["top_k"] = json!(40);
    b["stop_sequences"] = json!(["\n\nHuman:"]);
    b["stream"] = json!(true);
    b["metadata"] = json!({"user_id": "u-1"});
    let r = hub(b);
    assert!(r.stream);
    let h = Value::Object(r.hub);
    assert_eq!(
        h["messages"][0],
        json!({"role": "system", "content": [{"type": "text", "text": "Be terse.",
               "x_anthropic_cache_control": {"type": "ephemeral"}}]})
    );
    assert_eq!(h["messages"][1]["role"], "user");
    assert_eq!(h["temperature"], 0.5);
    assert_eq!(h["top_p"], 0.9);
    assert_eq!(h["x_anthropic_top_k"], 40);
    assert_eq!(h["stop"], json!(["\n\nHuman:"]));
    assert_eq!(h["stream"], true);
    assert_eq!(h["user"], "u-1");
}

#[test]
fn images_become_image_url_parts() {
    let mut b = base();
    b["messages"] = json!([{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
        {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/a.jpg"}},
        {"type": "text", "text": "Describe these."}
    ]}]);
    let h = Value::Object(hub(b).hub);
    assert_eq!(
        h["messages"][0]["content"],
        json!([
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
            {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/a.jpg"}},
            {"type": "text", "text": "Describe these."}
        ])
    );
}

#[test]
fn tool_use_and_tool_results() {
    let mut b = base();
    b["messages"] = json!([
        {"role": "user", "content": "What's the weather in SF and NYC?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "San Francisco, CA"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"location": "New York, NY"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15 degrees"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "error: no data"}], "is_error": true},
            {"type": "text", "text": "And tomorrow?"}
        ]}
    ]);
    let h = Value::Object(hub(b).hub);
    let m = h["messages"].as_array().expect("messages");
    assert_eq!(m.len(), 5);
    assert_eq!(
        m[1]["content"],
        json!([{"type": "text", "text": "Checking."}])
    );
    assert_eq!(
        m[1]["tool_calls"],
        json!([
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"San Francisco, CA\"}"}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"New York, NY\"}"}}
        ])
    );
    assert_eq!(
        m[2],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "15 degrees"})
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "toolu_2", "x_anthropic_is_error": true,
               "content": [{"type": "text", "text": "error: no data"}]})
    );
    // The text after the tool results stays a user message, after them.
    assert_eq!(
        m[4],
        json!({"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]})
    );
}

#[test]
fn assistant_with_only_tool_use_has_null_content() {
    let mut b = base();
    b["messages"] = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}
    ]);
    let h = Value::Object(hub(b).hub);
    assert_eq!(h["messages"][1]["content"], Value::Null);
    assert_eq!(
        h["messages"][1]["tool_calls"][0]["function"]["arguments"],
        "{}"
    );
}

#[test]
fn tools_and_tool_choice() {
    let mut b = base();
    b["tools"] = json!([{"name": "get_weather", "description": "Get the current weather",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        "cache_control": {"type": "ephemeral"}}]);
    let cases = [
        (json!({"type": "auto"}), json!("auto"), None),
        (json!({"type": "any"}), json!("required"), None),
        (json!({"type": "none"}), json!("none"), None),
        (
            json!({"type": "tool", "name": "get_weather"}),
            json!({"type": "function", "function": {"name": "get_weather"}}),
            None,
        ),
        (
            json!({"type": "auto", "disable_parallel_tool_use": true}),
            json!("auto"),
            Some(json!(false)),
        ),
    ];
    for (choice, expected, parallel) in cases {
        b["tool_choice"] = choice;
        let h = Value::Object(hub(b.clone()).hub);
        assert_eq!(h["tool_choice"], expected);
        assert_eq!(h.get("parallel_tool_calls").cloned(), parallel);
        assert_eq!(
            h["tools"],
            json!([{"type": "function", "x_anthropic_cache_control": {"type": "ephemeral"},
                    "function": {"name": "get_weather", "description": "Get the current weather",
                    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
        );
    }
}

#[test]
fn validation_names_the_field() {
    let cases: Vec<(Value, &str, ErrorKind)> = vec![
        (
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
            "model",
            ErrorKind::MissingParameter,
        ),
        (
            json!({"model": "", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
            "model",
            ErrorKind::InvalidRequest,
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
            ErrorKind::MissingParameter,
        ),
        (
            json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
            ErrorKind::InvalidRequest,
        ),
        (
            json!({"model": "m", "max_tokens": 1.5, "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
            ErrorKind::InvalidRequest,
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": []}),
            "messages",
            ErrorKind::InvalidRequest,
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
            "messages[0].role",
            ErrorKind::InvalidRequest,
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
            ErrorKind::InvalidRequest,
        ),
        (
            json!({"model": "m", "max_tokens": 1, "temperature": 1.5, "messages": [{"role": "user", "content": "x"}]}),
            "temperature",
            ErrorKind::InvalidRequest,
        ),
    ];
    for (body, param, kind) in cases {
        let err = refused(body);
        assert_eq!(err.param.as_deref(), Some(param), "{err}");
        assert_eq!(err.kind, kind, "{err}");
        assert_eq!(err.status(), 400);
    }
    assert_eq!(request_to_hub(b"[1]").expect_err("array").status(), 400);
    assert_eq!(
        request_to_hub(b"{").expect_err("json").kind,
        ErrorKind::InvalidJson
    );
}

#[test]
fn fields_asc_cannot_carry_are_refused() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "thinking",
            json!({"type": "enabled", "budget_tokens": 1024}),
            "thinking",
        ),
        ("container", json!("c"), "container"),
        ("mcp_servers", json!([]), "mcp_servers"),
        ("service_tier", json!("auto"), "service_tier"),
        ("frobnicate", json!(1), "frobnicate"),
        (
            "tools",
            json!([{"type": "web_search_20250305", "name": "web_search"}]),
            "tools[0].type",
        ),
        ("metadata", json!({"tenant": "x"}), "metadata.tenant"),
    ];
    for (key, value, param) in cases {
        let mut b = base();
        b[key] = value;
        let err = refused(b);
        assert_eq!(err.kind, ErrorKind::UnsupportedParameter, "{key}");
        assert_eq!(err.param.as_deref(), Some(param));
    }
    let mut b = base();
    b["messages"] = json!([{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}]}]);
    assert_eq!(
        refused(b).param.as_deref(),
        Some("messages[0].content[0].type")
    );
}

#[test]
fn message_ids() {
    assert_eq!(message_id("chatcmpl-msg_01ABC"), "msg_01ABC");
    assert_eq!(message_id("chatcmpl-123"), "msg_123");
}

#[test]
fn response_from_an_openai_tool_call_completion() {
    // OpenAI's chat-completions reference, function-calling example.
    let completion = json!({
        "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_abc123", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\n\"location\": \"Boston, MA\"\n}"}}
        ]}, "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99}
    });
    let body = response_from_hub(&completion, None, "claude-x").expect("maps");
    let m: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        m,
        json!({"id": "msg_abc123", "type": "message", "role": "assistant", "model": "claude-x",
               "content": [{"type": "tool_use", "id": "call_abc123", "name": "get_current_weather",
                            "input": {"location": "Boston, MA"}}],
               "stop_reason": "tool_use", "stop_sequence": null,
               "usage": {"input_tokens": 82, "output_tokens": 17,
                         "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}})
    );
}

#[test]
fn response_usage_and_stop_sequence() {
    let completion = json!({
        "id": "chatcmpl-msg_1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
        "finish_reason": "stop", "x_anthropic_stop_sequence": "END"}]
    });
    let usage = Usage {
        input_tokens: 120,
        output_tokens: 7,
        cached_input_tokens: 100,
        cache_write_tokens: 15,
    };
    let m: Value =
        serde_json::from_slice(&response_from_hub(&completion, Some(usage), "c").expect("ok"))
            .expect("json");
    assert_eq!(m["content"], json!([{"type": "text", "text": "Hi"}]));
    assert_eq!(m["stop_reason"], "stop_sequence");
    assert_eq!(m["stop_sequence"], "END");
    assert_eq!(
        m["usage"],
        json!({"input_tokens": 5, "output_tokens": 7,
        "cache_read_input_tokens": 100, "cache_creation_input_tokens": 15})
    );
}

#[test]
fn invalid_tool_arguments_are_an_upstream_fault_never_dropped() {
    let completion = json!({"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\": "}}]}}]});
    let err = response_from_hub(&completion, None, "m").expect_err("refused");
    assert_eq!(err.kind, ErrorKind::UpstreamBadResponse);
    assert!(response_from_hub(&json!({"id": "x", "choices": []}), None, "m").is_err());
}

#[test]
fn error_body_has_anthropic_type_and_asc_code() {
    let cases = [
        (
            GatewayError::new(ErrorKind::UnsupportedParameter, "no").with_param("thinking"),
            "invalid_request_error",
            "unsupported_parameter",
        ),
        (
            GatewayError::new(ErrorKind::InvalidApiKey, "bad key"),
            "authentication_error",
            "invalid_api_key",
        ),
        (
            GatewayError::new(ErrorKind::ModelNotApproved, "no"),
            "permission_error",
            "model_not_approved",
        ),
        (
            GatewayError::new(ErrorKind::ModelNotFound, "no"),
            "not_found_error",
            "model_not_found",
        ),
        (
            GatewayError::new(ErrorKind::BodyTooLarge, "big"),
            "request_too_large",
            "request_too_large",
        ),
        (
            GatewayError::new(ErrorKind::BudgetExceeded, "spent"),
            "rate_limit_error",
            "budget_exceeded",
        ),
        (
            GatewayError::new(ErrorKind::UpstreamTimeout, "slow"),
            "api_error",
            "upstream_timeout",
        ),
    ];
    for (err, ty, code) in cases {
        let v: Value = serde_json::from_slice(&error_body(&err)).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], ty, "{err}");
        assert_eq!(v["error"]["code"], code);
        assert_eq!(v["error"]["message"], err.message);
        assert_eq!(v["error"]["param"], json!(err.param));
    }
}

fn encode(chunks: &[Value], usage: Option<Usage>) -> Vec<(String, Value)> {
    let mut enc = AnthropicEncoder::new("claude-x", "msg_1".into());
    let mut out = Vec::new();
    for c in chunks {
        enc.chunk(c, None, &mut out);
    }
    enc.done(usage, &mut out);
    let text = String::from_utf8(out).expect("utf8");
    text.split_terminator("\n\n")
        .map(|ev| {
            let (name, data) = ev.split_once('\n').expect("two lines");
            let name = name.strip_prefix("event: ").expect("event").to_string();
            let data =
                serde_json::from_str(data.strip_prefix("data: ").expect("data")).expect("json");
            (name, data)
        })
        .collect()
}

fn delta_chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

#[test]
fn encoder_streams_text_then_parallel_tool_calls() {
    let chunks = [
        delta_chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        delta_chunk(json!({"content": "Let me check."}), Value::Null),
        delta_chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "w", "arguments": ""}}]}),
            Value::Null,
        ),
        delta_chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"l\":"}}]}),
            Value::Null,
        ),
        delta_chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "t", "arguments": "{}"}}]}),
            Value::Null,
        ),
        delta_chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"SF\"}"}}]}),
            Value::Null,
        ),
        delta_chunk(json!({}), json!("tool_calls")),
    ];
    let usage = Usage {
        input_tokens: 30,
        output_tokens: 9,
        cached_input_tokens: 20,
        cache_write_tokens: 0,
    };
    let evs = encode(&chunks, Some(usage));
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, data) in &evs {
        assert_eq!(
            &data["type"],
            name.as_str(),
            "the data's type matches the event name"
        );
    }
    assert_eq!(evs[0].1["message"]["id"], "msg_1");
    assert_eq!(evs[0].1["message"]["model"], "claude-x");
    assert_eq!(evs[0].1["message"]["role"], "assistant");
    assert_eq!(
        evs[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(
        evs[2].1["delta"],
        json!({"type": "text_delta", "text": "Let me check."})
    );
    assert_eq!(
        evs[4].1,
        json!({"type": "content_block_start", "index": 1,
        "content_block": {"type": "tool_use", "id": "call_a", "name": "w", "input": {}}})
    );
    assert_eq!(
        evs[5].1["delta"],
        json!({"type": "input_json_delta", "partial_json": "{\"l\":"})
    );
    assert_eq!(evs[7].1["index"], 2);
    assert_eq!(evs[8].1["index"], 2);
    // The late delta of call 0 goes to call 0's block (index 1), not to the open one.
    assert_eq!(evs[9].1["index"], 1);
    assert_eq!(evs[9].1["delta"]["partial_json"], "\"SF\"}");
    assert_eq!(
        evs[11].1["delta"],
        json!({"stop_reason": "tool_use", "stop_sequence": null})
    );
    assert_eq!(
        evs[11].1["usage"],
        json!({"input_tokens": 10, "output_tokens": 9,
        "cache_read_input_tokens": 20, "cache_creation_input_tokens": 0})
    );
}

#[test]
fn encoder_ping_error_and_usage_chunk() {
    let mut enc = AnthropicEncoder::new("m", "msg_2".into());
    let mut out = Vec::new();
    enc.keep_alive(&mut out);
    let usage_chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}});
    enc.chunk(&usage_chunk, None, &mut out);
    enc.error(
        &GatewayError::new(ErrorKind::UpstreamError, "overloaded"),
        &mut out,
    );
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.starts_with("event: message_start\n"));
    assert!(text.contains("event: ping\ndata: {\"type\":\"ping\"}\n\n"));
    assert!(text.contains("event: error\ndata: {\"error\":{"));
    assert!(text.contains("\"type\":\"api_error\""));
    assert!(text.ends_with("\n\n"));
    let mut enc = AnthropicEncoder::new("m", "msg_3".into());
    let mut out = Vec::new();
    enc.chunk(&usage_chunk, None, &mut out);
    enc.done(None, &mut out);
    let text = String::from_utf8(out).expect("utf8");
    let delta = text
        .split("\n\n")
        .find_map(|ev| ev.strip_prefix("event: message_delta\ndata: "))
        .expect("message_delta");
    let delta: Value = serde_json::from_str(delta).expect("json");
    // No usage given to `done`: the hub usage chunk's (OpenAI prompt 9, completion 12).
    assert_eq!(delta["usage"]["input_tokens"], 9);
    assert_eq!(delta["usage"]["output_tokens"], 12);
    assert!(text.contains("\"stop_reason\":\"end_turn\""));
}

#[test]
fn openai_refusals_become_anthropic_refusals() {
    let completion = json!({"id": "chatcmpl-9", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": null, "refusal": "I'm sorry, I cannot assist with that request."}}]});
    let m: Value = serde_json::from_slice(&response_from_hub(&completion, None, "c").expect("ok"))
        .expect("json");
    assert_eq!(
        m["content"],
        json!([{"type": "text", "text": "I'm sorry, I cannot assist with that request."}])
    );
    assert_eq!(m["stop_reason"], "refusal");
    let evs = encode(
        &[
            delta_chunk(
                json!({"role": "assistant", "content": null, "refusal": ""}),
                Value::Null,
            ),
            delta_chunk(json!({"refusal": "I'm sorry"}), Value::Null),
            delta_chunk(json!({}), json!("stop")),
        ],
        None,
    );
    assert_eq!(
        evs[2].1["delta"],
        json!({"type": "text_delta", "text": "I'm sorry"})
    );
    assert_eq!(evs[4].1["delta"]["stop_reason"], "refusal");
}
