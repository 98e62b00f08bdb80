//! An Anthropic upstream: hub request -> Anthropic Messages request, and the Anthropic
//! `message` -> hub `chat.completion` (the stream side is [`AnthropicDecoder`]).
//!
//! Decisions where the two APIs differ:
//! - `system`/`developer` messages before the first user/assistant message become `system`; one
//!   later in the conversation is refused (400): Anthropic takes system instructions only up
//!   front, and moving one would change what it means.
//! - Consecutive messages of the same role are merged (Anthropic requires alternating roles);
//!   `tool` messages become `tool_result` blocks of a user message.
//! - `temperature` above 1, `n` > 1, `response_format` json modes, `logprobs`, `seed`,
//!   penalties, `logit_bias`, audio and other OpenAI-only fields are refused (400
//!   `unsupported_parameter`); their default values are accepted. `stream_options` is the
//!   gateway's concern and ignored (Anthropic streams always report usage).

use serde_json::{json, Map, Value};

pub use super::decoder::AnthropicDecoder;
use super::from_hub::{messages_from_hub, tools_from_hub};
use super::{finish_reason, usage_from_anthropic, usage_to_openai, EXT_STOP_SEQUENCE, EXT_TOP_K};
use crate::audit::Usage;
use crate::error::GatewayError;
use crate::json_view::value_bytes;
use crate::providers::{set_field, HubRequest};

/// Whether an OpenAI-only field holds its default (so refusing it would be pointless).
fn is_default(key: &str, v: &Value) -> bool {
    match (key, v) {
        (_, Value::Null) => true,
        ("logprobs" | "store", Value::Bool(false)) => true,
        ("presence_penalty" | "frequency_penalty", n) => n.as_f64() == Some(0.0),
        ("logit_bias" | "metadata", Value::Object(m)) => m.is_empty(),
        ("modalities", Value::Array(a)) => matches!(a.as_slice(), [m] if m == "text"),
        ("response_format", f) => f.get("type").and_then(Value::as_str) == Some("text"),
        _ => false,
    }
}

/// Writes an Anthropic Messages request from a hub request.
pub fn request_from_hub(
    hub: &HubRequest,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Vec<u8>, GatewayError> {
    let mut out = Map::new();
    for (key, v) in hub {
        match key.as_str() {
            "model" | "messages" | "max_tokens" | "max_completion_tokens" | "temperature"
            | "top_p" | "stop" | "stream" | "stream_options" | "user" | "tools" | "tool_choice"
            | "parallel_tool_calls" | EXT_TOP_K => {}
            "n" if v.is_null() || v.as_u64() == Some(1) => {}
            "n" => return Err(GatewayError::unsupported("n", "Anthropic returns one choice: set `n` to 1")),
            "response_format" if !is_default(key, v) => {
                return Err(GatewayError::unsupported(
                    "response_format",
                    "Anthropic has no JSON mode: remove `response_format` (describe the format in the prompt or use a tool)",
                ))
            }
            _ if is_default(key, v) => {}
            _ => {
                return Err(GatewayError::unsupported(
                    key,
                    format!("`{key}` is not supported by Anthropic models: remove it"),
                ))
            }
        }
    }
    out.insert("model".into(), json!(upstream_model));
    let max_tokens = match hub
        .get("max_completion_tokens")
        .or_else(|| hub.get("max_tokens"))
    {
        None | Some(Value::Null) => default_max_tokens,
        Some(v) => v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            GatewayError::invalid_request("max_tokens", "`max_tokens` must be a positive integer")
        })?,
    };
    out.insert("max_tokens".into(), json!(max_tokens));
    let (system, messages) = messages_from_hub(hub.get("messages"))?;
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(t) = hub.get("temperature").filter(|v| !v.is_null()) {
        match t.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => {
                out.insert("temperature".into(), t.clone());
            }
            Some(x) => {
                return Err(GatewayError::unsupported(
                    "temperature",
                    format!("Anthropic models take a temperature from 0 to 1, not {x}"),
                ))
            }
            None => {
                return Err(GatewayError::invalid_request(
                    "temperature",
                    "`temperature` must be a number",
                ))
            }
        }
    }
    if let Some(p) = hub.get("top_p").filter(|v| !v.is_null()) {
        out.insert("top_p".into(), p.clone());
    }
    if let Some(k) = hub.get(EXT_TOP_K) {
        out.insert("top_k".into(), k.clone());
    }
    match hub.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "stop",
                "`stop` must be a string or an array of strings",
            ))
        }
    }
    out.insert(
        "stream".into(),
        json!(hub.get("stream") == Some(&json!(true))),
    );
    match hub.get("user") {
        None | Some(Value::Null) => {}
        Some(Value::String(u)) => {
            out.insert("metadata".into(), json!({ "user_id": u }));
        }
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "user",
                "`user` must be a string",
            ))
        }
    }
    tools_from_hub(hub, &mut out)?;
    Ok(value_bytes(&Value::Object(out)))
}

