//! The Anthropic mapper against the wire examples in `fixtures/anthropic/` (sources in its
//! README): request round trips, hub -> Anthropic requests, streams both ways, responses,
//! refused fields and errors. Expected values are read off the API references.

use asc_core::audit::Usage;
use asc_core::providers::anthropic::inbound::{
    error_body, message_id, request_to_hub, response_from_hub, AnthropicEncoder,
};
use asc_core::providers::anthropic::outbound::{
    parse_error, request_from_hub, response_to_hub, AnthropicDecoder,
};
use asc_core::providers::anthropic::{upstream_error, API_VERSION};
use asc_core::providers::stream::{ClientEncoder, HubEvent, UpstreamDecoder};
use asc_core::sse::SseParser;
use asc_core::{ErrorKind, GatewayError};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const STREAM_TOOL_USE: &str = include_str!("fixtures/anthropic/stream_tool_use.sse");
const STREAM_TEXT: &str = include_str!("fixtures/anthropic/stream_text.sse");
const STREAM_MULTIBYTE: &str = include_str!("fixtures/anthropic/stream_text_multibyte.sse");
const STREAM_ERROR: &str = include_str!("fixtures/anthropic/stream_error.sse");

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// Anthropic request -> hub -> Anthropic request, as an Anthropic upstream would receive it.
fn round_trip(anthropic: &Value) -> Value {
    let inbound = request_to_hub(anthropic.to_string().as_bytes()).expect("accepted");
    let bytes = request_from_hub(&inbound.hub, &inbound.model, 1).expect("written");
    serde_json::from_slice(&bytes).expect("json")
}

#[test]
fn api_version() {
    assert_eq!(API_VERSION, "2023-06-01");
}

#[test]
fn anthropic_requests_survive_the_hub() {
    for text in [
        include_str!("fixtures/anthropic/request_basic.json"),
        include_str!("fixtures/anthropic/request_tool_use_stream.json"),
        include_str!("fixtures/anthropic/request_tool_result.json"),
        include_str!("fixtures/anthropic/request_image_system.json"),
    ] {
        let mut original = json_of(text);
        // The outbound mapper always states `stream`.
        if original.get("stream").is_none() {
            original["stream"] = json!(false);
        }
        assert_eq!(round_trip(&original), original);
    }
}

