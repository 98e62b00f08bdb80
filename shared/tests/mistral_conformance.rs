//! Mistral mapper and embeddings mappers against the golden fixtures under `tests/fixtures/`
//! (sources in each folder's README). Expected values are read off the references, not off the
//! code's output.

use std::collections::HashSet;

use asc_core::error::ErrorKind;
use asc_core::providers::embeddings;
use asc_core::providers::mistral::{
    parse_error, request_from_hub, response_to_hub, MistralDecoder,
};
use asc_core::providers::stream::{HubEvent, UpstreamDecoder};
use asc_core::providers::HubRequest;
use asc_core::sse::SseParser;
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{json, Value};

fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn hub(v: Value) -> HubRequest {
    match v {
        Value::Object(m) => m,
        _ => panic!("hub must be an object"),
    }
}

fn to_mistral(v: Value) -> Value {
    let body = request_from_hub(&hub(v), "mistral-large-latest").expect("mapped");
    serde_json::from_slice(&body).expect("json")
}

fn refusal(v: Value) -> (ErrorKind, u16, Option<String>) {
    let err = request_from_hub(&hub(v), "mistral-large-latest").expect_err("refused");
    (err.kind, err.status(), err.param)
}

fn is_mistral_id(id: &str) -> bool {
    id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

// ---- requests ----

#[test]
fn system_developer_role_becomes_system() {
    let req: Value =
        serde_json::from_str(&fixture("openai/chat-request-default.json")).expect("json");
    assert_eq!(
        to_mistral(req),
        json!({
            "model": "mistral-large-latest",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Hello!"},
            ],
        })
    );
}

#[test]
fn multi_turn_keeps_order_and_roles() {
    let out = to_mistral(json!({"model": "m", "messages": [
        {"role": "system", "content": "You are an assistant for the company Coca Cola "},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hello how can I help you"},
        {"role": "user", "content": "what is Coca Cola"},
    ]}));
    let roles: Vec<&str> = out["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(out["messages"][2]["content"], "hello how can I help you");
}

#[test]
fn images_use_mistral_image_url_chunks() {
    let req: Value =
        serde_json::from_str(&fixture("openai/chat-request-image.json")).expect("json");
    let url = req["messages"][0]["content"][1]["image_url"]["url"].clone();
    let out = to_mistral(req);
    assert_eq!(out["max_tokens"], 300);
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What's in this image?"},
            {"type": "image_url", "image_url": {"url": url}},
        ])
    );
}

#[test]
fn sampling_fields_and_seed() {
    let out = to_mistral(json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.7, "top_p": 1, "max_completion_tokens": 100, "stop": "END", "seed": 1337,
    }));
    assert_eq!(out["temperature"], 0.7);
    assert_eq!(out["top_p"], 1);
    assert_eq!(out["max_tokens"], 100);
    assert_eq!(out["stop"], "END");
    assert_eq!(out["random_seed"], 1337);
    for gone in ["seed", "max_completion_tokens"] {
        assert!(out.get(gone).is_none(), "{gone}");
    }
}

#[test]
fn tools_and_tool_choice() {
    let req: Value =
        serde_json::from_str(&fixture("openai/chat-request-functions.json")).expect("json");
    let tools = req["tools"].clone();
    let out = to_mistral(req.clone());
    assert_eq!(
        out["tools"], tools,
        "an OpenAI function tool is already Mistral's shape"
    );
    assert_eq!(out["tool_choice"], "auto");
    let mut required = req.clone();
    required["tool_choice"] = json!("required");
    assert_eq!(to_mistral(required)["tool_choice"], "any");
    let mut none = req.clone();
    none["tool_choice"] = json!("none");
    assert_eq!(to_mistral(none)["tool_choice"], "none");
    let mut named = req;
    named["tool_choice"] = json!({"type": "function", "function": {"name": "get_current_weather"}});
    assert_eq!(
        to_mistral(named)["tool_choice"],
        json!({"type": "function", "function": {"name": "get_current_weather"}})
    );
}