/// An Anthropic `message` -> a hub `chat.completion` and the usage (with cache tokens).
/// `created_s` is the current time in Unix seconds (Anthropic does not send one).
pub fn response_to_hub(
    body: &[u8],
    created_s: u64,
) -> Result<(Value, Option<Usage>), GatewayError> {
    let msg: Value = serde_json::from_slice(body)
        .map_err(|_| GatewayError::bad_upstream("the Anthropic response is not JSON"))?;
    if msg.get("type").and_then(Value::as_str) != Some("message") {
        return Err(GatewayError::bad_upstream(
            "the Anthropic response is not a `message`",
        ));
    }
    let blocks = msg
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            GatewayError::bad_upstream("the Anthropic message has no `content` array")
        })?;
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = b.get("text").and_then(Value::as_str).unwrap_or("");
                text.get_or_insert_with(String::new).push_str(t);
            }
            Some("tool_use") => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": b.get("id").and_then(Value::as_str).unwrap_or(""),
                    "type": "function",
                    "function": {
                        "name": b.get("name").and_then(Value::as_str).unwrap_or(""),
                        "arguments": input.to_string(),
                    },
                }));
            }
            other => {
                return Err(GatewayError::bad_upstream(format!(
                    "the Anthropic message holds a `{}` block ASC cannot pass on",
                    other.unwrap_or("untyped")
                )))
            }
        }
    }
    let content = match (text, calls.is_empty()) {
        (Some(t), _) => json!(t),
        (None, false) => Value::Null,
        (None, true) => json!(""),
    };
    let mut message = json!({ "role": "assistant", "content": content });
    if !calls.is_empty() {
        set_field(&mut message, "tool_calls", Value::Array(calls));
    }
    let stop = msg
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let mut choice = json!({
        "index": 0,
        "message": message,
        "logprobs": null,
        "finish_reason": finish_reason(stop),
    });
    if let Some(seq) = msg.get("stop_sequence").and_then(Value::as_str) {
        set_field(&mut choice, EXT_STOP_SEQUENCE, json!(seq));
    }
    let usage = msg.get("usage").map(usage_from_anthropic);
    let mut hub = json!({
        "id": format!("chatcmpl-{}", msg.get("id").and_then(Value::as_str).unwrap_or("")),
        "object": "chat.completion",
        "created": created_s,
        "model": msg.get("model").and_then(Value::as_str).unwrap_or(""),
        "choices": [choice],
    });
    if let Some(u) = &usage {
        set_field(&mut hub, "usage", usage_to_openai(u));
    }
    Ok((hub, usage))
}

/// An Anthropic error body (`{"type":"error","error":{"type","message"}}`) -> (type, message).
pub fn parse_error(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let ty = e.get("type")?.as_str()?.to_string();
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Some((ty, message))
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
