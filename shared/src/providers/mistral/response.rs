//! Mistral `chat.completion` -> hub `chat.completion` (OpenAI's shape), and Mistral's error
//! bodies -> (type, message).

use serde_json::{json, Map, Value};

use crate::audit::Usage;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::set_field;

/// The error for a generation Mistral itself ended with `finish_reason: "error"`: OpenAI has no
/// such finish reason, and a client must not mistake a failed generation for a finished one.
pub(super) fn generation_failed() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamError,
        "Mistral ended the generation with an error: try again",
    )
}

/// Reads Mistral's non-streaming response into a hub `chat.completion`.
/// `created_fallback_s` stands in when Mistral leaves `created` out.
pub fn response_to_hub(
    body: &[u8],
    created_fallback_s: u64,
) -> Result<(Value, Option<Usage>), GatewayError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_upstream(format!("Mistral's response is not JSON: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| GatewayError::bad_upstream("Mistral's response is not a JSON object"))?;
    let choices = o
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| GatewayError::bad_upstream("Mistral's response has no `choices`"))?;
    let mut out_choices = Vec::with_capacity(choices.len());
    for (i, c) in choices.iter().enumerate() {
        let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
        let msg = c
            .get("message")
            .and_then(Value::as_object)
            .ok_or_else(|| GatewayError::bad_upstream("a Mistral choice has no `message`"))?;
        let (text, reasoning) = split_content(msg.get("content"))?;
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert("content".into(), text.map_or(Value::Null, Value::String));
        if let Some(r) = reasoning {
            message.insert("reasoning_content".into(), Value::String(r));
        }
        if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
            if !calls.is_empty() {
                let calls = calls.iter().map(tool_call).collect::<Result<Vec<_>, _>>()?;
                message.insert("tool_calls".into(), Value::Array(calls));
            }
        }
        let finish = match c.get("finish_reason").and_then(Value::as_str) {
            Some("error") => return Err(generation_failed()),
            Some(r) => json!(finish_reason(r)),
            None => Value::Null,
        };
        out_choices.push(json!({
            "index": index,
            "message": message,
            "finish_reason": finish,
            "logprobs": null,
        }));
    }
    let usage = o.get("usage").and_then(read_usage);
    let mut hub = json!({
        "id": o.get("id").cloned().unwrap_or_else(|| json!("")),
        "object": "chat.completion",
        "created": o.get("created").and_then(Value::as_u64).unwrap_or(created_fallback_s),
        "model": o.get("model").cloned().unwrap_or_else(|| json!("")),
        "choices": out_choices,
    });
    if let Some(u) = &usage {
        set_field(&mut hub, "usage", hub_usage(u));
    }
    Ok((hub, usage))
}

/// Mistral's finish reasons in OpenAI's words (`model_length`: the model's context ran out, which
/// OpenAI reports as `length`). Reasons neither API documents pass through unchanged.
pub(super) fn finish_reason(r: &str) -> &str {
    match r {
        "model_length" => "length",
        other => other,
    }
}

