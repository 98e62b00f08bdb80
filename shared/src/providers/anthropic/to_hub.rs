//! Anthropic request content -> hub messages and tools (for [`super::inbound`]).
//! Every block field is either carried (Anthropic-only ones under `x_anthropic_` keys) or
//! refused with a 400 naming it.

use serde_json::{json, Value};

use super::{EXT_CACHE_CONTROL, EXT_IS_ERROR};
use crate::error::GatewayError;
use crate::providers::{set_field, HubRequest};

pub(super) fn system_to_hub(system: &Value) -> Result<Value, GatewayError> {
    match system {
        Value::String(s) => Ok(json!(s)),
        Value::Array(blocks) => {
            let mut parts = Vec::new();
            for (j, b) in blocks.iter().enumerate() {
                let param = format!("system[{j}]");
                if b.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(GatewayError::unsupported(
                        &param,
                        "system blocks must be `text` blocks",
                    ));
                }
                parts.push(text_part(b, &param)?);
            }
            Ok(Value::Array(parts))
        }
        _ => Err(GatewayError::invalid_request(
            "system",
            "`system` must be a string or an array of text blocks",
        )),
    }
}

/// A `text` block -> a hub text part (`cache_control` carried).
fn text_part(block: &Value, param: &str) -> Result<Value, GatewayError> {
    let text = block.get("text").and_then(Value::as_str).ok_or_else(|| {
        GatewayError::invalid_request(
            format!("{param}.text"),
            "a text block needs a string `text`",
        )
    })?;
    let mut part = json!({ "type": "text", "text": text });
    check_keys(
        block,
        &["type", "text", "cache_control", "citations"],
        param,
    )?;
    if block.get("citations").is_some_and(|c| !c.is_null()) {
        return Err(GatewayError::unsupported(
            format!("{param}.citations"),
            "citations are not supported",
        ));
    }
    carry_cache_control(block, &mut part);
    Ok(part)
}

fn carry_cache_control(from: &Value, to: &mut Value) {
    if let (Some(cc), Some(obj)) = (from.get("cache_control"), to.as_object_mut()) {
        if !cc.is_null() {
            obj.insert(EXT_CACHE_CONTROL.into(), cc.clone());
        }
    }
}

/// Refuses keys of `obj` outside `allowed` (never dropped silently).
fn check_keys(obj: &Value, allowed: &[&str], param: &str) -> Result<(), GatewayError> {
    if let Some(map) = obj.as_object() {
        if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(GatewayError::unsupported(
                format!("{param}.{k}"),
                format!("`{k}` is not supported here by ASC: remove it"),
            ));
        }
    }
    Ok(())
}

pub(super) fn message_to_hub(
    m: &Value,
    i: usize,
    out: &mut Vec<Value>,
) -> Result<(), GatewayError> {
    let param = format!("messages[{i}]");
    if !m.is_object() {
        return Err(GatewayError::invalid_request(
            &param,
            "each message must be an object",
        ));
    }
    check_keys(m, &["role", "content"], &param)?;
    let role = match m.get("role").and_then(Value::as_str) {
        Some(r @ ("user" | "assistant")) => r,
        _ => {
            return Err(GatewayError::invalid_request(
                format!("{param}.role"),
                "`role` must be \"user\" or \"assistant\" (use the top-level `system` for system prompts)",
            ))
        }
    };
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({ "role": role, "content": s }));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(GatewayError::invalid_request(
                format!("{param}.content"),
                "`content` must be a string or an array of content blocks",
            ))
        }
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bp = format!("{param}.content[{j}]");
        match (role, b.get("type").and_then(Value::as_str)) {
            (_, Some("text")) => parts.push(text_part(b, &bp)?),
            ("user", Some("image")) => parts.push(image_part(b, &bp)?),
            ("user", Some("tool_result")) => out.push(tool_result_to_hub(b, &bp)?),
            ("assistant", Some("tool_use")) => tool_calls.push(tool_use_to_hub(b, &bp)?),
            (_, Some(other)) => {
                return Err(GatewayError::unsupported(
                    format!("{bp}.type"),
                    format!("`{other}` blocks in {role} messages are not supported by ASC"),
                ))
            }
            (_, None) => {
                return Err(GatewayError::invalid_request(
                    format!("{bp}.type"),
                    "a content block needs a `type`",
                ))
            }
        }
    }
    if role == "assistant" {
        let content = if parts.is_empty() {
            Value::Null
        } else {
            Value::Array(parts)
        };
        let mut msg = json!({ "role": "assistant", "content": content });
        if !tool_calls.is_empty() {
            set_field(&mut msg, "tool_calls", Value::Array(tool_calls));
        }
        out.push(msg);
    } else if !parts.is_empty() || blocks.is_empty() {
        out.push(json!({ "role": "user", "content": parts }));
    }
    Ok(())
}

fn image_part(b: &Value, param: &str) -> Result<Value, GatewayError> {
    check_keys(b, &["type", "source", "cache_control"], param)?;
    let sp = format!("{param}.source");
    let source = b
        .get("source")
        .ok_or_else(|| GatewayError::invalid_request(&sp, "an image block needs a `source`"))?;
    let field = |k: &str| {
        source.get(k).and_then(Value::as_str).ok_or_else(|| {
            GatewayError::invalid_request(format!("{sp}.{k}"), format!("`{k}` must be a string"))
        })
    };
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!("data:{};base64,{}", field("media_type")?, field("data")?),
        Some("url") => field("url")?.to_string(),
        _ => {
            return Err(GatewayError::unsupported(
                format!("{sp}.type"),
                "image sources must be `base64` or `url` (files are not supported by ASC)",
            ))
        }
    };
    let mut part = json!({ "type": "image_url", "image_url": { "url": url } });
    carry_cache_control(b, &mut part);
    Ok(part)
}