#[test]
fn parallel_tool_use_and_error_results_survive_the_hub() {
    let original = json!({"model": "m", "max_tokens": 10, "stream": false,
    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}},
              {"name": "get_time", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
    "messages": [
        {"role": "user", "content": "What's the weather in SF and the time in NYC?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"location": "San Francisco, CA"}},
            {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {"timezone": "America/New_York"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "68°F and sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": [{"type": "text", "text": "timeout"}], "is_error": true,
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Thanks!"}]}
    ]});
    assert_eq!(round_trip(&original), original);
}

fn openai_to_anthropic(text: &str) -> Value {
    let bytes = request_from_hub(&object(json_of(text)), "claude-opus-4-7", 4096).expect("mapped");
    serde_json::from_slice(&bytes).expect("json")
}

#[test]
fn openai_requests_become_anthropic_requests() {
    assert_eq!(
        openai_to_anthropic(include_str!(
            "fixtures/anthropic/openai_request_default.json"
        )),
        json!({"model": "claude-opus-4-7", "max_tokens": 4096, "stream": false,
               "system": "You are a helpful assistant.",
               "messages": [{"role": "user", "content": "Hello!"}]})
    );
    let vision = openai_to_anthropic(include_str!(
        "fixtures/anthropic/openai_request_vision.json"
    ));
    assert_eq!(vision["max_tokens"], 300);
    assert_eq!(
        vision["messages"][0]["content"],
        json!([{"type": "text", "text": "What's in this image?"},
               {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg"}}])
    );
    let tools = openai_to_anthropic(include_str!("fixtures/anthropic/openai_request_tools.json"));
    assert_eq!(tools["tool_choice"], json!({"type": "auto"}));
    assert_eq!(tools["tools"][0]["name"], "get_current_weather");
    assert_eq!(
        tools["tools"][0]["description"],
        "Get the current weather in a given location"
    );
    assert_eq!(
        tools["tools"][0]["input_schema"]["required"],
        json!(["location"])
    );
}

#[test]
fn refused_fields_name_the_param() {
    let thinking = request_to_hub(include_bytes!("fixtures/anthropic/request_thinking.json"))
        .expect_err("thinking refused");
    assert_eq!(
        (thinking.kind, thinking.param.as_deref()),
        (ErrorKind::UnsupportedParameter, Some("thinking"))
    );
    assert_eq!(thinking.status(), 400);
    let search = request_to_hub(include_bytes!("fixtures/anthropic/request_web_search.json"))
        .expect_err("server tool refused");
    assert_eq!(
        (search.kind, search.param.as_deref()),
        (ErrorKind::UnsupportedParameter, Some("tools[0].type"))
    );
    let mut json_mode = object(json_of(include_str!(
        "fixtures/anthropic/openai_request_default.json"
    )));
    json_mode.insert("response_format".into(), json!({"type": "json_object"}));
    let err = request_from_hub(&json_mode, "c", 1).expect_err("refused");
    assert_eq!(
        (err.kind, err.param.as_deref()),
        (ErrorKind::UnsupportedParameter, Some("response_format"))
    );
}

#[test]
fn anthropic_responses_become_chat_completions() {
    let (hub, usage) = response_to_hub(
        include_bytes!("fixtures/anthropic/message_basic.json"),
        1_760_000_000,
    )
    .expect("maps");
    assert_eq!(hub["object"], "chat.completion");
    assert_eq!(
        hub["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hi! My name is Claude."})
    );
    assert_eq!(hub["choices"][0]["finish_reason"], "stop");
    assert_eq!(hub["usage"]["prompt_tokens"], 2095);
    assert_eq!(hub["usage"]["completion_tokens"], 503);
    assert_eq!(hub["usage"]["total_tokens"], 2598);
    assert_eq!(usage.map(|u| u.output_tokens), Some(503));

    let (hub, usage) = response_to_hub(
        include_bytes!("fixtures/anthropic/message_tool_use.json"),
        1,
    )
    .expect("maps");
    assert_eq!(hub["choices"][0]["finish_reason"], "tool_calls");
    // Prompt caching: the prompt was 2095 uncached + 1000 written + 4000 read.
    assert_eq!(hub["usage"]["prompt_tokens"], 7095);
    assert_eq!(hub["usage"]["prompt_tokens_details"]["cached_tokens"], 4000);
    assert_eq!(
        usage,
        Some(Usage {
            input_tokens: 7095,
            output_tokens: 503,
            cached_input_tokens: 4000,
            cache_write_tokens: 1000
        })
    );
    // And back to an Anthropic client: the same message (usage with the cache split intact).
    let back: Value =
        serde_json::from_slice(&response_from_hub(&hub, usage, "claude-opus-4-7").expect("maps"))
            .expect("json");
    assert_eq!(
        back,
        json_of(include_str!("fixtures/anthropic/message_tool_use.json"))
    );
}

#[test]
fn openai_completions_become_anthropic_messages() {
    let hub = json_of(include_str!(
        "fixtures/anthropic/openai_chat_completion.json"
    ));
    let m: Value =
        serde_json::from_slice(&response_from_hub(&hub, None, "claude-x").expect("maps"))
            .expect("json");
    assert_eq!(m["id"], "msg_123");
    assert_eq!(
        m["content"],
        json!([{"type": "text", "text": "\n\nHello there, how may I assist you today?"}])
    );
    assert_eq!(m["stop_reason"], "end_turn");
    assert_eq!(m["usage"]["input_tokens"], 9);
    assert_eq!(m["usage"]["output_tokens"], 12);
    let hub = json_of(include_str!("fixtures/anthropic/openai_tool_calls.json"));
    let m: Value =
        serde_json::from_slice(&response_from_hub(&hub, None, "claude-x").expect("maps"))
            .expect("json");
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(m["content"][0]["input"], json!({"location": "Boston, MA"}));
}

/// Parses a stream in `pieces` and decodes it; returns the hub events and the final usage.
fn decode(pieces: &[&[u8]]) -> (Vec<HubEvent>, Option<Usage>) {
    let mut parser = SseParser::new(1 << 16);
    let mut decoder = AnthropicDecoder::new(1_760_000_000);
    let mut hub = Vec::new();
    for p in pieces {
        let mut events = Vec::new();
        parser.feed(p, &mut events).expect("parses");
        for ev in &events {
            decoder.on_event(ev, &mut hub).expect("decodes");
        }
    }
    (hub, decoder.usage())
}

/// Hub events -> an Anthropic client stream (what the relay does).
fn encode(hub: &[HubEvent], usage: Option<Usage>, id: &str) -> Vec<u8> {
    let mut enc = AnthropicEncoder::new("claude-opus-4-6", id.to_string());
    let mut out = Vec::new();
    for ev in hub {
        match ev {
            HubEvent::Chunk { chunk, raw } => enc.chunk(chunk, raw.as_deref(), &mut out),
            HubEvent::KeepAlive => enc.keep_alive(&mut out),
            HubEvent::Done => enc.done(usage, &mut out),
            HubEvent::Error(e) => enc.error(e, &mut out),
        }
    }
    out
}

fn chunks(hub: &[HubEvent]) -> Vec<&Value> {
    hub.iter()
        .filter_map(|e| match e {
            HubEvent::Chunk { chunk, .. } => Some(chunk),
            _ => None,
        })
        .collect()
}

#[test]
fn tool_use_stream_becomes_an_openai_chunk_sequence() {
    let (hub, usage) = decode(&[STREAM_TOOL_USE.as_bytes()]);
    assert_eq!(hub.last(), Some(&HubEvent::Done));
    assert_eq!(hub.iter().filter(|e| **e == HubEvent::KeepAlive).count(), 1);
    let cs = chunks(&hub);
    for c in &cs {
        assert_eq!(c["id"], "chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U");
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["created"], 1_760_000_000u64);
        assert_eq!(c["model"], "claude-opus-4-6");
    }
    // The first delta carries the role.
    assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Okay, let's check the weather for San Francisco, CA:");
    let calls: Vec<&Value> = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(
        calls.iter().all(|c| c["index"] == 0),
        "one call keeps index 0 across deltas"
    );
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        json_of(&args),
        json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
    );
    let finishes: Vec<&Value> = cs
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| &c["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [&json!("tool_calls")]);
    // With include_usage, OpenAI's last chunk has empty choices and the usage.
    let last = cs.last().expect("chunks");
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561,
        "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert_eq!(
        usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((472, 89))
    );
}

/// Accumulates an Anthropic stream the way the SDKs do: (id, content, stop_reason,
/// stop_sequence, output_tokens, event names without pings and empty input_json_deltas).
fn accumulate(stream: &[u8]) -> (Value, Vec<Value>, Value, Value, Value, Vec<String>) {
    let mut parser = SseParser::new(1 << 16);
    let mut events = Vec::new();
    parser.feed(stream, &mut events).expect("parses");
    let (mut id, mut content, mut stop, mut seq, mut out_tokens) = (
        Value::Null,
        Vec::new(),
        Value::Null,
        Value::Null,
        Value::Null,
    );
    let mut partial: Vec<String> = Vec::new();
    let mut names = Vec::new();
    for ev in events {
        let d = json_of(&ev.data);
        let name = ev.event.expect("named");
        assert_eq!(d["type"], name.as_str());
        let i = d["index"].as_u64().unwrap_or(0) as usize;
        match name.as_str() {
            "message_start" => id = d["message"]["id"].clone(),
            "content_block_start" => {
                assert_eq!(i, content.len(), "blocks start in order");
                content.push(d["content_block"].clone());
                partial.push(String::new());
            }
            "content_block_delta" => match d["delta"]["type"].as_str() {
                Some("text_delta") => {
                    let t = format!(
                        "{}{}",
                        content[i]["text"].as_str().expect("text"),
                        d["delta"]["text"].as_str().expect("text")
                    );
                    content[i]["text"] = json!(t);
                }
                Some("input_json_delta") => {
                    partial[i].push_str(d["delta"]["partial_json"].as_str().expect("json"))
                }
                other => panic!("delta {other:?}"),
            },
            "content_block_stop" if content[i]["type"] == "tool_use" && !partial[i].is_empty() => {
                content[i]["input"] = json_of(&partial[i]);
            }
            "message_delta" => {
                stop = d["delta"]["stop_reason"].clone();
                seq = d["delta"]["stop_sequence"].clone();
                out_tokens = d["usage"]["output_tokens"].clone();
            }
            _ => {}
        }
        // Pings may fall anywhere; an empty partial_json carries nothing.
        let empty_delta = d["delta"]["partial_json"] == "";
        if name != "ping" && !empty_delta {
            names.push(name);
        }
    }
    (id, content, stop, seq, out_tokens, names)
}

#[test]
fn anthropic_streams_survive_the_hub() {
    for stream in [STREAM_TOOL_USE, STREAM_TEXT, STREAM_MULTIBYTE] {
        let (hub, usage) = decode(&[stream.as_bytes()]);
        let first = chunks(&hub)[0]["id"].as_str().expect("id").to_string();
        let out = encode(&hub, usage, &message_id(&first));
        let original = accumulate(stream.as_bytes());
        let again = accumulate(&out);
        assert_eq!(again.0, original.0, "id");
        assert_eq!(again.1, original.1, "content");
        assert_eq!(
            (&again.2, &again.3, &again.4),
            (&original.2, &original.3, &original.4)
        );
        assert_eq!(again.5, original.5, "event sequence");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.matches("event: ping\n").count(), 1);
    }
    let (_, usage) = decode(&[STREAM_MULTIBYTE.as_bytes()]);
    assert_eq!(
        usage,
        Some(Usage {
            input_tokens: 2325,
            output_tokens: 15,
            cached_input_tokens: 2000,
            cache_write_tokens: 300
        })
    );
}

#[test]
fn openai_chunks_become_an_anthropic_stream() {
    let hub: Vec<HubEvent> = include_str!("fixtures/anthropic/openai_chunks.jsonl")
        .lines()
        .map(|l| HubEvent::Chunk {
            chunk: json_of(l),
            raw: Some(l.as_bytes().to_vec()),
        })
        .chain([HubEvent::Done])
        .collect();
    let out = encode(&hub, None, "msg_123");
    let (id, content, stop, seq, _, names) = accumulate(&out);
    assert_eq!(id, "msg_123");
    assert_eq!(content, [json!({"type": "text", "text": "Hello"})]);
    assert_eq!((stop, seq), (json!("end_turn"), Value::Null));
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
}

#[test]
fn stream_errors_reach_the_client_as_error_events() {
    let (hub, _) = decode(&[STREAM_ERROR.as_bytes()]);
    let err = match hub.last() {
        Some(HubEvent::Error(e)) => e.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(err.kind, ErrorKind::UpstreamError);
    assert!(err.kind.retryable());
    let out = String::from_utf8(encode(&hub, None, "msg_1")).expect("utf8");
    let last = out.trim_end().rsplit("\n\n").next().expect("event");
    let data = last
        .strip_prefix("event: error\ndata: ")
        .expect("error event");
    let body = json_of(data);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "api_error");
    assert_eq!(body["error"]["code"], "upstream_error");
}

#[test]
fn upstream_error_bodies_map_to_kinds() {
    let not_found = include_bytes!("fixtures/anthropic/error_not_found.json");
    assert_eq!(
        parse_error(not_found).map(|e| e.0),
        Some("not_found_error".to_string())
    );
    let body =
        |ty: &str| json!({"type": "error", "error": {"type": ty, "message": "x"}}).to_string();
    for (status, ty, kind) in [
        (400, "invalid_request_error", ErrorKind::InvalidRequest),
        (401, "authentication_error", ErrorKind::UpstreamAuth),
        (429, "rate_limit_error", ErrorKind::UpstreamRateLimited),
        (529, "overloaded_error", ErrorKind::UpstreamError),
    ] {
        assert_eq!(
            upstream_error(status, body(ty).as_bytes()).kind,
            kind,
            "{status}"
        );
    }
    let err = GatewayError::new(ErrorKind::RateLimited, "slow down");
    let v = json_of(std::str::from_utf8(&error_body(&err)).expect("utf8"));
    assert_eq!(
        (v["error"]["type"].as_str(), v["error"]["code"].as_str()),
        (Some("rate_limit_error"), Some("rate_limit_exceeded"))
    );
}

fn split_at(stream: &[u8], cuts: Vec<usize>) -> Vec<&[u8]> {
    let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut last = 0;
    for c in cuts {
        pieces.push(&stream[last..c]);
        last = c;
    }
    pieces.push(&stream[last..]);
    pieces
}

proptest! {
    #[test]
    fn any_split_gives_the_same_client_bytes(
        cuts in proptest::collection::vec(0usize..100_000, 0..12),
        which in 0usize..2,
    ) {
        let stream = [STREAM_TOOL_USE, STREAM_MULTIBYTE][which].as_bytes();
        let (whole, whole_usage) = decode(&[stream]);
        let expected = encode(&whole, whole_usage, "msg_x");
        let (hub, usage) = decode(&split_at(stream, cuts));
        prop_assert_eq!(encode(&hub, usage, "msg_x"), expected);
    }
}