/// Content as a string, or as chunks: `text` chunks make the content, `thinking` chunks (reasoning
/// models; each holds its own list of text chunks) make `reasoning_content`, the field
/// OpenAI-compatible servers use for reasoning text. Chunk types that carry no text for the hub
/// (e.g. `reference`) are skipped.
pub(super) fn split_content(
    c: Option<&Value>,
) -> Result<(Option<String>, Option<String>), GatewayError> {
    match c {
        None | Some(Value::Null) => Ok((None, None)),
        Some(Value::String(s)) => Ok((Some(s.clone()), None)),
        Some(Value::Array(chunks)) => {
            let mut text: Option<String> = None;
            let mut reasoning: Option<String> = None;
            for ch in chunks {
                match ch.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = ch.get("text").and_then(Value::as_str).ok_or_else(|| {
                            GatewayError::bad_upstream("a Mistral text chunk has no `text`")
                        })?;
                        text.get_or_insert_with(String::new).push_str(t);
                    }
                    Some("thinking") => {
                        let inner =
                            ch.get("thinking")
                                .and_then(Value::as_array)
                                .ok_or_else(|| {
                                    GatewayError::bad_upstream(
                                        "a Mistral thinking chunk has no `thinking` list",
                                    )
                                })?;
                        let r = reasoning.get_or_insert_with(String::new);
                        for t in inner {
                            if let Some(s) = t.get("text").and_then(Value::as_str) {
                                r.push_str(s);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Ok((text, reasoning))
        }
        Some(_) => Err(GatewayError::bad_upstream(
            "Mistral's message content is neither a string nor a list",
        )),
    }
}

/// A whole tool call in OpenAI's shape. Mistral may send `arguments` as a JSON object; OpenAI's
/// is always a string.
fn tool_call(c: &Value) -> Result<Value, GatewayError> {
    let f = c
        .get("function")
        .ok_or_else(|| GatewayError::bad_upstream("a Mistral tool call has no `function`"))?;
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::bad_upstream("a Mistral tool call has no function name"))?;
    Ok(json!({
        "id": c.get("id").and_then(Value::as_str).unwrap_or(""),
        "type": "function",
        "function": {"name": name, "arguments": arguments(f.get("arguments"))},
    }))
}

pub(super) fn arguments(a: Option<&Value>) -> String {
    match a {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Mistral's `usage`: `prompt_tokens`, `completion_tokens` (the reference's fields). Cached prompt
/// tokens are read from `prompt_tokens_details.cached_tokens` or `num_cached_tokens` when present:
/// responses carry them, the reference does not list them.
pub(super) fn read_usage(u: &Value) -> Option<Usage> {
    let input = u.get("prompt_tokens")?.as_u64()?;
    let output = u
        .get("completion_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let cached = u
        .pointer("/prompt_tokens_details/cached_tokens")
        .and_then(Value::as_u64)
        .or_else(|| u.get("num_cached_tokens").and_then(Value::as_u64))
        .unwrap_or(0);
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        cache_write_tokens: 0,
    })
}

/// OpenAI's `usage` object for the hub.
pub(super) fn hub_usage(u: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
    });
    if u.cached_input_tokens > 0 {
        set_field(
            &mut v,
            "prompt_tokens_details",
            json!({"cached_tokens": u.cached_input_tokens}),
        );
    }
    v
}

/// Reads a Mistral error body into (type, message). Shapes seen from Mistral's API:
/// - `{"object":"error","message":"...","type":"...","param":null,"code":null}`;
/// - 422 validation: the same envelope with `message` holding `{"detail":[{loc,msg,type}]}` (or
///   the list itself), or pydantic's bare `{"detail":[...]}` (`HTTPValidationError` in the
///   reference), or `{"detail":"..."}`;
/// - `{"message":"Unauthorized","request_id":"..."}` from the API gateway in front;
/// - OpenAI's `{"error":{"message","type"}}`.
pub fn parse_error(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object()?;
    if let Some(e) = o.get("error").and_then(Value::as_object) {
        let message = e.get("message").and_then(Value::as_str)?;
        let kind = e.get("type").and_then(Value::as_str).unwrap_or("error");
        return Some((kind.to_string(), message.to_string()));
    }
    let kind = o.get("type").and_then(Value::as_str);
    let message = match o.get("message") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(m @ (Value::Object(_) | Value::Array(_))) => detail_text(m.get("detail").unwrap_or(m)),
        _ => None,
    }
    .or_else(|| o.get("detail").and_then(detail_text))?;
    let kind = kind.unwrap_or(
        if o.contains_key("detail") || o.get("message").is_some_and(|m| !m.is_string()) {
            "invalid_request_error"
        } else {
            "error"
        },
    );
    Some((kind.to_string(), message))
}

/// Pydantic's validation list as one line: `body.messages.0.user.name: Extra inputs are not
/// permitted (extra_forbidden); ...`, or a plain string detail.
fn detail_text(d: &Value) -> Option<String> {
    match d {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|it| {
                    let msg = it.get("msg").and_then(Value::as_str)?;
                    let loc = it
                        .get("loc")
                        .and_then(Value::as_array)
                        .map(|l| {
                            l.iter()
                                .map(|p| match p {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                })
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default();
                    let kind = it.get("type").and_then(Value::as_str);
                    Some(match kind {
                        Some(k) => format!("{loc}: {msg} ({k})"),
                        None => format!("{loc}: {msg}"),
                    })
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
