//! Provider mappers and streaming translation, natively:
//! `cargo bench -p asc-core --bench translate -- --warm-up-time 1 --measurement-time 5`.
//!
//! - `stream/<provider>-><dialect>`: a 2,000-event upstream stream (text deltas, then two tool
//!   calls with argument deltas) through the SSE parser, the provider's decoder and the client's
//!   encoder. Reported per event, so the time is the per-chunk latency and the rate the
//!   throughput; the `bytes` group gives MiB/s of upstream stream.
//! - `request/...` and `response/...`: one typical tool-using request or reply through a mapper.

use asc_core::providers::anthropic::inbound::{self, AnthropicEncoder};
use asc_core::providers::anthropic::outbound::{self, AnthropicDecoder};
use asc_core::providers::mistral::{self, MistralDecoder};
use asc_core::providers::openai::{self, OpenAiDecoder, OpenAiEncoder};
use asc_core::providers::stream::{ClientEncoder, HubEvent, UpstreamDecoder};
use asc_core::sse::SseParser;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

const TEXT_EVENTS: usize = 1_980;

fn openai_stream() -> Vec<u8> {
    let mut out = Vec::new();
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",
               "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
    };
    out.extend(
        format!(
            "data: {}\n\n",
            chunk(json!({"role":"assistant","content":""}), json!(null))
        )
        .bytes(),
    );
    for i in 0..TEXT_EVENTS {
        out.extend(
            format!(
                "data: {}\n\n",
                chunk(json!({"content": format!("word{i} ")}), json!(null))
            )
            .bytes(),
        );
    }
    for call in 0..2 {
        out.extend(format!("data: {}\n\n", chunk(json!({"tool_calls":[{"index":call,"id":format!("call_{call}"),"type":"function","function":{"name":"get_weather","arguments":""}}]}), json!(null))).bytes());
        for piece in ["{\"ci", "ty\":", "\"Paris", "\"}"] {
            out.extend(
                format!(
                    "data: {}\n\n",
                    chunk(
                        json!({"tool_calls":[{"index":call,"function":{"arguments":piece}}]}),
                        json!(null)
                    )
                )
                .bytes(),
            );
        }
    }
    out.extend(format!("data: {}\n\n", chunk(json!({}), json!("tool_calls"))).bytes());
    out.extend(b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2000,\"total_tokens\":2010}}\n\ndata: [DONE]\n\n");
    out
}

fn anthropic_stream() -> Vec<u8> {
    let mut out = Vec::new();
    let mut ev = |name: &str, data: serde_json::Value| {
        out.extend(format!("event: {name}\ndata: {data}\n\n").bytes())
    };
    ev(
        "message_start",
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}),
    );
    ev(
        "content_block_start",
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    for i in 0..TEXT_EVENTS {
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":format!("word{i} ")}}),
        );
    }
    ev(
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    );
    for call in 1..3 {
        ev(
            "content_block_start",
            json!({"type":"content_block_start","index":call,"content_block":{"type":"tool_use","id":format!("toolu_{call}"),"name":"get_weather","input":{}}}),
        );
        for piece in ["{\"ci", "ty\":", "\"Paris", "\"}"] {
            ev(
                "content_block_delta",
                json!({"type":"content_block_delta","index":call,"delta":{"type":"input_json_delta","partial_json":piece}}),
            );
        }
        ev(
            "content_block_stop",
            json!({"type":"content_block_stop","index":call}),
        );
    }
    ev(
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":2000}}),
    );
    ev("message_stop", json!({"type":"message_stop"}));
    out
}

fn mistral_stream() -> Vec<u8> {
    let mut out = Vec::new();
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"mistral-small-latest",
               "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
    };
    out.extend(
        format!(
            "data: {}\n\n",
            chunk(json!({"role":"assistant","content":""}), json!(null))
        )
        .bytes(),
    );
    for i in 0..TEXT_EVENTS {
        out.extend(
            format!(
                "data: {}\n\n",
                chunk(json!({"content": format!("word{i} ")}), json!(null))
            )
            .bytes(),
        );
    }
    let mut last = chunk(
        json!({"tool_calls":[{"id":"abcDEF123","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"xyzXYZ789","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]}),
        json!("tool_calls"),
    );
    last["usage"] = json!({"prompt_tokens":10,"completion_tokens":2000,"total_tokens":2010});
    out.extend(format!("data: {last}\n\ndata: [DONE]\n\n").bytes());
    out
}

fn decoder(provider: &str) -> Box<dyn UpstreamDecoder> {
    match provider {
        "openai" => Box::new(OpenAiDecoder::new()),
        "anthropic" => Box::new(AnthropicDecoder::new(1)),
        _ => Box::new(MistralDecoder::new()),
    }
}

