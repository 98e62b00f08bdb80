use super::*;

fn parse(v: Value) -> Result<EmbeddingsRequest, GatewayError> {
    parse_request(v.to_string().as_bytes())
}

#[test]
fn every_input_shape_is_counted() {
    let r = parse(json!({"model": "m", "input": "héllo"})).expect("string");
    assert_eq!((r.inputs, r.input_chars, r.base64), (1, 5, false));
    let r = parse(json!({"model": "m", "input": ["ab", "cde"]})).expect("strings");
    assert_eq!((r.inputs, r.input_chars), (2, 5));
    let r = parse(json!({"model": "m", "input": [1, 2, 3]})).expect("tokens");
    assert_eq!((r.inputs, r.input_chars), (1, 0));
    let r = parse(json!({"model": "m", "input": [[1, 2], [3]]})).expect("token arrays");
    assert_eq!((r.inputs, r.input_chars), (2, 0));
}

#[test]
fn empty_or_mixed_inputs_are_refused() {
    for input in [
        json!(""),
        json!([]),
        json!([""]),
        json!([[]]),
        json!(["a", 1]),
        json!([1, [2]]),
        json!([-1]),
        json!({"text": "a"}),
    ] {
        let err = parse(json!({"model": "m", "input": input})).expect_err("refused");
        assert_eq!(err.status(), 400, "{input}");
        assert_eq!(err.param.as_deref(), Some("input"), "{input}");
    }
    let err = parse(json!({"model": "m"})).expect_err("missing");
    assert_eq!(err.kind, ErrorKind::MissingParameter);
}

#[test]
fn model_encoding_dimensions_and_user_are_checked() {
    let err = parse(json!({"input": "a"})).expect_err("no model");
    assert_eq!(err.param.as_deref(), Some("model"));
    assert!(
        parse(json!({"model": "m", "input": "a", "encoding_format": "base64"}))
            .expect("ok")
            .base64
    );
    let err =
        parse(json!({"model": "m", "input": "a", "encoding_format": "int8"})).expect_err("bad");
    assert_eq!(err.param.as_deref(), Some("encoding_format"));
    for d in [json!(0), json!(-3), json!(1.5), json!("256")] {
        let err = parse(json!({"model": "m", "input": "a", "dimensions": d})).expect_err("bad");
        assert_eq!(err.param.as_deref(), Some("dimensions"));
    }
    let err = parse(json!({"model": "m", "input": "a", "user": 7})).expect_err("bad");
    assert_eq!(err.param.as_deref(), Some("user"));
    assert!(parse_request(b"{nope").expect_err("json").kind == ErrorKind::InvalidJson);
}

#[test]
fn openai_gets_the_body_as_sent_with_the_upstream_model() {
    let r = parse(json!({"model": "alias", "input": "a", "encoding_format": "base64", "extra": 1}))
        .expect("ok");
    let out: Value =
        serde_json::from_slice(&openai_request(&r, "text-embedding-3-small").expect("ok"))
            .expect("json");
    assert_eq!(
        out,
        json!({"model": "text-embedding-3-small", "input": "a", "encoding_format": "base64", "extra": 1})
    );
}

#[test]
fn mistral_gets_text_and_output_dimension_only() {
    let r = parse(json!({"model": "alias", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 256}))
        .expect("ok");
    let out: Value =
        serde_json::from_slice(&mistral_request(&r, "codestral-embed").expect("ok")).expect("json");
    assert_eq!(
        out,
        json!({"model": "codestral-embed", "input": ["a", "b"], "output_dimension": 256})
    );
    for (body, param) in [
        (json!({"model": "m", "input": [1, 2]}), "input"),
        (json!({"model": "m", "input": [[1], [2]]}), "input"),
        (json!({"model": "m", "input": "a", "user": "u"}), "user"),
        (json!({"model": "m", "input": "a", "extra": true}), "extra"),
    ] {
        let err = mistral_request(&parse(body).expect("ok"), "mistral-embed").expect_err("refused");
        assert_eq!(err.kind, ErrorKind::UnsupportedParameter);
        assert_eq!(err.param.as_deref(), Some(param));
    }
}

#[test]
fn base64_is_little_endian_f32_in_standard_base64() {
    let body = json!({"data": [{"object": "embedding", "index": 0, "embedding": [1.0, -2.0]}],
                      "usage": {"prompt_tokens": 3, "total_tokens": 3}});
    let (out, usage) =
        mistral_response_to_openai(body.to_string().as_bytes(), true, "alias", "req_1")
            .expect("ok");
    let out: Value = serde_json::from_slice(&out).expect("json");
    // 1.0f32 = 00 00 80 3F, -2.0f32 = 00 00 00 C0 (little-endian), worked by hand.
    assert_eq!(out["data"][0]["embedding"], "AACAPwAAAMA=");
    assert_eq!(out["model"], "alias");
    assert_eq!(out["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
    assert_eq!(usage.map(|u| u.input_tokens), Some(3));
}

#[test]
fn malformed_mistral_responses_are_bad_upstream_responses() {
    for body in [
        &b"nope"[..],
        br#"{"data": 1}"#,
        br#"{"data": [{"embedding": ["x"]}]}"#,
    ] {
        for b64 in [false, true] {
            let err = mistral_response_to_openai(body, b64, "m", "req_1").expect_err("bad");
            assert_eq!(err.kind, ErrorKind::UpstreamBadResponse);
        }
    }
}

#[test]
fn openai_usage_reads_prompt_tokens() {
    let u = openai_usage(br#"{"usage": {"prompt_tokens": 8, "total_tokens": 8}}"#).expect("usage");
    assert_eq!((u.input_tokens, u.output_tokens), (8, 0));
    assert_eq!(openai_usage(br#"{"data": []}"#), None);
}
