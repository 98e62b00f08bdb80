//! Hub messages and tools -> Anthropic request content (for [`super::outbound`]).

use serde_json::{json, Map, Value};

use super::inbound::tool_input;
use super::{EXT_CACHE_CONTROL, EXT_IS_ERROR};
use crate::error::GatewayError;
use crate::providers::{set_field, HubRequest};

/// One Anthropic message being built: a plain string while it is one unmerged string message.
struct Turn {
    role: &'static str,
    plain: Option<String>,
    blocks: Vec<Value>,
}

impl Turn {
    fn into_value(self) -> Value {
        match self.plain {
            Some(s) => json!({ "role": self.role, "content": s }),
            None => json!({ "role": self.role, "content": self.blocks }),
        }
    }
}

pub(super) fn messages_from_hub(
    messages: Option<&Value>,
) -> Result<(Option<Value>, Vec<Value>), GatewayError> {
    let Some(Value::Array(messages)) = messages else {
        return Err(GatewayError::invalid_request(
            "messages",
            "`messages` must be an array",
        ));
    };
    let mut system: Vec<Value> = Vec::new();
    let mut system_plain: Option<String> = None;
    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        for (k, v) in m.as_object().into_iter().flatten() {
            let known = matches!(
                k.as_str(),
                "role" | "content" | "tool_calls" | "tool_call_id"
            ) || k == EXT_IS_ERROR
                || k == EXT_CACHE_CONTROL;
            let empty_annotations = k == "annotations" && v == &json!([]);
            if !known && !v.is_null() && !empty_annotations {
                return Err(GatewayError::unsupported(
                    format!("{param}.{k}"),
                    format!("message field `{k}` is not supported by Anthropic models"),
                ));
            }
        }
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, blocks, plain) = match role {
            "system" | "developer" => {
                if !turns.is_empty() {
                    return Err(GatewayError::unsupported(
                        format!("{param}.role"),
                        "Anthropic takes system instructions only at the start: move this system message before the first user message",
                    ));
                }
                let blocks = content_blocks(content, &param, false)?;
                system_plain = match (&system_plain, content, system.is_empty()) {
                    (None, Value::String(s), true) => Some(s.clone()),
                    _ => None,
                };
                system.extend(blocks);
                continue;
            }
            "user" => (
                "user",
                content_blocks(content, &param, true)?,
                content.as_str(),
            ),
            "assistant" => {
                let mut blocks = content_blocks(content, &param, false)?;
                blocks.retain(|b| b.get("text") != Some(&json!("")));
                let calls = m.get("tool_calls").and_then(Value::as_array);
                for (j, c) in calls.into_iter().flatten().enumerate() {
                    blocks.push(tool_use_block(c, &format!("{param}.tool_calls[{j}]"))?);
                }
                let plain = if calls.is_some_and(|c| !c.is_empty()) {
                    None
                } else {
                    content.as_str()
                };
                ("assistant", blocks, plain)
            }
            "tool" => ("user", vec![tool_result_block(m, &param)?], None),
            _ => {
                return Err(GatewayError::invalid_request(
                    format!("{param}.role"),
                    format!("unknown role `{role}`"),
                ))
            }
        };
        match turns.last_mut() {
            Some(last) if last.role == role => {
                // `blocks` already hold a plain string as one text block.
                last.plain = None;
                last.blocks.extend(blocks);
            }
            _ => turns.push(Turn {
                role,
                plain: plain.map(str::to_string),
                blocks,
            }),
        }
    }
    let system = match (system_plain, system.is_empty()) {
        (Some(s), _) => Some(json!(s)),
        (None, false) => Some(Value::Array(system)),
        (None, true) => None,
    };
    Ok((system, turns.into_iter().map(Turn::into_value).collect()))
}

/// Hub message content (string or parts) -> Anthropic blocks. Images only where `images`.
fn content_blocks(content: &Value, param: &str, images: bool) -> Result<Vec<Value>, GatewayError> {
    let parts = match content {
        Value::Null => return Ok(Vec::new()),
        Value::String(s) => return Ok(vec![json!({ "type": "text", "text": s })]),
        Value::Array(parts) => parts,
        _ => {
            return Err(GatewayError::invalid_request(
                format!("{param}.content"),
                "`content` must be a string or an array",
            ))
        }
    };
    let mut blocks = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let pp = format!("{param}.content[{j}]");
        let mut block = match p.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = p.get("text").and_then(Value::as_str).ok_or_else(|| {
                    GatewayError::invalid_request(
                        format!("{pp}.text"),
                        "a text part needs a string `text`",
                    )
                })?;
                json!({ "type": "text", "text": text })
            }
            Some("image_url") if images => image_block(p, &pp)?,
            Some(other) => {
                return Err(GatewayError::unsupported(
                    format!("{pp}.type"),
                    format!("`{other}` content is not supported here by Anthropic models"),
                ))
            }
            None => {
                return Err(GatewayError::invalid_request(
                    format!("{pp}.type"),
                    "a content part needs a `type`",
                ))
            }
        };
        restore_cache_control(p, &mut block);
        blocks.push(block);
    }
    Ok(blocks)
}

