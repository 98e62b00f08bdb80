//! Expected values follow Anthropic's Messages and Streaming Messages references and OpenAI's
//! chat-completions reference.

use serde_json::{json, Map, Value};

use super::*;
use crate::error::ErrorKind;
use crate::providers::stream::{HubEvent, UpstreamDecoder};
use crate::sse::SseEvent;

fn hub(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("object"),
    }
}

fn req(v: Value) -> Value {
    let bytes = request_from_hub(&hub(v), "claude-up", 4096).expect("maps");
    serde_json::from_slice(&bytes).expect("json")
}

fn refused(v: Value) -> GatewayError {
    request_from_hub(&hub(v), "claude-up", 4096).expect_err("refused")
}

#[test]
fn minimal_request_gets_model_max_tokens_and_stream() {
    let r = req(json!({"model": "alias", "messages": [{"role": "user", "content": "Hello"}]}));
    assert_eq!(
        r,
        json!({"model": "claude-up", "max_tokens": 4096, "stream": false,
               "messages": [{"role": "user", "content": "Hello"}]})
    );
    let r = req(
        json!({"model": "a", "max_completion_tokens": 50, "stream": true,
        "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!(r["max_tokens"], 50);
    assert_eq!(r["stream"], true);
    assert!(r.get("stream_options").is_none());
}

#[test]
fn system_messages_lead_and_same_roles_merge() {
    let r = req(json!({"model": "a", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": [{"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "Bonjour"}
    ]}));
    assert_eq!(
        r["system"],
        json!([{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in French."}])
    );
    assert_eq!(
        r["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Bonjour"}
        ])
    );
    let r = req(json!({"model": "a", "messages": [
        {"role": "system", "content": "Only one."}, {"role": "user", "content": "Hi"}]}));
    assert_eq!(r["system"], "Only one.");
}

#[test]
fn a_system_message_mid_conversation_is_refused() {
    let err = refused(json!({"model": "a", "messages": [
        {"role": "user", "content": "Hi"}, {"role": "system", "content": "Now be rude."}]}));
    assert_eq!(err.param.as_deref(), Some("messages[1].role"));
    assert_eq!(err.status(), 400);
}

#[test]
fn images_become_base64_or_url_sources() {
    let r = req(
        json!({"model": "a", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "auto"}},
            {"type": "text", "text": "What is this?"}
        ]}]}),
    );
    assert_eq!(
        r["messages"][0]["content"],
        json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "text", "text": "What is this?"}
        ])
    );
    let err = refused(
        json!({"model": "a", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}),
    );
    assert_eq!(
        err.param.as_deref(),
        Some("messages[0].content[0].image_url.url")
    );
}

