//! An Anthropic client calling ASC: its Messages request -> hub request, and the hub response
//! -> an Anthropic `message` (the stream side is [`AnthropicEncoder`]).
//!
//! Decisions where the two APIs differ:
//! - `tool_result` blocks become `tool` messages placed before the user message holding the rest
//!   of the blocks (Anthropic requires tool results to come first in their user message).
//! - A tool result's content stays a string, or becomes text parts (block by block);
//!   `is_error: true` is carried as [`EXT_IS_ERROR`] on the tool message.
//! - `top_k` and `cache_control` are carried under `x_anthropic_` keys; fields ASC cannot carry
//!   (`thinking`, server tools, documents, ...) and unknown fields are refused with a 400 naming
//!   the field.

use serde_json::{json, Map, Value};

pub use super::encoder::AnthropicEncoder;
use super::to_hub::{message_to_hub, system_to_hub, tool_choice_to_hub, tools_to_hub};
use super::{anthropic_error_type, stop_reason, usage_to_anthropic, EXT_STOP_SEQUENCE, EXT_TOP_K};
use crate::audit::Usage;
use crate::error::{ErrorKind, GatewayError};
use crate::json_view::value_bytes;
use crate::providers::HubRequest;

/// An Anthropic request read into the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRequest {
    pub hub: HubRequest,
    /// The model the client asked for.
    pub model: String,
    pub stream: bool,
}

/// Top-level Messages fields ASC knows it cannot carry, with what to do instead.
const REFUSED: &[(&str, &str)] = &[
    (
        "thinking",
        "extended thinking is not supported by ASC; remove `thinking`",
    ),
    (
        "container",
        "containers are not supported by ASC; remove `container`",
    ),
    (
        "mcp_servers",
        "the MCP connector is not supported by ASC; remove `mcp_servers`",
    ),
    (
        "service_tier",
        "`service_tier` is not supported by ASC; remove it",
    ),
    (
        "context_management",
        "context management is not supported by ASC; remove it",
    ),
    (
        "output_format",
        "structured outputs are not supported by ASC; remove `output_format`",
    ),
    (
        "output_config",
        "`output_config` is not supported by ASC; remove it",
    ),
    (
        "inference_geo",
        "ASC decides where requests run; remove `inference_geo`",
    ),
];

/// Reads an Anthropic Messages request body into a hub request.
pub fn request_to_hub(body: &[u8]) -> Result<InboundRequest, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidJson,
            format!("request body is not JSON: {e}"),
        )
    })?;
    let Value::Object(req) = v else {
        return Err(GatewayError::invalid_request(
            "",
            "the request body must be a JSON object",
        ));
    };
    for key in req.keys() {
        if let Some((_, why)) = REFUSED.iter().find(|(k, _)| k == key) {
            return Err(GatewayError::unsupported(key, *why));
        }
        const KNOWN: &[&str] = &[
            "model",
            "max_tokens",
            "messages",
            "system",
            "temperature",
            "top_p",
            "top_k",
            "stop_sequences",
            "stream",
            "metadata",
            "tools",
            "tool_choice",
        ];
        if !KNOWN.contains(&key.as_str()) {
            return Err(GatewayError::unsupported(
                key,
                format!("unknown parameter `{key}`: remove it"),
            ));
        }
    }
    let model = match req.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "model",
                "`model` must be a non-empty string",
            ))
        }
        None => return Err(GatewayError::missing("model")),
    };
    let max_tokens = match req.get("max_tokens") {
        None => return Err(GatewayError::missing("max_tokens")),
        Some(v) => v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            GatewayError::invalid_request("max_tokens", "`max_tokens` must be a positive integer")
        })?,
    };
    let stream = match req.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "stream",
                "`stream` must be a boolean",
            ))
        }
    };

    let mut hub = Map::new();
    hub.insert("model".into(), json!(model));
    hub.insert("max_tokens".into(), json!(max_tokens));
    if stream {
        hub.insert("stream".into(), json!(true));
    }
    let mut messages = Vec::new();
    if let Some(system) = req.get("system") {
        messages.push(json!({ "role": "system", "content": system_to_hub(system)? }));
    }
    match req.get("messages") {
        Some(Value::Array(ms)) if !ms.is_empty() => {
            for (i, m) in ms.iter().enumerate() {
                message_to_hub(m, i, &mut messages)?;
            }
        }
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "messages",
                "`messages` must be a non-empty array",
            ))
        }
        None => return Err(GatewayError::missing("messages")),
    }
    hub.insert("messages".into(), Value::Array(messages));
    for key in ["temperature", "top_p"] {
        if let Some(v) = req.get(key) {
            match v.as_f64() {
                Some(x) if (0.0..=1.0).contains(&x) => {
                    hub.insert(key.into(), v.clone());
                }
                _ => {
                    return Err(GatewayError::invalid_request(
                        key,
                        format!("`{key}` must be a number from 0 to 1"),
                    ))
                }
            }
        }
    }
    if let Some(v) = req.get("top_k") {
        v.as_u64().ok_or_else(|| {
            GatewayError::invalid_request("top_k", "`top_k` must be a non-negative integer")
        })?;
        hub.insert(EXT_TOP_K.into(), v.clone());
    }
    if let Some(v) = req.get("stop_sequences") {
        let ok = v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err(GatewayError::invalid_request(
                "stop_sequences",
                "`stop_sequences` must be an array of strings",
            ));
        }
        hub.insert("stop".into(), v.clone());
    }
    if let Some(meta) = req.get("metadata") {
        let Value::Object(meta) = meta else {
            return Err(GatewayError::invalid_request(
                "metadata",
                "`metadata` must be an object",
            ));
        };
        for (k, v) in meta {
            match (k.as_str(), v) {
                ("user_id", Value::String(u)) => {
                    hub.insert("user".into(), json!(u));
                }
                ("user_id", Value::Null) => {}
                ("user_id", _) => {
                    return Err(GatewayError::invalid_request(
                        "metadata.user_id",
                        "must be a string",
                    ))
                }
                _ => {
                    return Err(GatewayError::unsupported(
                        format!("metadata.{k}"),
                        format!("unknown metadata field `{k}`: only `user_id` is accepted"),
                    ))
                }
            }
        }
    }
    if let Some(tools) = req.get("tools") {
        hub.insert("tools".into(), tools_to_hub(tools)?);
    }
    if let Some(choice) = req.get("tool_choice") {
        tool_choice_to_hub(choice, &mut hub)?;
    }
    Ok(InboundRequest { hub, model, stream })
}

