//! Edges of Anthropic streams through the gateway: a tool without parameters, a stream cut
//! short after `message_start`'s provisional usage, and response guardrails around tool_use
//! blocks (Anthropic's event protocol: each block is started, gets deltas, and is stopped).

mod common;

use asc_core::providers::anthropic::outbound::{response_to_hub, AnthropicDecoder};
use asc_core::providers::stream::{HubEvent, UpstreamDecoder};
use asc_core::sse::SseParser;
use common::*;
use serde_json::{json, Value};

fn anthropic_tenant() -> Value {
    json!({
        "schema_version": 1, "tenant_id": "demo", "residency": "local",
        "models": {"claude": {"provider": "anthropic", "endpoint": "http://127.0.0.1:9100/v1",
                              "upstream_model": "claude-haiku-4-5", "credential": "OPENAI_API_KEY"}}
    })
}

fn ev(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// What an OpenAI client accumulates as tool call 0's arguments from an Anthropic stream.
fn tool_call_arguments(stream: &str) -> String {
    let mut parser = SseParser::new(1 << 16);
    let mut events = Vec::new();
    parser.feed(stream.as_bytes(), &mut events).expect("parses");
    let mut dec = AnthropicDecoder::new(1);
    let mut hub = Vec::new();
    for e in &events {
        dec.on_event(e, &mut hub).expect("decodes");
    }
    hub.iter()
        .filter_map(|e| match e {
            HubEvent::Chunk { chunk, .. } => chunk["choices"][0]["delta"]["tool_calls"][0]
                ["function"]["arguments"]
                .as_str()
                .map(str::to_string),
            _ => None,
        })
        .collect()
}

// A tool without parameters reaches an OpenAI client with arguments that parse as JSON ("{}",
// as the whole reply maps it), never "".
#[test]
fn anthropic_zero_argument_tool_call_streams_arguments_that_are_json() {
    // Anthropic streams a tool without parameters as `input: {}` in content_block_start and an
    // empty `partial_json` (the non-streamed message says `"input": {}`).
    let stream = [
        ev("message_start", json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":360,"output_tokens":5}}})),
        ev("content_block_start", json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_random_number","input":{}}})),
        ev("content_block_delta", json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}})),
        ev("content_block_stop", json!({"type":"content_block_stop","index":0})),
        ev("message_delta", json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":30}})),
        ev("message_stop", json!({"type":"message_stop"})),
    ]
    .concat();
    let args = tool_call_arguments(&stream);
    // The same message, not streamed, gives "{}".
    let whole = json!({"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5",
        "content":[{"type":"tool_use","id":"toolu_01","name":"get_random_number","input":{}}],
        "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":360,"output_tokens":30}});
    let (hub_whole, _) = response_to_hub(whole.to_string().as_bytes(), 1).expect("maps");
    let whole_args =
        hub_whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].clone();
    assert_eq!(whole_args, json!("{}"));
    assert_eq!(
        json!(args),
        whole_args,
        "streamed as the whole reply maps it"
    );
}

// A compatible upstream that sends a tool's input whole in content_block_start (Anthropic itself
// always streams it as input_json_delta) has it passed on, not replaced by "{}".
#[test]
fn a_tool_input_sent_whole_at_the_block_start_is_passed_on() {
    let stream = [
        ev("message_start", json!({"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}})),
        ev("content_block_start", json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_weather","input":{"location":"Paris"}}})),
        ev("content_block_stop", json!({"type":"content_block_stop","index":0})),
        ev("message_delta", json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":12}})),
        ev("message_stop", json!({"type":"message_stop"})),
    ]
    .concat();
    let args = tool_call_arguments(&stream);
    assert_eq!(
        serde_json::from_str::<Value>(&args).expect("JSON"),
        json!({"location": "Paris"})
    );
}

// A stream cut after its text is charged for the text relayed, not for the provisional usage
// `message_start` reported (1 output token).
#[test]
fn a_cut_anthropic_stream_is_charged_for_what_was_streamed() {
    let host = FakeHost::new();
    let mut tenant = anthropic_tenant();
    tenant["budgets"] = json!([{"id": "monthly", "applies_to": "tenant",
        "limit_usd_micros": 1_000_000, "period": "monthly"}]);
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    let text = "x".repeat(4000);
    host.script(sse(vec![
        Ok(ev("message_start", json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}})).into_bytes()),
        Ok(ev("content_block_start", json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})).into_bytes()),
        Ok(ev("content_block_delta", json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}})).into_bytes()),
        // The connection drops here: no message_delta, no message_stop.
    ]));
    let body = json!({"model": "claude", "stream": true, "max_tokens": 2000,
        "messages": [{"role": "user", "content": "Hi"}]});
    let (status, _, out) = run(&gw, &host, chat(&key, &body));
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&out).contains(&text),
        "the text was delivered"
    );
    let auth = format!("Bearer {key}");
    let (_, _, report) = run(
        &gw,
        &host,
        request("GET", "/v1/usage", &[("authorization", &auth)], b""),
    );
    let report: Value = serde_json::from_slice(&report).expect("json");
    let spent = report["budgets"][0]["spent_micros"].as_u64().expect("u64");
    // 4000 bytes of output ~ 1000 tokens at $5/Mtok = 5000 micro-USD (the OpenAI path charges
    // what it counted: tests/budgets.rs a_cut_stream_without_usage_is_charged_...).
    assert!(
        spent >= 5000,
        "charged {spent} micro-USD for ~1000 streamed output tokens"
    );
}

// With response guardrails on, text held back for scanning goes out before the tool call that
// follows it: an Anthropic client gets [text, tool_use] (not a second text block after the
// tool_use) and no delta for a block already stopped.
fn block_types(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["type"] == "content_block_start")
        .map(|v| {
            v["content_block"]["type"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn anthropic_client_stream(guarded: bool) -> Vec<u8> {
    let host = FakeHost::new();
    let mut tenant = anthropic_tenant();
    if guarded {
        tenant["guardrails"] = json!({"detectors": {"email": {"mode": "redact"}},
                                      "apply_to": {"requests": false, "responses": true}});
    }
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let fixture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/anthropic/stream_tool_use.sse"),
    )
    .expect("fixture");
    host.script(sse(vec![Ok(fixture)]));
    let req = request(
        "POST",
        "/v1/messages",
        &[
            ("x-api-key", key.as_str()),
            ("anthropic-version", "2023-06-01"),
        ],
        json!({"model": "claude", "max_tokens": 100, "stream": true,
               "messages": [{"role": "user", "content": "Weather in SF?"}]})
        .to_string()
        .as_bytes(),
    );
    let (status, _, out) = run(&local_gateway(), &host, req);
    assert_eq!(status, 200);
    out
}

#[test]
fn response_guardrails_do_not_move_text_after_a_tool_call() {
    assert_eq!(
        block_types(&anthropic_client_stream(false)),
        ["text", "tool_use"]
    );
    let out = anthropic_client_stream(true);
    assert_eq!(
        block_types(&out),
        ["text", "tool_use"],
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn response_guardrails_never_send_a_delta_to_a_stopped_block() {
    let out = anthropic_client_stream(true);
    let mut stopped = Vec::new();
    for d in String::from_utf8_lossy(&out)
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
    {
        match d["type"].as_str() {
            Some("content_block_stop") => stopped.push(d["index"].clone()),
            Some("content_block_delta") => assert!(
                !stopped.contains(&d["index"]),
                "delta {d} after its block was stopped"
            ),
            _ => {}
        }
    }
}