#[test]
fn sampling_stop_and_user() {
    let r = req(
        json!({"model": "a", "temperature": 0.2, "top_p": 0.8, "stop": "END", "user": "u-9",
        "x_anthropic_top_k": 5, "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(r["temperature"], 0.2);
    assert_eq!(r["top_p"], 0.8);
    assert_eq!(r["top_k"], 5);
    assert_eq!(r["stop_sequences"], json!(["END"]));
    assert_eq!(r["metadata"], json!({"user_id": "u-9"}));
    let r = req(
        json!({"model": "a", "stop": ["a", "b"], "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(r["stop_sequences"], json!(["a", "b"]));
}

#[test]
fn tools_tool_calls_and_tool_results() {
    let r = req(json!({"model": "a",
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": false,
    "messages": [
        {"role": "user", "content": "Weather in SF and NYC?"},
        {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"SF\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"NYC\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "15 degrees"},
        {"role": "tool", "tool_call_id": "call_2", "content": "failed", "x_anthropic_is_error": true},
        {"role": "user", "content": "Thanks"}
    ]}));
    assert_eq!(
        r["tools"],
        json!([{"name": "get_weather", "description": "Get weather",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}])
    );
    assert_eq!(
        r["tool_choice"],
        json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        r["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "SF"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"location": "NYC"}}
        ]})
    );
    // Both tool results and the following user text: one user message, results first.
    assert_eq!(
        r["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "15 degrees"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "failed", "is_error": true},
            {"type": "text", "text": "Thanks"}
        ]})
    );
    assert_eq!(r["messages"].as_array().map(Vec::len), Some(3));
}

#[test]
fn tool_choice_strings() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    for (choice, expected) in [
        ("auto", json!({"type": "auto"})),
        ("required", json!({"type": "any"})),
        ("none", json!({"type": "none"})),
    ] {
        let r = req(json!({"model": "a", "tools": tools, "tool_choice": choice,
            "messages": [{"role": "user", "content": "x"}]}));
        assert_eq!(r["tool_choice"], expected);
        assert_eq!(
            r["tools"][0]["input_schema"],
            json!({"type": "object", "properties": {}})
        );
    }
    let r = req(
        json!({"model": "a", "tools": tools, "parallel_tool_calls": false,
        "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(
        r["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
}

#[test]
fn tool_call_arguments_must_be_json() {
    let err = refused(json!({"model": "a", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}
    ]}));
    assert_eq!(
        err.param.as_deref(),
        Some("messages[1].tool_calls[0].function.arguments")
    );
    assert_eq!(err.status(), 400);
}

#[test]
fn openai_only_fields_are_refused_defaults_accepted() {
    let cases = [
        ("temperature", json!(1.5), "temperature"),
        ("n", json!(2), "n"),
        (
            "response_format",
            json!({"type": "json_object"}),
            "response_format",
        ),
        (
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
            "response_format",
        ),
        ("logprobs", json!(true), "logprobs"),
        ("seed", json!(7), "seed"),
        ("presence_penalty", json!(0.5), "presence_penalty"),
        ("frequency_penalty", json!(-1), "frequency_penalty"),
        ("logit_bias", json!({"50256": -100}), "logit_bias"),
        ("audio", json!({"voice": "alloy", "format": "wav"}), "audio"),
        ("x_anthropic_future", json!(1), "x_anthropic_future"),
    ];
    for (key, value, param) in cases {
        let mut h = json!({"model": "a", "messages": [{"role": "user", "content": "x"}]});
        h[key] = value;
        let err = refused(h);
        assert_eq!(err.kind, ErrorKind::UnsupportedParameter, "{key}");
        assert_eq!(err.param.as_deref(), Some(param));
    }
    let r = req(
        json!({"model": "a", "n": 1, "logprobs": false, "presence_penalty": 0,
        "response_format": {"type": "text"}, "seed": null, "messages": [{"role": "user", "content": "x"}]}),
    );
    assert!(r.get("n").is_none() && r.get("seed").is_none() && r.get("response_format").is_none());
}

#[test]
fn cache_control_is_restored() {
    let r = req(json!({"model": "a",
    "tools": [{"type": "function", "function": {"name": "f"}, "x_anthropic_cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "long", "x_anthropic_cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [{"type": "text", "text": "q", "x_anthropic_cache_control": {"type": "ephemeral", "ttl": "1h"}}]}
    ]}));
    assert_eq!(
        r["system"],
        json!([{"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(
        r["messages"][0]["content"][0]["cache_control"],
        json!({"type": "ephemeral", "ttl": "1h"})
    );
    assert_eq!(r["tools"][0]["cache_control"], json!({"type": "ephemeral"}));
}

#[test]
fn response_to_hub_text_and_tool_use() {
    // Anthropic's tool-use response example (Handle tool calls).
    let body = json!({"id": "msg_01Aq9w938a90dw8q", "type": "message", "model": "claude-opus-4-7",
        "stop_reason": "tool_use", "stop_sequence": null, "role": "assistant", "content": [
            {"type": "text", "text": "I'll check the current weather."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"location": "San Francisco, CA", "unit": "celsius"}}],
        "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 40}});
    let (h, usage) = response_to_hub(body.to_string().as_bytes(), 1_700_000_000).expect("maps");
    assert_eq!(h["id"], "chatcmpl-msg_01Aq9w938a90dw8q");
    assert_eq!(h["object"], "chat.completion");
    assert_eq!(h["created"], 1_700_000_000u64);
    assert_eq!(h["model"], "claude-opus-4-7");
    let c = &h["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls");
    assert_eq!(c["message"]["content"], "I'll check the current weather.");
    let call = &c["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().expect("string"))
        .expect("json");
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    assert_eq!(
        h["usage"],
        json!({"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 30}})
    );
    assert_eq!(
        usage,
        Some(Usage {
            input_tokens: 80,
            output_tokens: 20,
            cached_input_tokens: 30,
            cache_write_tokens: 40
        })
    );
}

#[test]
fn response_to_hub_only_tools_has_null_content_and_stop_sequence_is_kept() {
    let body = json!({"id": "m", "type": "message", "role": "assistant", "model": "c", "stop_reason": "tool_use",
        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "usage": {"input_tokens": 1, "output_tokens": 1}});
    let (h, _) = response_to_hub(body.to_string().as_bytes(), 1).expect("maps");
    assert_eq!(h["choices"][0]["message"]["content"], Value::Null);
    let body = json!({"id": "m", "type": "message", "role": "assistant", "model": "c", "stop_reason": "stop_sequence",
        "stop_sequence": "###", "content": [{"type": "text", "text": "a"}], "usage": {"input_tokens": 1, "output_tokens": 1}});
    let (h, _) = response_to_hub(body.to_string().as_bytes(), 1).expect("maps");
    assert_eq!(h["choices"][0]["finish_reason"], "stop");
    assert_eq!(h["choices"][0]["x_anthropic_stop_sequence"], "###");
}

#[test]
fn malformed_responses_are_upstream_faults() {
    for body in [
        &b"not json"[..],
        br#"{"type":"error"}"#,
        br#"{"type":"message"}"#,
        br#"{"type":"message","content":[{"type":"thinking","thinking":"x"}]}"#,
    ] {
        assert_eq!(
            response_to_hub(body, 0).expect_err("bad").kind,
            ErrorKind::UpstreamBadResponse
        );
    }
}

#[test]
fn parse_error_reads_anthropic_bodies() {
    let body = br#"{"type":"error","error":{"type":"not_found_error","message":"The requested resource could not be found."},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
    assert_eq!(
        parse_error(body),
        Some((
            "not_found_error".into(),
            "The requested resource could not be found.".into()
        ))
    );
    assert_eq!(parse_error(b"oops"), None);
    assert_eq!(parse_error(br#"{"error":"x"}"#), None);
}

fn sse(name: &str, data: &str) -> SseEvent {
    SseEvent {
        event: Some(name.into()),
        data: data.into(),
        raw: Vec::new(),
    }
}

fn decode(events: &[SseEvent]) -> (Vec<HubEvent>, AnthropicDecoder) {
    let mut d = AnthropicDecoder::new(1_700_000_000);
    let mut out = Vec::new();
    for e in events {
        d.on_event(e, &mut out).expect("decodes");
    }
    (out, d)
}

fn chunk(ev: &HubEvent) -> &Value {
    match ev {
        HubEvent::Chunk { chunk, .. } => chunk,
        other => panic!("not a chunk: {other:?}"),
    }
}

#[test]
fn decoder_maps_the_event_flow() {
    let (out, d) = decode(&[
        sse(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1,"cache_read_input_tokens":5}}}"#,
        ),
        sse(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        sse("ping", r#"{"type": "ping"}"#),
        sse(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
        ),
        sse(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        sse(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_a","name":"f","input":{}}}"#,
        ),
        sse(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
        ),
        sse(
            "content_block_start",
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_b","name":"g","input":{}}}"#,
        ),
        sse(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
        ),
        sse("future_event", r#"{"type":"future_event"}"#),
        sse(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        ),
        sse("message_stop", r#"{"type":"message_stop"}"#),
    ]);
    assert_eq!(out.len(), 10);
    let first = chunk(&out[0]);
    assert_eq!(first["id"], "chatcmpl-msg_1");
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["created"], 1_700_000_000u64);
    assert_eq!(first["model"], "claude-x");
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(out[1], HubEvent::KeepAlive);
    assert_eq!(
        chunk(&out[2])["choices"][0]["delta"],
        json!({"content": "Hello"})
    );
    assert_eq!(
        chunk(&out[3])["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "f", "arguments": ""}}])
    );
    assert_eq!(
        chunk(&out[4])["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "function": {"arguments": "{\"a\":1}"}}])
    );
    assert_eq!(
        chunk(&out[5])["choices"][0]["delta"]["tool_calls"][0]["index"],
        1
    );
    assert_eq!(
        chunk(&out[6])["choices"][0]["delta"]["tool_calls"][0]["index"],
        1
    );
    assert_eq!(chunk(&out[7])["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunk(&out[7])["choices"][0]["delta"], json!({}));
    let usage = chunk(&out[8]);
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 30, "completion_tokens": 15, "total_tokens": 45,
        "prompt_tokens_details": {"cached_tokens": 5}})
    );
    assert_eq!(out[9], HubEvent::Done);
    assert_eq!(
        d.usage(),
        Some(Usage {
            input_tokens: 30,
            output_tokens: 15,
            cached_input_tokens: 5,
            cache_write_tokens: 0
        })
    );
}

#[test]
fn decoder_error_events_and_malformed_events() {
    for (ty, kind) in [
        ("overloaded_error", ErrorKind::UpstreamError),
        ("api_error", ErrorKind::UpstreamError),
        ("rate_limit_error", ErrorKind::UpstreamRateLimited),
        ("invalid_request_error", ErrorKind::InvalidRequest),
    ] {
        let data =
            format!(r#"{{"type": "error", "error": {{"type": "{ty}", "message": "Overloaded"}}}}"#);
        let (out, _) = decode(&[sse("error", &data)]);
        match &out[..] {
            [HubEvent::Error(e)] => assert_eq!(e.kind, kind, "{ty}"),
            other => panic!("{other:?}"),
        }
    }
    let mut d = AnthropicDecoder::new(0);
    let mut out = Vec::new();
    let err = d
        .on_event(&sse("message_start", "{not json"), &mut out)
        .expect_err("malformed");
    assert_eq!(err.kind, ErrorKind::UpstreamBadResponse);
    let err = d
        .on_event(&sse("content_block_delta", r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{"}}"#), &mut out)
        .expect_err("no such tool block");
    assert_eq!(err.kind, ErrorKind::UpstreamBadResponse);
    assert!(d.usage().is_none());
}