#[test]
fn tool_results_get_consistent_nine_character_ids() {
    let req: Value =
        serde_json::from_str(&fixture("openai/chat-request-tool-results.json")).expect("json");
    let out = to_mistral(req.clone());
    let calls = out["messages"][1]["tool_calls"].as_array().expect("calls");
    let ids: Vec<&str> = calls
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert!(ids.iter().all(|id| is_mistral_id(id)), "{ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3);
    for (k, id) in ids.iter().enumerate() {
        assert_eq!(out["messages"][2 + k]["tool_call_id"], *id);
        assert_eq!(
            out["messages"][2 + k]["content"],
            req["messages"][2 + k]["content"]
        );
        assert_eq!(
            calls[k]["function"],
            req["messages"][1]["tool_calls"][k]["function"]
        );
    }
    // The same conversation sent again (the next turn) gets the same ids.
    assert_eq!(
        to_mistral(req)["messages"][1]["tool_calls"],
        out["messages"][1]["tool_calls"]
    );
}

#[test]
fn parallel_tool_calls_flag_passes() {
    let out = to_mistral(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                "parallel_tool_calls": false}),
    );
    assert_eq!(out["parallel_tool_calls"], false);
}

#[test]
fn json_mode_and_json_schema() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "JSON please"}]});
    for rf in [
        json!({"type": "json_object"}),
        json!({"type": "text"}),
        json!({"type": "json_schema", "json_schema": {"name": "book", "description": "a book",
               "schema": {"type": "object", "properties": {"title": {"type": "string"}}}, "strict": true}}),
    ] {
        let mut req = base.clone();
        req["response_format"] = rf.clone();
        assert_eq!(to_mistral(req)["response_format"], rf);
    }
}

#[test]
fn fields_mistral_cannot_take_are_refused_with_their_name() {
    let msgs = json!([{"role": "user", "content": "x"}]);
    for (field, value) in [
        ("x_anthropic_top_k", json!(5)),
        (
            "x_anthropic_thinking",
            json!({"type": "enabled", "budget_tokens": 1024}),
        ),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("logit_bias", json!({"50256": -100})),
        ("audio", json!({"voice": "alloy", "format": "wav"})),
        ("modalities", json!(["text"])),
        ("store", json!(true)),
        ("metadata", json!({"k": "v"})),
        ("service_tier", json!("auto")),
        ("user", json!("end-user-1")),
        ("reasoning_effort", json!("low")),
    ] {
        let got = refusal(json!({"model": "m", "messages": msgs, field: value}));
        assert_eq!(
            got,
            (
                ErrorKind::UnsupportedParameter,
                400,
                Some(field.to_string())
            ),
            "{field}"
        );
    }
    let got = refusal(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "x", "x_anthropic_cache_control": {"type": "ephemeral"}}]}]}),
    );
    assert_eq!(
        got.2.as_deref(),
        Some("messages[0].content[0].x_anthropic_cache_control")
    );
}

#[test]
fn stream_options_is_not_sent() {
    let out = to_mistral(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                "stream": true, "stream_options": {"include_usage": true}}),
    );
    assert_eq!(out["stream"], true);
    assert!(out.get("stream_options").is_none());
}

fn arb_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]{9}",
        "call_[a-zA-Z0-9]{1,24}",
        "toolu_[a-zA-Z0-9]{1,24}",
        "[a-zA-Z0-9_-]{0,12}",
    ]
}

