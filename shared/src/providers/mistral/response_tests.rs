use super::*;

#[test]
fn string_content_and_usage() {
    let body = br#"{"id":"cmpl-1","object":"chat.completion","created":1702256327,"model":"mistral-large-latest",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Bonjour"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}}"#;
    let (hub, usage) = response_to_hub(body, 99).expect("ok");
    assert_eq!(
        hub,
        json!({"id": "cmpl-1", "object": "chat.completion", "created": 1702256327, "model": "mistral-large-latest",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Bonjour"},
                            "finish_reason": "stop", "logprobs": null}],
               "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}})
    );
    let u = usage.expect("usage");
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cached_input_tokens),
        (10, 3, 0)
    );
}

#[test]
fn finish_reasons_map_and_error_fails() {
    for (mistral, openai) in [
        ("stop", "stop"),
        ("length", "length"),
        ("model_length", "length"),
        ("tool_calls", "tool_calls"),
    ] {
        let body = json!({"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": mistral}]});
        let (hub, _) = response_to_hub(body.to_string().as_bytes(), 5).expect("ok");
        assert_eq!(hub["choices"][0]["finish_reason"], openai);
        assert_eq!(hub["created"], 5);
    }
    let body =
        json!({"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "error"}]});
    let err = response_to_hub(body.to_string().as_bytes(), 5).expect_err("error");
    assert_eq!(err.kind, ErrorKind::UpstreamError);
}

#[test]
fn malformed_is_bad_upstream_response() {
    for body in [
        &b"<html>"[..],
        b"[]",
        br#"{"id":"x"}"#,
        br#"{"choices":[{"index":0}]}"#,
        br#"{"choices":[{"message":{"content":7}}]}"#,
    ] {
        assert_eq!(
            response_to_hub(body, 0).expect_err("bad").kind,
            ErrorKind::UpstreamBadResponse
        );
    }
}

#[test]
fn error_shapes() {
    let cases: [(&[u8], &str, &str); 6] = [
        (br#"{"object":"error","message":"Invalid model: x","type":"invalid_model","param":null,"code":"1500"}"#,
         "invalid_model", "Invalid model: x"),
        (br#"{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","user"],"msg":"Extra inputs are not permitted","input":"u"}]},"type":"invalid_request_error","param":null,"code":null}"#,
         "invalid_request_error", "body.user: Extra inputs are not permitted (extra_forbidden)"),
        (br#"{"detail":[{"loc":["body","messages",0,"user","name"],"msg":"Extra inputs are not permitted","type":"extra_forbidden"},{"loc":["body","n"],"msg":"bad"}]}"#,
         "invalid_request_error", "body.messages.0.user.name: Extra inputs are not permitted (extra_forbidden); body.n: bad"),
        (br#"{"message":"Unauthorized","request_id":"abc"}"#, "error", "Unauthorized"),
        (br#"{"error":{"message":"m","type":"t"}}"#, "t", "m"),
        (br#"{"detail":"Not Found"}"#, "invalid_request_error", "Not Found"),
    ];
    for (body, kind, message) in cases {
        assert_eq!(
            parse_error(body),
            Some((kind.to_string(), message.to_string()))
        );
    }
    assert_eq!(parse_error(b"oops"), None);
    assert_eq!(parse_error(br#"{"x":1}"#), None);
}