/// `chatcmpl-X` -> `msg_X`.
pub fn message_id(hub_id: &str) -> String {
    let rest = hub_id.strip_prefix("chatcmpl-").unwrap_or(hub_id);
    if rest.starts_with("msg_") {
        rest.to_string()
    } else {
        format!("msg_{rest}")
    }
}

/// A tool call's `arguments` string -> Anthropic `input`. Empty arguments are `{}`; anything
/// that is not a JSON object is an upstream fault (an Anthropic client cannot receive it).
pub(crate) fn tool_input(arguments: &str, name: &str) -> Result<Value, GatewayError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(GatewayError::bad_upstream(format!(
            "the upstream's arguments for tool call `{name}` are not a JSON object"
        ))),
    }
}

/// A hub `chat.completion` -> an Anthropic `message` body. `usage` (when the upstream reported
/// it, with cache writes) wins over the hub's `usage`; `model` is the name the client asked for.
pub fn response_from_hub(
    hub: &Value,
    usage: Option<Usage>,
    model: &str,
) -> Result<Vec<u8>, GatewayError> {
    let choice = hub
        .pointer("/choices/0")
        .ok_or_else(|| GatewayError::bad_upstream("the completion has no choices"))?;
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    let text = match msg.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    if !text.is_empty() {
        content.push(json!({ "type": "text", "text": text }));
    }
    // OpenAI's `refusal` (structured outputs) is the model's answer: Anthropic's `refusal`.
    let refusal = msg
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty());
    if let Some(r) = refusal {
        content.push(json!({ "type": "text", "text": r }));
    }
    for call in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let args = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).unwrap_or(""),
            "name": name,
            "input": tool_input(args, name)?,
        }));
    }
    let stop_sequence = choice.get(EXT_STOP_SEQUENCE).and_then(Value::as_str);
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    let finish = if refusal.is_some() && finish == "stop" {
        "content_filter"
    } else {
        finish
    };
    let usage = usage
        .or_else(|| hub.get("usage").and_then(Usage::from_openai))
        .unwrap_or_default();
    let body = json!({
        "id": message_id(hub.get("id").and_then(Value::as_str).unwrap_or("")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish, stop_sequence.is_some()),
        "stop_sequence": stop_sequence,
        "usage": usage_to_anthropic(&usage),
    });
    Ok(value_bytes(&body))
}

/// Anthropic's error body, with ASC's stable `code` and the `param` alongside:
/// `{"type":"error","error":{"type","message","code","param"}}`.
pub fn error_body(err: &GatewayError) -> Vec<u8> {
    value_bytes(&error_value(err))
}

pub(crate) fn error_value(err: &GatewayError) -> Value {
    json!({
        "type": "error",
        "error": {
            "type": anthropic_error_type(err.status()),
            "message": err.message,
            "code": err.code(),
            "param": err.param,
        }
    })
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