proptest! {
    #[test]
    fn rewritten_ids_are_valid_consistent_and_distinct(ids in proptest::collection::vec(arb_id(), 1..12)) {
        let distinct: Vec<String> = {
            let mut seen = HashSet::new();
            ids.into_iter().filter(|i| seen.insert(i.clone())).collect()
        };
        let calls: Vec<Value> = distinct.iter().map(|id| json!({
            "id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}})).collect();
        let mut messages = vec![json!({"role": "user", "content": "go"}),
                                json!({"role": "assistant", "tool_calls": calls})];
        // Tool results in reverse order: the mapping must not depend on position.
        for id in distinct.iter().rev() {
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": id}));
        }
        let out = to_mistral(json!({"model": "m", "messages": messages}));
        let sent: Vec<String> = out["messages"][1]["tool_calls"].as_array().expect("calls")
            .iter().map(|c| c["id"].as_str().expect("id").to_string()).collect();
        prop_assert_eq!(sent.iter().collect::<HashSet<_>>().len(), distinct.len());
        for (orig, new) in distinct.iter().zip(&sent) {
            prop_assert!(is_mistral_id(new), "{}", new);
            if is_mistral_id(orig) {
                prop_assert_eq!(orig, new);
            }
        }
        for (k, orig) in distinct.iter().rev().enumerate() {
            let tool = &out["messages"][2 + k];
            prop_assert_eq!(tool["content"].as_str(), Some(orig.as_str()));
            let pos = distinct.iter().position(|d| d == orig).expect("pos");
            prop_assert_eq!(tool["tool_call_id"].as_str(), Some(sent[pos].as_str()));
        }
    }
}

// ---- responses ----

#[test]
fn reference_response_maps_to_a_chat_completion() {
    let (hub, usage) =
        response_to_hub(fixture("mistral/chat-response.json").as_bytes(), 0).expect("ok");
    assert_eq!(hub["object"], "chat.completion");
    assert_eq!(hub["id"], "cmpl-e5cc70bb28c444948073e77776eb30ef");
    assert_eq!(hub["created"], 1702256327);
    assert_eq!(hub["choices"][0]["message"]["content"], "string");
    assert_eq!(hub["choices"][0]["finish_reason"], "stop");
    // The reference's example sends `arguments` as an object; OpenAI's is a JSON string.
    assert_eq!(
        hub["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{}"
    );
    assert_eq!(
        hub["usage"],
        json!({"prompt_tokens": 16, "completion_tokens": 34, "total_tokens": 50})
    );
    let u = usage.expect("usage");
    assert_eq!((u.input_tokens, u.output_tokens), (16, 34));
}

#[test]
fn tool_call_response_keeps_mistral_ids() {
    let (hub, _) = response_to_hub(
        fixture("mistral/chat-response-tool-call.json").as_bytes(),
        0,
    )
    .expect("ok");
    let choice = &hub["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "gSIMJiOkT", "type": "function",
                "function": {"name": "weather", "arguments": "{\"location\": \"San Francisco\"}"}}])
    );
}

#[test]
fn reasoning_chunks_split_into_content_and_reasoning() {
    let (hub, _) = response_to_hub(
        fixture("mistral/chat-response-reasoning.json").as_bytes(),
        0,
    )
    .expect("ok");
    let m = &hub["choices"][0]["message"];
    assert_eq!(m["content"], "2 + 2 = 4");
    assert_eq!(
        m["reasoning_content"],
        "The user is asking for 2+2. This is basic arithmetic. 2+2=4."
    );
}

#[test]
fn finish_reasons() {
    for (mistral, hub_reason) in [
        ("stop", Some("stop")),
        ("length", Some("length")),
        ("model_length", Some("length")),
        ("tool_calls", Some("tool_calls")),
        ("error", None),
    ] {
        let body = json!({"id": "x", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "c"}, "finish_reason": mistral}]});
        match (response_to_hub(body.to_string().as_bytes(), 0), hub_reason) {
            (Ok((hub, _)), Some(r)) => assert_eq!(hub["choices"][0]["finish_reason"], r),
            (Err(e), None) => assert_eq!(e.kind, ErrorKind::UpstreamError),
            (other, _) => panic!("{mistral}: {other:?}"),
        }
    }
}

#[test]
fn usage_with_details() {
    let (_, usage) = response_to_hub(
        fixture("mistral/chat-response-usage-details.json").as_bytes(),
        0,
    )
    .expect("ok");
    let u = usage.expect("usage");
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cached_input_tokens),
        (20, 2, 0)
    );
}