fn encoder(dialect: &str) -> Box<dyn ClientEncoder> {
    match dialect {
        "openai" => Box::new(OpenAiEncoder::new(true)),
        _ => Box::new(AnthropicEncoder::new("m", "msg_1".into())),
    }
}

/// Translates a whole stream as the relay does, fed in 1,460-byte reads (one TCP segment each).
fn translate(provider: &str, dialect: &str, stream: &[u8]) -> usize {
    let mut parser = SseParser::new(1 << 22);
    let mut dec = decoder(provider);
    let mut enc = encoder(dialect);
    let (mut events, mut hub, mut out) = (Vec::new(), Vec::new(), Vec::new());
    for piece in stream.chunks(1460) {
        events.clear();
        parser.feed(piece, &mut events).expect("parse");
        for ev in &events {
            hub.clear();
            dec.on_event(ev, &mut hub).expect("decode");
            for h in hub.drain(..) {
                match h {
                    HubEvent::Chunk { chunk, raw } => enc.chunk(&chunk, raw.as_deref(), &mut out),
                    HubEvent::KeepAlive => enc.keep_alive(&mut out),
                    HubEvent::Done => enc.done(dec.usage(), &mut out),
                    HubEvent::Error(e) => enc.error(&e, &mut out),
                }
            }
        }
        out.clear();
    }
    events.len()
}

fn streams(c: &mut Criterion) {
    let inputs = [
        ("openai", openai_stream()),
        ("anthropic", anthropic_stream()),
        ("mistral", mistral_stream()),
    ];
    let mut per_event = c.benchmark_group("stream-per-event");
    for (provider, stream) in &inputs {
        let mut parser = SseParser::new(1 << 22);
        let mut evs = Vec::new();
        parser.feed(stream, &mut evs).expect("parse");
        per_event.throughput(Throughput::Elements(evs.len() as u64));
        for dialect in ["openai", "anthropic"] {
            per_event.bench_function(format!("{provider}->{dialect}"), |b| {
                b.iter(|| translate(provider, dialect, black_box(stream)))
            });
        }
    }
    per_event.finish();
    let mut bytes = c.benchmark_group("stream-bytes");
    for (provider, stream) in &inputs {
        bytes.throughput(Throughput::Bytes(stream.len() as u64));
        for dialect in ["openai", "anthropic"] {
            bytes.bench_function(format!("{provider}->{dialect}"), |b| {
                b.iter(|| translate(provider, dialect, black_box(stream)))
            });
        }
    }
    bytes.finish();
}

fn mappers(c: &mut Criterion) {
    let openai_req = json!({
        "model": "m", "temperature": 0.3, "max_tokens": 500,
        "messages": [
            {"role": "system", "content": "You are a travel assistant."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "Rain, 14C"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    })
    .to_string();
    let hub = openai::parse_chat_request(openai_req.as_bytes())
        .expect("parse")
        .hub;
    let anthropic_req = outbound::request_from_hub(&hub, "claude-haiku-4-5", 4096).expect("map");
    let anthropic_reply = json!({"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5",
        "content":[{"type":"text","text":"Paris is sunny and Rome is rainy today."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Oslo"}}],
        "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":120,"output_tokens":40}}).to_string();
    let mut g = c.benchmark_group("request");
    g.bench_function("openai-parse", |b| {
        b.iter(|| openai::parse_chat_request(black_box(openai_req.as_bytes())))
    });
    g.bench_function("hub->anthropic", |b| {
        b.iter(|| outbound::request_from_hub(black_box(&hub), "claude-haiku-4-5", 4096))
    });
    g.bench_function("hub->mistral", |b| {
        b.iter(|| mistral::request_from_hub(black_box(&hub), "mistral-small-latest"))
    });
    g.bench_function("anthropic->hub", |b| {
        b.iter(|| inbound::request_to_hub(black_box(&anthropic_req)))
    });
    g.finish();
    let mut g = c.benchmark_group("response");
    g.bench_function("anthropic->hub", |b| {
        b.iter(|| outbound::response_to_hub(black_box(anthropic_reply.as_bytes()), 1))
    });
    let (hub_reply, usage) = outbound::response_to_hub(anthropic_reply.as_bytes(), 1).expect("map");
    g.bench_function("hub->anthropic", |b| {
        b.iter(|| inbound::response_from_hub(black_box(&hub_reply), usage, "m"))
    });
    g.finish();
}

criterion_group!(benches, streams, mappers);
criterion_main!(benches);
