//! Hub messages -> Mistral messages: roles, content parts, tool calls (with the tool-call ids
//! rewritten by [`ToolCallIds`]).

use serde_json::{json, Map, Value};

use super::request::{arr, obj, only};
use super::tool_ids::ToolCallIds;
use crate::error::GatewayError;
use crate::providers::set_field;

pub(super) fn messages(v: &Value) -> Result<Value, GatewayError> {
    let list = arr(v, "messages")?;
    let ids = ToolCallIds::new(ToolCallIdIter { list });
    let mapped = list
        .iter()
        .enumerate()
        .map(|(i, m)| message(i, m, &ids))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(mapped))
}

/// Every tool-call id in the messages, in order (assistant `tool_calls[].id`, tool
/// `tool_call_id`).
#[derive(Clone)]
struct ToolCallIdIter<'a> {
    list: &'a [Value],
}

impl<'a> IntoIterator for ToolCallIdIter<'a> {
    type Item = &'a str;
    type IntoIter = std::vec::IntoIter<&'a str>;
    fn into_iter(self) -> Self::IntoIter {
        let mut ids = Vec::new();
        for m in self.list {
            if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                ids.extend(calls.iter().filter_map(|c| c.get("id")?.as_str()));
            }
            if let Some(id) = m.get("tool_call_id").and_then(Value::as_str) {
                ids.push(id);
            }
        }
        ids.into_iter()
    }
}

fn message(i: usize, m: &Value, ids: &ToolCallIds) -> Result<Value, GatewayError> {
    let path = format!("messages[{i}]");
    let m = obj(m, &path)?;
    let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
        GatewayError::invalid_request(format!("{path}.role"), format!("`{path}.role` is required"))
    })?;
    let content = m.get("content").filter(|c| !c.is_null());
    let content_path = format!("{path}.content");
    match role {
        // OpenAI's `developer` role is its newer name for system instructions.
        "system" | "developer" => {
            only(m, &["role", "content"], &path)?;
            let content = content.ok_or_else(|| GatewayError::missing(&content_path))?;
            Ok(json!({"role": "system", "content": text_content(content, &content_path)?}))
        }
        "user" => {
            only(m, &["role", "content"], &path)?;
            let content = content.ok_or_else(|| GatewayError::missing(&content_path))?;
            Ok(json!({"role": "user", "content": user_content(content, &content_path)?}))
        }
        "assistant" => {
            only(m, &["role", "content", "tool_calls"], &path)?;
            let mut out = Map::new();
            out.insert("role".into(), "assistant".into());
            if let Some(c) = content {
                out.insert("content".into(), text_content(c, &content_path)?);
            }
            if let Some(calls) = m.get("tool_calls").filter(|c| !c.is_null()) {
                let calls_path = format!("{path}.tool_calls");
                let calls = arr(calls, &calls_path)?
                    .iter()
                    .enumerate()
                    .map(|(j, c)| tool_call(c, &format!("{calls_path}[{j}]"), ids))
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert("tool_calls".into(), Value::Array(calls));
            }
            Ok(Value::Object(out))
        }
        "tool" => {
            only(m, &["role", "content", "tool_call_id", "name"], &path)?;
            let content = content.ok_or_else(|| GatewayError::missing(&content_path))?;
            let id_path = format!("{path}.tool_call_id");
            let id = m
                .get("tool_call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| GatewayError::missing(&id_path))?;
            let mut out = json!({
                "role": "tool",
                "tool_call_id": ids.get(id),
                "content": joined_text(content, &content_path)?,
            });
            if let Some(name) = m.get("name").filter(|n| !n.is_null()) {
                set_field(&mut out, "name", name.clone());
            }
            Ok(out)
        }
        other => Err(GatewayError::unsupported(
            format!("{path}.role"),
            format!("role `{other}` is not supported by Mistral models: use system, user, assistant or tool"),
        )),
    }
}