#[test]
fn error_shapes() {
    let cases = [
        (
            "mistral/error-422-extra-forbidden.json",
            "invalid_request_error",
            "body.messages.0.user.name: Extra inputs are not permitted (extra_forbidden); \
          body.messages.0.user.tool_calls: Extra inputs are not permitted (extra_forbidden)",
        ),
        (
            "mistral/error-422-n.json",
            "invalid_request_error",
            "body.n: Extra inputs are not permitted (extra_forbidden)",
        ),
        (
            "mistral/error-422-detail-list.json",
            "invalid_request_error",
            "body.tools: Extra inputs are not permitted (extra_forbidden)",
        ),
    ];
    for (file, kind, message) in cases {
        assert_eq!(
            parse_error(fixture(file).as_bytes()),
            Some((kind.into(), message.into())),
            "{file}"
        );
    }
    assert_eq!(
        parse_error(br#"{"object":"error","message":"Invalid model: mistral-huge","type":"invalid_model","param":null,"code":"1500"}"#),
        Some(("invalid_model".into(), "Invalid model: mistral-huge".into()))
    );
    assert_eq!(
        parse_error(
            br#"{"detail":[{"loc":["body","model"],"msg":"Field required","type":"missing"}]}"#
        ),
        Some((
            "invalid_request_error".into(),
            "body.model: Field required (missing)".into()
        ))
    );
    assert_eq!(
        parse_error(br#"{"message":"Unauthorized","request_id":"x"}"#),
        Some(("error".into(), "Unauthorized".into()))
    );
    assert_eq!(parse_error(b"<html>502</html>"), None);
}

// ---- streams ----

fn decode(stream: &[u8], pieces: &[usize]) -> (Vec<HubEvent>, Option<asc_core::audit::Usage>) {
    let mut parser = SseParser::new(1 << 20);
    let mut decoder = MistralDecoder::new();
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut last = 0;
    for &cut in pieces.iter().chain(std::iter::once(&stream.len())) {
        parser.feed(&stream[last..cut], &mut events).expect("sse");
        last = cut;
        for ev in events.drain(..) {
            decoder.on_event(&ev, &mut out).expect("decode");
        }
    }
    (out, decoder.usage())
}

fn chunks(events: &[HubEvent]) -> Vec<&Value> {
    events
        .iter()
        .filter_map(|e| match e {
            HubEvent::Chunk { chunk, raw } => {
                assert!(
                    raw.is_none(),
                    "Mistral chunks are rewritten, never relayed raw"
                );
                Some(chunk)
            }
            _ => None,
        })
        .collect()
}

fn text_of(events: &[HubEvent]) -> String {
    chunks(events)
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str())
        .collect()
}

#[test]
fn text_stream_ends_with_usage_then_done() {
    let (events, usage) = decode(fixture("mistral/stream-text.sse").as_bytes(), &[]);
    assert_eq!(text_of(&events), "Coca-Cola recognizable");
    let cs = chunks(&events);
    assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(cs.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let last_text = cs[cs.len() - 2];
    assert_eq!(last_text["choices"][0]["finish_reason"], "length");
    assert_eq!(
        cs[cs.len() - 1],
        &json!({"id": "f798ebd5c41a45d88bb079635121cade", "object": "chat.completion.chunk",
                "created": 1732548656, "model": "mistral-large-latest", "choices": [],
                "usage": {"prompt_tokens": 34, "completion_tokens": 100, "total_tokens": 134}})
    );
    assert_eq!(events.last(), Some(&HubEvent::Done));
    let u = usage.expect("usage");
    assert_eq!((u.input_tokens, u.output_tokens), (34, 100));
}

#[test]
fn tool_call_stream_gets_index_and_type() {
    let (events, usage) = decode(fixture("mistral/stream-tool-call.sse").as_bytes(), &[]);
    let cs = chunks(&events);
    assert_eq!(
        cs[1]["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "id": "gSIMJiOkT", "type": "function",
                "function": {"name": "weather", "arguments": "{\"location\": \"San Francisco\"}"}}])
    );
    assert_eq!(cs[1]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(usage.map(|u| u.input_tokens), Some(124));
}

#[test]
fn incremental_tool_call_stream_keeps_one_index_and_cached_tokens() {
    let (events, usage) = decode(
        fixture("mistral/stream-incremental-tool-call.sse").as_bytes(),
        &[],
    );
    let cs = chunks(&events);
    assert_eq!(
        cs[0]["choices"][0]["delta"]["tool_calls"][0]["id"],
        "chatcmpl-tool-9f149c74c42f265b"
    );
    assert_eq!(
        cs[1]["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "function": {"arguments": "{\"query\": \"current Berlin weather\"}"}}])
    );
    let u = usage.expect("usage");
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cached_input_tokens),
        (171, 14, 128)
    );
    assert_eq!(
        cs[3]["usage"]["prompt_tokens_details"]["cached_tokens"],
        128
    );
}