fn restore_cache_control(from: &Value, to: &mut Value) {
    if let (Some(cc), Some(obj)) = (from.get(EXT_CACHE_CONTROL), to.as_object_mut()) {
        obj.insert("cache_control".into(), cc.clone());
    }
}

fn image_block(p: &Value, param: &str) -> Result<Value, GatewayError> {
    let url = p
        .pointer("/image_url/url")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            GatewayError::invalid_request(
                format!("{param}.image_url.url"),
                "an image part needs `image_url.url`",
            )
        })?;
    match p.pointer("/image_url/detail").and_then(Value::as_str) {
        None | Some("auto") => {}
        Some(_) => {
            return Err(GatewayError::unsupported(
                format!("{param}.image_url.detail"),
                "Anthropic models have no image `detail` setting: remove it",
            ))
        }
    }
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| {
            GatewayError::invalid_request(
                format!("{param}.image_url.url"),
                "a data URL must be base64 (`data:<type>;base64,...`)",
            )
        })?;
        return Ok(json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data },
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    Err(GatewayError::invalid_request(
        format!("{param}.image_url.url"),
        "image URLs must be data: or http(s) URLs",
    ))
}

fn tool_use_block(call: &Value, param: &str) -> Result<Value, GatewayError> {
    let s = |ptr: &str, name: &str| {
        call.pointer(ptr).and_then(Value::as_str).ok_or_else(|| {
            GatewayError::invalid_request(
                format!("{param}.{name}"),
                format!("`{name}` must be a string"),
            )
        })
    };
    let name = s("/function/name", "function.name")?;
    let args = s("/function/arguments", "function.arguments")?;
    let input = tool_input(args, name).map_err(|_| {
        GatewayError::invalid_request(
            format!("{param}.function.arguments"),
            "tool call arguments must be a JSON object for Anthropic models",
        )
    })?;
    let mut block =
        json!({ "type": "tool_use", "id": s("/id", "id")?, "name": name, "input": input });
    restore_cache_control(call, &mut block);
    Ok(block)
}

fn tool_result_block(m: &Value, param: &str) -> Result<Value, GatewayError> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            GatewayError::invalid_request(
                format!("{param}.tool_call_id"),
                "a tool message needs a string `tool_call_id`",
            )
        })?;
    let content = match m.get("content") {
        Some(Value::String(s)) => json!(s),
        Some(c @ Value::Array(_)) => Value::Array(content_blocks(c, param, false)?),
        _ => {
            return Err(GatewayError::invalid_request(
                format!("{param}.content"),
                "`content` must be a string or an array",
            ))
        }
    };
    let mut block = json!({ "type": "tool_result", "tool_use_id": id, "content": content });
    if m.get(EXT_IS_ERROR) == Some(&json!(true)) {
        set_field(&mut block, "is_error", json!(true));
    }
    restore_cache_control(m, &mut block);
    Ok(block)
}

pub(super) fn tools_from_hub(
    hub: &HubRequest,
    out: &mut Map<String, Value>,
) -> Result<(), GatewayError> {
    let tools = match hub.get("tools") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(t)) => t,
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "tools",
                "`tools` must be an array",
            ))
        }
    };
    let mut list = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(GatewayError::unsupported(
                format!("{param}.type"),
                "only `function` tools are supported",
            ));
        }
        let f = t.get("function").unwrap_or(&Value::Null);
        if f.get("strict").is_some_and(|s| s == &json!(true)) {
            return Err(GatewayError::unsupported(
                format!("{param}.function.strict"),
                "strict tools are not supported by Anthropic models through ASC",
            ));
        }
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
            GatewayError::invalid_request(
                format!("{param}.function.name"),
                "a tool needs a string `function.name`",
            )
        })?;
        let schema = f
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
        let mut tool = json!({ "name": name, "input_schema": schema });
        if let Some(d) = f.get("description").filter(|d| !d.is_null()) {
            set_field(&mut tool, "description", d.clone());
        }
        restore_cache_control(t, &mut tool);
        list.push(tool);
    }
    let mut choice = match hub.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({ "type": "auto" })),
            "required" => Some(json!({ "type": "any" })),
            "none" => Some(json!({ "type": "none" })),
            _ => {
                return Err(GatewayError::invalid_request(
                    "tool_choice",
                    "`tool_choice` must be auto, required, none or a function",
                ))
            }
        },
        Some(c) => match c.pointer("/function/name").and_then(Value::as_str) {
            Some(name) if c.get("type") == Some(&json!("function")) => {
                Some(json!({ "type": "tool", "name": name }))
            }
            _ => {
                return Err(GatewayError::invalid_request(
                    "tool_choice",
                    "`tool_choice` must be auto, required, none or a function",
                ))
            }
        },
    };
    if hub.get("parallel_tool_calls") == Some(&json!(false)) && !list.is_empty() {
        let c = choice.get_or_insert_with(|| json!({ "type": "auto" }));
        if c["type"] != "none" {
            set_field(c, "disable_parallel_tool_use", json!(true));
        }
    }
    if !list.is_empty() {
        out.insert("tools".into(), Value::Array(list));
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    Ok(())
}
