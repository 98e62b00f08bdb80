use super::*;

fn decode(events: &[&str]) -> (Vec<HubEvent>, Option<Usage>) {
    let mut d = MistralDecoder::new();
    let mut out = Vec::new();
    for data in events {
        let ev = SseEvent {
            event: None,
            data: data.to_string(),
            raw: Vec::new(),
        };
        d.on_event(&ev, &mut out).expect("decode");
    }
    (out, d.usage())
}

fn chunk(e: &HubEvent) -> &Value {
    match e {
        HubEvent::Chunk { chunk, raw: None } => chunk,
        other => panic!("not a chunk: {other:?}"),
    }
}

#[test]
fn usage_becomes_a_usage_only_chunk_before_done() {
    let (out, usage) = decode(&[
        r#"{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        r#"{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"izable"},"finish_reason":"model_length"}],"usage":{"prompt_tokens":34,"total_tokens":134,"completion_tokens":100}}"#,
        "[DONE]",
    ]);
    assert_eq!(out.len(), 4);
    assert_eq!(
        chunk(&out[0])["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunk(&out[1])["choices"][0]["finish_reason"], "length");
    assert!(chunk(&out[1]).get("usage").is_none());
    assert_eq!(
        chunk(&out[2]),
        &json!({"id": "a", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                "usage": {"prompt_tokens": 34, "completion_tokens": 100, "total_tokens": 134}})
    );
    assert_eq!(out[3], HubEvent::Done);
    assert_eq!(
        usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((34, 100))
    );
}

#[test]
fn whole_tool_calls_get_their_own_indexes() {
    let (out, _) = decode(&[
        r#"{"id":"a","choices":[{"index":0,"delta":{"tool_calls":[{"id":"aaaaaaaa1","function":{"name":"f","arguments":"{}"}},{"id":"aaaaaaaa2","function":{"name":"g","arguments":{"x":1}},"index":0}]},"finish_reason":null}]}"#,
        r#"{"id":"a","choices":[{"index":0,"delta":{"tool_calls":[{"id":"aaaaaaaa3","function":{"name":"h","arguments":""}}]},"finish_reason":"tool_calls"}]}"#,
    ]);
    let calls = &chunk(&out[0])["choices"][0]["delta"]["tool_calls"];
    assert_eq!(
        calls[0],
        json!({"index": 0, "id": "aaaaaaaa1", "type": "function", "function": {"name": "f", "arguments": "{}"}})
    );
    assert_eq!(calls[1]["index"], 1);
    assert_eq!(calls[1]["function"]["arguments"], "{\"x\":1}");
    assert_eq!(
        chunk(&out[1])["choices"][0]["delta"]["tool_calls"][0]["index"],
        2
    );
}

#[test]
fn fragments_follow_their_call() {
    let (out, _) = decode(&[
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-1","type":"function","function":{"name":"s","arguments":""},"index":0}]},"finish_reason":null}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"type":"function","function":{"name":"","arguments":"{\"q\":1}"},"index":0}]},"finish_reason":null}]}"#,
    ]);
    assert_eq!(
        chunk(&out[1])["choices"][0]["delta"]["tool_calls"][0],
        json!({"index": 0, "function": {"arguments": "{\"q\":1}"}})
    );
}

#[test]
fn content_chunks_become_strings() {
    let (out, _) = decode(&[
        r#"{"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]}]},"finish_reason":null}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"4"}]},"finish_reason":null}]}"#,
    ]);
    assert_eq!(
        chunk(&out[0])["choices"][0]["delta"],
        json!({"reasoning_content": "hmm"})
    );
    assert_eq!(
        chunk(&out[1])["choices"][0]["delta"],
        json!({"content": "4"})
    );
}

#[test]
fn errors_end_the_stream() {
    let (out, _) = decode(&[
        r#"{"object":"error","message":"Service unavailable","type":"internal_error","param":null,"code":"3000"}"#,
    ]);
    match &out[0] {
        HubEvent::Error(e) => {
            assert_eq!(e.kind, ErrorKind::UpstreamError);
            assert!(e.message.contains("Service unavailable"));
        }
        other => panic!("{other:?}"),
    }
    let (out, _) =
        decode(&[r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"error"}]}"#]);
    assert_eq!(chunk(&out[0])["choices"][0]["finish_reason"], Value::Null);
    assert!(matches!(out[1], HubEvent::Error(_)));
    let mut d = MistralDecoder::new();
    let ev = SseEvent {
        event: None,
        data: "{not json".into(),
        raw: Vec::new(),
    };
    assert_eq!(
        d.on_event(&ev, &mut Vec::new()).expect_err("bad").kind,
        ErrorKind::UpstreamBadResponse
    );
    let (out, _) = decode(&[""]);
    assert_eq!(out, vec![HubEvent::KeepAlive]);
}