#[test]
fn reasoning_stream_splits_thinking_from_text() {
    let (events, _) = decode(fixture("mistral/stream-reasoning.sse").as_bytes(), &[]);
    let reasoning: String = chunks(&events)
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(
        reasoning,
        "The user is asking for 2+2. This is basic arithmetic. 2+2=4."
    );
    assert_eq!(text_of(&events), "2 + 2 = 4");
}

#[test]
fn multibyte_stream_text() {
    let (events, _) = decode(fixture("mistral/stream-multibyte.sse").as_bytes(), &[]);
    assert_eq!(
        text_of(&events),
        "Le fromage préféré : Comté ✓ 🧀 日本語も。"
    );
}

proptest! {
    #[test]
    fn any_split_gives_the_same_hub_events(
        which in 0usize..3,
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
    ) {
        let file = ["mistral/stream-multibyte.sse", "mistral/stream-tool-call.sse",
                    "mistral/stream-incremental-tool-call.sse"][which];
        let stream = fixture(file).into_bytes();
        let whole = decode(&stream, &[]);
        let mut pieces: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        pieces.sort_unstable();
        prop_assert_eq!(decode(&stream, &pieces), whole);
    }
}

// ---- embeddings ----

#[test]
fn openai_embeddings_pass_through() {
    let body = fixture("openai/embeddings-request.json");
    let req = embeddings::parse_request(body.as_bytes()).expect("parsed");
    assert_eq!(
        (req.model.as_str(), req.inputs, req.base64),
        ("text-embedding-ada-002", 1, false)
    );
    assert_eq!(
        req.input_chars,
        "The food was delicious and the waiter...".len() as u64
    );
    let out: Value = serde_json::from_slice(
        &embeddings::openai_request(&req, "text-embedding-3-small").expect("ok"),
    )
    .expect("json");
    let mut expected: Value = serde_json::from_str(&body).expect("json");
    expected["model"] = json!("text-embedding-3-small");
    assert_eq!(out, expected);
    let u = embeddings::openai_usage(fixture("openai/embeddings-response.json").as_bytes())
        .expect("usage");
    assert_eq!((u.input_tokens, u.output_tokens), (8, 0));
}

#[test]
fn mistral_embeddings_request_and_float_response() {
    let req = embeddings::parse_request(
        br#"{"model": "embed", "input": ["Embed this sentence.", "As well as this one."]}"#,
    )
    .expect("parsed");
    let out: Value =
        serde_json::from_slice(&embeddings::mistral_request(&req, "mistral-embed").expect("ok"))
            .expect("json");
    assert_eq!(
        out,
        json!({"model": "mistral-embed", "input": ["Embed this sentence.", "As well as this one."]})
    );

    let upstream: Value =
        serde_json::from_str(&fixture("mistral/embeddings-response.json")).expect("json");
    let (body, usage) = embeddings::mistral_response_to_openai(
        upstream.to_string().as_bytes(),
        false,
        "embed",
        "req_1",
    )
    .expect("ok");
    let out: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(out["object"], "list");
    assert_eq!(out["model"], "embed");
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 16, "total_tokens": 16})
    );
    for i in 0..2 {
        assert_eq!(out["data"][i]["object"], "embedding");
        assert_eq!(out["data"][i]["index"], i);
        assert_eq!(
            out["data"][i]["embedding"],
            upstream["data"][i]["embedding"]
        );
    }
    assert_eq!(usage.map(|u| u.input_tokens), Some(16));
}

/// The fields each SDK's embeddings response model requires: Mistral's `EmbeddingResponse`
/// (mistralai 3.7.0, `client/models/embeddingresponse.py`: `id`, `object`, `model`, `usage`,
/// `data`) and OpenAI's `CreateEmbeddingResponse` (`data`, `model`, `object: "list"`, `usage`
/// with `prompt_tokens` and `total_tokens`; each item `object: "embedding"`, `index`, `embedding`).
fn assert_both_sdks_accept(out: &Value) {
    assert!(out["id"].is_string(), "Mistral requires `id`: {out}");
    assert_eq!(out["object"], "list");
    assert!(out["model"].is_string());
    assert!(out["usage"]["prompt_tokens"].is_u64() && out["usage"]["total_tokens"].is_u64());
    let data = out["data"].as_array().expect("data");
    assert!(!data.is_empty());
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        assert!(item["embedding"].is_array() || item["embedding"].is_string());
    }
}

