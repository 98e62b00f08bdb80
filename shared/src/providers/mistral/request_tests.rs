use super::*;
use crate::providers::mistral::tool_ids::is_valid;

fn map(hub: Value) -> Result<Value, GatewayError> {
    let Value::Object(hub) = hub else {
        panic!("object")
    };
    request_from_hub(&hub, "mistral-small-latest")
        .map(|b| serde_json::from_slice(&b).expect("json"))
}

fn refused_param(hub: Value) -> String {
    let err = map(hub).expect_err("refused");
    assert_eq!(err.status(), 400);
    err.param.expect("param")
}

#[test]
fn openai_names_become_mistral_names() {
    let out = map(json!({
        "model": "alias",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 64,
        "seed": 7,
        "tool_choice": "required",
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n"],
        "n": 2,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.3,
        "parallel_tool_calls": false,
        "logprobs": null,
    }))
    .expect("ok");
    assert_eq!(
        out,
        json!({
            "model": "mistral-small-latest",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 64,
            "random_seed": 7,
            "tool_choice": "any",
            "stream": true,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": ["\n"],
            "n": 2,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.3,
            "parallel_tool_calls": false,
        })
    );
}

#[test]
fn disagreeing_max_tokens_are_refused() {
    let msgs = json!([{"role": "user", "content": "hi"}]);
    assert!(map(json!({"messages": msgs, "max_tokens": 5, "max_completion_tokens": 5})).is_ok());
    let err = map(json!({"messages": msgs, "max_tokens": 5, "max_completion_tokens": 6}))
        .expect_err("disagree");
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
}

#[test]
fn unknown_and_anthropic_fields_are_refused_by_name() {
    let msgs = json!([{"role": "user", "content": "hi"}]);
    for field in [
        "logprobs",
        "logit_bias",
        "audio",
        "modalities",
        "store",
        "metadata",
        "service_tier",
        "user",
        "x_anthropic_top_k",
    ] {
        assert_eq!(refused_param(json!({"messages": msgs, field: 1})), field);
    }
    let err = map(json!({"messages": msgs, "x_anthropic_top_k": 5})).expect_err("refused");
    assert_eq!(err.kind, ErrorKind::UnsupportedParameter);
    assert!(
        err.message
            .contains("`top_k` is an Anthropic-only parameter"),
        "{}",
        err.message
    );
}

#[test]
fn nested_anthropic_fields_are_refused_with_their_path() {
    let p = refused_param(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi", "x_anthropic_cache_control": {"type": "ephemeral"}}
    ]}]}));
    assert_eq!(p, "messages[0].content[0].x_anthropic_cache_control");
    let p = refused_param(
        json!({"messages": [{"role": "user", "content": "hi"}], "tools": [
            {"type": "function", "function": {"name": "f"}, "x_anthropic_cache_control": {}}
        ]}),
    );
    assert_eq!(p, "tools[0].x_anthropic_cache_control");
    let p = refused_param(json!({"messages": [{"role": "user", "content": "hi", "name": "bob"}]}));
    assert_eq!(p, "messages[0].name");
}

#[test]
fn developer_is_system_and_parts_are_chunks() {
    let out = map(json!({"messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "system", "content": [{"type": "text", "text": "a"}]},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
            {"type": "image_url", "image_url": "data:image/png;base64,AAAA"},
        ]},
    ]}))
    .expect("ok");
    assert_eq!(
        out["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "system", "content": [{"type": "text", "text": "a"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ]},
        ])
    );
    let p = refused_param(json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}));
    assert_eq!(p, "messages[0].content[0].type");
    let p = refused_param(json!({"messages": [{"role": "function", "content": "x", "name": "f"}]}));
    assert_eq!(p, "messages[0].role");
}

#[test]
fn tool_call_ids_are_rewritten_consistently() {
    let out = map(json!({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "w", "arguments": "{\"c\":\"P\"}"}},
            {"id": "D681PevKs", "type": "function", "function": {"name": "w", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_abc", "content": [{"type": "text", "text": "sun"}, {"type": "text", "text": "ny"}]},
        {"role": "tool", "tool_call_id": "D681PevKs", "name": "w", "content": "rain"},
    ]}))
    .expect("ok");
    let m = &out["messages"];
    let new = m[1]["tool_calls"][0]["id"].as_str().expect("id");
    assert!(is_valid(new) && new != "call_abc");
    assert_eq!(m[2]["tool_call_id"], new);
    assert_eq!(m[2]["content"], "sunny");
    assert_eq!(m[1]["tool_calls"][1]["id"], "D681PevKs");
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "D681PevKs", "name": "w", "content": "rain"})
    );
    assert_eq!(
        m[1]["tool_calls"][0]["function"],
        json!({"name": "w", "arguments": "{\"c\":\"P\"}"})
    );
    assert!(m[1].get("content").is_none());
}

#[test]
fn tools_choice_and_formats_map_to_mistral_shapes() {
    let out = map(json!({
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "strict": true}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}, "strict": true}},
        "prediction": {"type": "content", "content": [{"type": "text", "text": "fn main"}]},
    }))
    .expect("ok");
    assert_eq!(
        out["tools"],
        json!([{"type": "function", "function": {"name": "f", "description": "d", "strict": true,
               "parameters": {"type": "object", "properties": {}}}}])
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    assert_eq!(out["response_format"]["json_schema"]["name"], "s");
    assert_eq!(
        out["prediction"],
        json!({"type": "content", "content": "fn main"})
    );
    for (hub_extra, param) in [
        (
            json!({"tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            "tools[0].type",
        ),
        (
            json!({"tool_choice": {"type": "allowed_tools"}}),
            "tool_choice.type",
        ),
        (
            json!({"response_format": {"type": "grammar"}}),
            "response_format.type",
        ),
    ] {
        let mut hub = json!({"messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in hub_extra.as_object().expect("obj") {
            hub[k] = v.clone();
        }
        assert_eq!(refused_param(hub), param);
    }
}