/// System and assistant content: a string, or text parts (kept as Mistral text chunks).
fn text_content(c: &Value, path: &str) -> Result<Value, GatewayError> {
    if c.is_string() {
        return Ok(c.clone());
    }
    let parts = arr(c, path)?
        .iter()
        .enumerate()
        .map(|(j, p)| {
            text_part(p, &format!("{path}[{j}]")).map(|t| json!({"type": "text", "text": t}))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(parts))
}

/// Tool results: Mistral's reference types a tool message's content as a string, so text parts
/// are joined (OpenAI reads a list of text parts as their concatenation).
pub(super) fn joined_text(c: &Value, path: &str) -> Result<Value, GatewayError> {
    if c.is_string() {
        return Ok(c.clone());
    }
    let mut s = String::new();
    for (j, p) in arr(c, path)?.iter().enumerate() {
        s.push_str(text_part(p, &format!("{path}[{j}]"))?);
    }
    Ok(Value::String(s))
}

fn text_part<'a>(p: &'a Value, path: &str) -> Result<&'a str, GatewayError> {
    let p = obj(p, path)?;
    match p.get("type").and_then(Value::as_str) {
        Some("text") => {
            only(p, &["type", "text"], path)?;
            p.get("text").and_then(Value::as_str).ok_or_else(|| {
                GatewayError::invalid_request(
                    format!("{path}.text"),
                    format!("`{path}.text` must be a string"),
                )
            })
        }
        Some(other) => Err(GatewayError::unsupported(
            format!("{path}.type"),
            format!("content part type `{other}` is not supported here: send text"),
        )),
        None => Err(GatewayError::missing(&format!("{path}.type"))),
    }
}

/// User content: a string, or parts (text, and `image_url` for vision models).
fn user_content(c: &Value, path: &str) -> Result<Value, GatewayError> {
    if c.is_string() {
        return Ok(c.clone());
    }
    let mut out = Vec::new();
    for (j, p) in arr(c, path)?.iter().enumerate() {
        let pp = format!("{path}[{j}]");
        let part = obj(p, &pp)?;
        match part.get("type").and_then(Value::as_str) {
            Some("image_url") => {
                only(part, &["type", "image_url"], &pp)?;
                out.push(json!({"type": "image_url", "image_url": image_url(part.get("image_url"), &pp)?}));
            }
            _ => out.push(json!({"type": "text", "text": text_part(p, &pp)?})),
        }
    }
    Ok(Value::Array(out))
}

/// Mistral's `image_url` is a URL string (https or `data:` URI) or `{url, detail}`.
fn image_url(v: Option<&Value>, path: &str) -> Result<Value, GatewayError> {
    let path = format!("{path}.image_url");
    match v {
        Some(Value::String(url)) => Ok(json!({"url": url})),
        Some(Value::Object(o)) => {
            only(o, &["url", "detail"], &path)?;
            let url = o
                .get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| GatewayError::missing(&format!("{path}.url")))?;
            let mut out = json!({"url": url});
            if let Some(d) = o.get("detail").filter(|d| !d.is_null()) {
                set_field(&mut out, "detail", d.clone());
            }
            Ok(out)
        }
        _ => Err(GatewayError::missing(&path)),
    }
}

fn tool_call(c: &Value, path: &str, ids: &ToolCallIds) -> Result<Value, GatewayError> {
    let c = obj(c, path)?;
    only(c, &["id", "type", "function"], path)?;
    if let Some(t) = c
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| *t != "function")
    {
        return Err(GatewayError::unsupported(
            format!("{path}.type"),
            format!("tool call type `{t}` is not supported by Mistral models: only `function`"),
        ));
    }
    let id = c
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::missing(&format!("{path}.id")))?;
    let fpath = format!("{path}.function");
    let f = obj(c.get("function").unwrap_or(&Value::Null), &fpath)?;
    only(f, &["name", "arguments"], &fpath)?;
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::missing(&format!("{fpath}.name")))?;
    let arguments = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
    Ok(json!({
        "id": ids.get(id),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }))
}