#[test]
fn embeddings_replies_carry_what_mistral_and_openai_sdks_require() {
    // OpenAI upstream: the reference's reply has no `id`; the gateway's request id goes in and
    // nothing else changes.
    let upstream = fixture("openai/embeddings-response.json");
    let (body, usage) = embeddings::openai_response(upstream.clone().into_bytes(), "req_abc");
    let out: Value = serde_json::from_slice(&body).expect("json");
    assert_both_sdks_accept(&out);
    assert_eq!(out["id"], "req_abc");
    let mut without = out.clone();
    without.as_object_mut().expect("object").remove("id");
    assert_eq!(
        without,
        serde_json::from_str::<Value>(&upstream).expect("json")
    );
    assert_eq!(usage.map(|u| u.input_tokens), Some(8));
    // A reply that has an `id` already keeps its bytes.
    let with_id = br#"{"id":"emb_1","object":"list","data":[],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}"#;
    assert_eq!(
        embeddings::openai_response(with_id.to_vec(), "req_abc").0,
        with_id.to_vec()
    );
    // Not an object (an upstream's odd reply): passed on as it is.
    assert_eq!(
        embeddings::openai_response(b"[1]".to_vec(), "r").0,
        b"[1]".to_vec()
    );
    let (empty, _) = embeddings::openai_response(b" {}".to_vec(), "r");
    assert_eq!(
        serde_json::from_slice::<Value>(&empty).expect("json"),
        json!({"id": "r"})
    );

    // Mistral upstream: Mistral's own id is kept.
    let upstream: Value =
        serde_json::from_str(&fixture("mistral/embeddings-response.json")).expect("json");
    for b64 in [false, true] {
        let (body, _) = embeddings::mistral_response_to_openai(
            upstream.to_string().as_bytes(),
            b64,
            "embed",
            "req_abc",
        )
        .expect("ok");
        let out: Value = serde_json::from_slice(&body).expect("json");
        assert_both_sdks_accept(&out);
        assert_eq!(out["id"], upstream["id"]);
    }
}

#[test]
fn mistral_embeddings_base64_round_trip() {
    let req = embeddings::parse_request(
        br#"{"model": "embed", "input": "x", "encoding_format": "base64"}"#,
    )
    .expect("parsed");
    assert!(req.base64);
    let sent: Value =
        serde_json::from_slice(&embeddings::mistral_request(&req, "mistral-embed").expect("ok"))
            .expect("json");
    assert!(sent.get("encoding_format").is_none() && sent.get("output_dtype").is_none());

    let upstream: Value =
        serde_json::from_str(&fixture("mistral/embeddings-response.json")).expect("json");
    let (body, _) = embeddings::mistral_response_to_openai(
        upstream.to_string().as_bytes(),
        true,
        "embed",
        "req_1",
    )
    .expect("ok");
    let out: Value = serde_json::from_slice(&body).expect("json");
    for i in 0..2 {
        let b64 = out["data"][i]["embedding"].as_str().expect("base64 string");
        // What OpenAI's SDK does: np.frombuffer(base64.b64decode(s), dtype="float32").
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let expected: Vec<f32> = upstream["data"][i]["embedding"]
            .as_array()
            .expect("floats")
            .iter()
            .map(|x| x.as_f64().expect("f64") as f32)
            .collect();
        assert_eq!(decoded, expected);
    }
}

#[test]
fn mistral_embeddings_refuse_tokens_and_unknown_fields() {
    for (body, param) in [
        (&br#"{"model": "e", "input": [1, 2, 3]}"#[..], "input"),
        (br#"{"model": "e", "input": [[1, 2], [3]]}"#, "input"),
        (br#"{"model": "e", "input": "x", "user": "u"}"#, "user"),
        (
            br#"{"model": "e", "input": "x", "x_anthropic_top_k": 1}"#,
            "x_anthropic_top_k",
        ),
    ] {
        let req = embeddings::parse_request(body).expect("parsed");
        let err = embeddings::mistral_request(&req, "mistral-embed").expect_err("refused");
        assert_eq!(
            (err.kind, err.status(), err.param.as_deref()),
            (ErrorKind::UnsupportedParameter, 400, Some(param))
        );
    }
}
