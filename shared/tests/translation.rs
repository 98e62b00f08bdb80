//! Streaming translation through the whole pipeline, every provider into every dialect: a stream
//! split at arbitrary byte positions (inside events, inside UTF-8 characters) gives the client
//! exactly the bytes the unsplit stream gives, and each translated stream is well formed for its
//! dialect (role first, one index per tool call, usage as asked, a clean end).

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path),
    )
    .expect("fixture")
}

/// An OpenAI stream with parallel tool calls and multibyte text, as the chat streaming reference
/// shapes chunks (first delta carries role; each call its own index; usage last).
fn openai_stream() -> Vec<u8> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",
               "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
    };
    let mut out = Vec::new();
    for c in [
        chunk(
            json!({"role":"assistant","content":"Größe ✓ "}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Köln\"}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],
               "usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}),
    ] {
        out.extend(format!("data: {c}\n\n").into_bytes());
    }
    out.extend(b"data: [DONE]\n\n");
    out
}

struct Case {
    provider: &'static str,
    stream: Vec<u8>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            provider: "openai",
            stream: openai_stream(),
        },
        Case {
            provider: "anthropic",
            stream: fixture("anthropic/stream_tool_use.sse"),
        },
        Case {
            provider: "anthropic",
            stream: fixture("anthropic/stream_text_multibyte.sse"),
        },
        Case {
            provider: "mistral",
            stream: fixture("mistral/stream-multibyte.sse"),
        },
        Case {
            provider: "mistral",
            stream: fixture("mistral/stream-tool-call.sse"),
        },
    ]
}

fn tenant(provider: &str) -> Value {
    json!({
        "schema_version": 1, "tenant_id": "demo", "residency": "local",
        "models": {"m": {"provider": provider, "endpoint": "http://127.0.0.1:9100/v1", "credential": "OPENAI_API_KEY"}}
    })
}

/// The client's bytes for `pieces` of the upstream stream, in `dialect` ("openai", "openai+usage",
/// "anthropic").
fn translate(provider: &str, dialect: &str, pieces: Vec<Vec<u8>>) -> Vec<u8> {
    let host = FakeHost::new();
    host.put_tenant(&tenant(provider));
    let key = host.mint_key("demo", 1, &all_scopes());
    host.script(sse(pieces.into_iter().map(Ok).collect()));
    let auth = format!("Bearer {key}");
    let req = match dialect {
        "anthropic" => request(
            "POST",
            "/v1/messages",
            &[("x-api-key", key.as_str()), ("anthropic-version", "2023-06-01")],
            json!({"model": "m", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "Hi"}]})
                .to_string()
                .as_bytes(),
        ),
        other => {
            let mut body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
            if other == "openai+usage" {
                body["stream_options"] = json!({"include_usage": true});
            }
            request("POST", "/v1/chat/completions", &[("authorization", auth.as_str())], body.to_string().as_bytes())
        }
    };
    let (status, _, out) = run(&local_gateway(), &host, req);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    out
}

fn split(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut last = 0;
    for p in points {
        pieces.push(stream[last..p].to_vec());
        last = p;
    }
    pieces.push(stream[last..].to_vec());
    pieces
}

fn data_events(out: &[u8]) -> Vec<(Option<String>, String)> {
    let text = String::from_utf8(out.to_vec()).expect("utf8");
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
        .map(|e| {
            let mut name = None;
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, data)
        })
        .collect()
}

#[test]
fn every_translation_is_well_formed_for_its_dialect() {
    for case in cases() {
        for dialect in ["openai", "openai+usage", "anthropic"] {
            let out = translate(case.provider, dialect, vec![case.stream.clone()]);
            let events = data_events(&out);
            let what = format!("{} -> {dialect}", case.provider);
            if dialect == "anthropic" {
                let names: Vec<&str> = events.iter().filter_map(|(n, _)| n.as_deref()).collect();
                assert_eq!(names.first(), Some(&"message_start"), "{what}");
                assert_eq!(names.last(), Some(&"message_stop"), "{what}");
                let stop: Value = serde_json::from_str(
                    &events
                        .iter()
                        .find(|(n, _)| n.as_deref() == Some("message_delta"))
                        .expect("message_delta")
                        .1,
                )
                .expect("json");
                assert!(stop["delta"]["stop_reason"].is_string(), "{what}");
                assert!(
                    stop["usage"]["output_tokens"]
                        .as_u64()
                        .is_some_and(|n| n > 0),
                    "{what}"
                );
                continue;
            }
            assert_eq!(
                events.last().map(|(_, d)| d.as_str()),
                Some("[DONE]"),
                "{what}"
            );
            let chunks: Vec<Value> = events[..events.len() - 1]
                .iter()
                .map(|(_, d)| serde_json::from_str(d).expect("chunk json"))
                .collect();
            assert_eq!(
                chunks[0]["choices"][0]["delta"]["role"], "assistant",
                "{what}: role first"
            );
            let usage_chunks = chunks
                .iter()
                .filter(|c| c["choices"].as_array().is_some_and(|a| a.is_empty()))
                .count();
            assert_eq!(
                usage_chunks,
                usize::from(dialect == "openai+usage"),
                "{what}: usage as asked"
            );
            // Every tool call keeps one index, and each index one id.
            let mut ids = std::collections::BTreeMap::new();
            for c in &chunks {
                for call in c["choices"][0]["delta"]["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let index = call["index"]
                        .as_u64()
                        .expect("index on every tool-call delta");
                    if let Some(id) = call["id"].as_str() {
                        assert!(
                            ids.insert(index, id.to_string()).is_none(),
                            "{what}: index {index} reused"
                        );
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_split_translates_to_the_same_client_bytes(
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        which in 0usize..5,
        dialect in prop::sample::select(vec!["openai", "openai+usage", "anthropic"]),
    ) {
        let case = &cases()[which];
        let whole = translate(case.provider, dialect, vec![case.stream.clone()]);
        let pieces = split(&case.stream, &cuts);
        prop_assert_eq!(translate(case.provider, dialect, pieces), whole);
    }
}