fn tool_result_to_hub(b: &Value, param: &str) -> Result<Value, GatewayError> {
    check_keys(
        b,
        &[
            "type",
            "tool_use_id",
            "content",
            "is_error",
            "cache_control",
        ],
        param,
    )?;
    let id = b
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            GatewayError::invalid_request(
                format!("{param}.tool_use_id"),
                "`tool_use_id` must be a string",
            )
        })?;
    let cp = format!("{param}.content");
    let content = match b.get("content") {
        None | Some(Value::Null) => json!(""),
        Some(Value::String(s)) => json!(s),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::new();
            for (k, blk) in blocks.iter().enumerate() {
                let p = format!("{cp}[{k}]");
                if blk.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(GatewayError::unsupported(
                        format!("{p}.type"),
                        "tool results may hold only text blocks through ASC",
                    ));
                }
                parts.push(text_part(blk, &p)?);
            }
            Value::Array(parts)
        }
        Some(_) => {
            return Err(GatewayError::invalid_request(
                &cp,
                "`content` must be a string or an array of blocks",
            ))
        }
    };
    let mut msg = json!({ "role": "tool", "tool_call_id": id, "content": content });
    match b.get("is_error") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => set_field(&mut msg, EXT_IS_ERROR, json!(true)),
        Some(_) => {
            return Err(GatewayError::invalid_request(
                format!("{param}.is_error"),
                "`is_error` must be a boolean",
            ))
        }
    }
    carry_cache_control(b, &mut msg);
    Ok(msg)
}

fn tool_use_to_hub(b: &Value, param: &str) -> Result<Value, GatewayError> {
    check_keys(b, &["type", "id", "name", "input", "cache_control"], param)?;
    let s = |k: &str| {
        b.get(k).and_then(Value::as_str).ok_or_else(|| {
            GatewayError::invalid_request(format!("{param}.{k}"), format!("`{k}` must be a string"))
        })
    };
    let input = match b.get("input") {
        Some(i @ Value::Object(_)) => i,
        _ => {
            return Err(GatewayError::invalid_request(
                format!("{param}.input"),
                "`input` must be an object",
            ))
        }
    };
    let mut call = json!({
        "id": s("id")?,
        "type": "function",
        "function": { "name": s("name")?, "arguments": input.to_string() },
    });
    carry_cache_control(b, &mut call);
    Ok(call)
}

pub(super) fn tools_to_hub(tools: &Value) -> Result<Value, GatewayError> {
    let Value::Array(tools) = tools else {
        return Err(GatewayError::invalid_request(
            "tools",
            "`tools` must be an array",
        ));
    };
    let mut out = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        if let Some(ty) = t.get("type").and_then(Value::as_str) {
            if ty != "custom" {
                return Err(GatewayError::unsupported(
                    format!("{param}.type"),
                    format!("server tools (`{ty}`) are not supported by ASC; define client tools"),
                ));
            }
        }
        check_keys(
            t,
            &[
                "type",
                "name",
                "description",
                "input_schema",
                "cache_control",
            ],
            &param,
        )?;
        let name = t.get("name").and_then(Value::as_str).ok_or_else(|| {
            GatewayError::invalid_request(format!("{param}.name"), "a tool needs a string `name`")
        })?;
        let schema = t
            .get("input_schema")
            .filter(|s| s.is_object())
            .ok_or_else(|| {
                GatewayError::invalid_request(
                    format!("{param}.input_schema"),
                    "`input_schema` must be an object",
                )
            })?;
        let mut function = json!({ "name": name, "parameters": schema });
        if let Some(d) = t.get("description") {
            set_field(&mut function, "description", d.clone());
        }
        let mut tool = json!({ "type": "function", "function": function });
        carry_cache_control(t, &mut tool);
        out.push(tool);
    }
    Ok(Value::Array(out))
}

pub(super) fn tool_choice_to_hub(choice: &Value, hub: &mut HubRequest) -> Result<(), GatewayError> {
    check_keys(
        choice,
        &["type", "name", "disable_parallel_tool_use"],
        "tool_choice",
    )?;
    let mapped = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice.get("name").and_then(Value::as_str).ok_or_else(|| {
                GatewayError::invalid_request(
                    "tool_choice.name",
                    "`tool_choice` of type `tool` needs a `name`",
                )
            })?;
            json!({ "type": "function", "function": { "name": name } })
        }
        _ => {
            return Err(GatewayError::invalid_request(
                "tool_choice.type",
                "`tool_choice.type` must be auto, any, tool or none",
            ))
        }
    };
    hub.insert("tool_choice".into(), mapped);
    match choice.get("disable_parallel_tool_use") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            hub.insert("parallel_tool_calls".into(), json!(false));
        }
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "tool_choice.disable_parallel_tool_use",
                "`disable_parallel_tool_use` must be a boolean",
            ))
        }
    }
    Ok(())
}
