//! Hub (OpenAI `chat.completions` body) -> Mistral `POST /v1/chat/completions` body.
//!
//! Mistral validates strictly and answers an unknown field with 422, so every field is mapped from
//! an allowlist; anything else is refused here with a 400 that names the field, never dropped.
//! A field whose value is `null` is treated as absent (in OpenAI's API `null` means "default").

use serde_json::{json, Map, Value};

use super::tool_ids::ToolCallIds;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::HubRequest;

/// Hub fields Mistral takes under the same name with the same meaning.
const SAME_NAME: &[&str] = &[
    "temperature",
    "top_p",
    "stop",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "parallel_tool_calls",
    "stream",
    // Mistral's own switch (not an OpenAI field): only a client that targets Mistral sends it.
    "safe_prompt",
];

/// Writes Mistral's request body for `upstream_model`.
pub fn request_from_hub(hub: &HubRequest, upstream_model: &str) -> Result<Vec<u8>, GatewayError> {
    let mut out = Map::new();
    out.insert("model".into(), Value::String(upstream_model.to_string()));
    let mut max_tokens: Option<(&str, &Value)> = None;
    for (key, value) in hub {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" => {}
            "messages" => {
                out.insert("messages".into(), messages(value)?);
            }
            k if SAME_NAME.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            "max_tokens" | "max_completion_tokens" => {
                if let Some((other, v)) = max_tokens {
                    if v != value {
                        return Err(invalid(
                            key,
                            format!(
                                "`{key}` and `{other}` disagree: send only `max_completion_tokens`"
                            ),
                        ));
                    }
                }
                max_tokens = Some((key, value));
                out.insert("max_tokens".into(), value.clone());
            }
            "seed" => {
                out.insert("random_seed".into(), value.clone());
            }
            "tool_choice" => {
                out.insert("tool_choice".into(), tool_choice(value)?);
            }
            "tools" => {
                out.insert("tools".into(), tools(value)?);
            }
            "response_format" => {
                out.insert("response_format".into(), response_format(value)?);
            }
            "prediction" => {
                out.insert("prediction".into(), prediction(value)?);
            }
            // The gateway's concern, not Mistral's: Mistral refuses the field, and its stream always
            // reports usage in the last chunk (next to that chunk's `finish_reason`), which the
            // decoder turns into the usage-only chunk OpenAI clients expect.
            "stream_options" => {}
            // OpenAI's end-user id for abuse monitoring. Mistral has no such field (it answers 422)
            // and nothing documented to carry it; it changes no output, but dropping what a client
            // asked for is not ours to decide, so it is refused with a way out.
            "user" => {
                return Err(unsupported(
                    "user",
                    "`user` (an end-user id) is not supported by Mistral models: remove it; the \
                     gateway's audit trail already records which API key made the request",
                ))
            }
            _ => return Err(refused(key, key)),
        }
    }
    if !out.contains_key("messages") {
        return Err(
            GatewayError::new(ErrorKind::MissingParameter, "`messages` is required")
                .with_param("messages"),
        );
    }
    serde_json::to_vec(&Value::Object(out)).map_err(|e| {
        GatewayError::new(ErrorKind::Internal, format!("writing Mistral request: {e}"))
    })
}

pub(super) fn unsupported(param: impl Into<String>, message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::UnsupportedParameter, message).with_param(param)
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidRequest, message).with_param(param)
}

/// The 400 for a field Mistral cannot take. `param` is the field's path, `name` its key.
fn refused(param: &str, name: &str) -> GatewayError {
    if name.starts_with("x_anthropic_") {
        let field = name.trim_start_matches("x_anthropic_");
        unsupported(
            param,
            format!(
                "`{field}` is an Anthropic-only parameter and this model is served by Mistral: \
                 remove it or choose an Anthropic model"
            ),
        )
    } else {
        unsupported(
            param,
            format!("`{param}` is not supported by Mistral models: remove it"),
        )
    }
}

fn obj<'a>(v: &'a Value, param: &str) -> Result<&'a Map<String, Value>, GatewayError> {
    v.as_object()
        .ok_or_else(|| invalid(param, format!("`{param}` must be an object")))
}

fn arr<'a>(v: &'a Value, param: &str) -> Result<&'a Vec<Value>, GatewayError> {
    v.as_array()
        .ok_or_else(|| invalid(param, format!("`{param}` must be an array")))
}

/// Refuses every non-null key of `m` outside `allowed`.
fn only(m: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), GatewayError> {
    match m
        .iter()
        .find(|(k, v)| !v.is_null() && !allowed.contains(&k.as_str()))
    {
        Some((k, _)) => Err(refused(&format!("{path}.{k}"), k)),
        None => Ok(()),
    }
}

fn messages(v: &Value) -> Result<Value, GatewayError> {
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
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{path}.role"), format!("`{path}.role` is required")))?;
    let content = m.get("content").filter(|c| !c.is_null());
    let content_path = format!("{path}.content");
    match role {
        // OpenAI's `developer` role is its newer name for system instructions.
        "system" | "developer" => {
            only(m, &["role", "content"], &path)?;
            let content = content.ok_or_else(|| missing(&content_path))?;
            Ok(json!({"role": "system", "content": text_content(content, &content_path)?}))
        }
        "user" => {
            only(m, &["role", "content"], &path)?;
            let content = content.ok_or_else(|| missing(&content_path))?;
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
            let content = content.ok_or_else(|| missing(&content_path))?;
            let id_path = format!("{path}.tool_call_id");
            let id = m
                .get("tool_call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&id_path))?;
            let mut out = json!({
                "role": "tool",
                "tool_call_id": ids.get(id),
                "content": joined_text(content, &content_path)?,
            });
            if let Some(name) = m.get("name").filter(|n| !n.is_null()) {
                out["name"] = name.clone();
            }
            Ok(out)
        }
        other => Err(unsupported(
            format!("{path}.role"),
            format!("role `{other}` is not supported by Mistral models: use system, user, assistant or tool"),
        )),
    }
}

fn missing(param: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::MissingParameter,
        format!("`{param}` is required"),
    )
    .with_param(param)
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
fn joined_text(c: &Value, path: &str) -> Result<Value, GatewayError> {
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
                invalid(
                    format!("{path}.text"),
                    format!("`{path}.text` must be a string"),
                )
            })
        }
        Some(other) => Err(unsupported(
            format!("{path}.type"),
            format!("content part type `{other}` is not supported here: send text"),
        )),
        None => Err(missing(&format!("{path}.type"))),
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
                .ok_or_else(|| missing(&format!("{path}.url")))?;
            let mut out = json!({"url": url});
            if let Some(d) = o.get("detail").filter(|d| !d.is_null()) {
                out["detail"] = d.clone();
            }
            Ok(out)
        }
        _ => Err(missing(&path)),
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
        return Err(unsupported(
            format!("{path}.type"),
            format!("tool call type `{t}` is not supported by Mistral models: only `function`"),
        ));
    }
    let id = c
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| missing(&format!("{path}.id")))?;
    let fpath = format!("{path}.function");
    let f = obj(c.get("function").unwrap_or(&Value::Null), &fpath)?;
    only(f, &["name", "arguments"], &fpath)?;
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| missing(&format!("{fpath}.name")))?;
    let arguments = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
    Ok(json!({
        "id": ids.get(id),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }))
}

fn tools(v: &Value) -> Result<Value, GatewayError> {
    let mut out = Vec::new();
    for (i, t) in arr(v, "tools")?.iter().enumerate() {
        let path = format!("tools[{i}]");
        let t = obj(t, &path)?;
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                return Err(unsupported(
                    format!("{path}.type"),
                    format!(
                        "tool type `{other}` is not supported by Mistral models: only `function`"
                    ),
                ))
            }
            None => return Err(missing(&format!("{path}.type"))),
        }
        only(t, &["type", "function"], &path)?;
        let fpath = format!("{path}.function");
        let f = obj(t.get("function").unwrap_or(&Value::Null), &fpath)?;
        only(f, &["name", "description", "parameters", "strict"], &fpath)?;
        let mut func = Map::new();
        func.insert(
            "name".into(),
            f.get("name")
                .filter(|n| n.is_string())
                .cloned()
                .ok_or_else(|| missing(&format!("{fpath}.name")))?,
        );
        for key in ["description", "strict"] {
            if let Some(v) = f.get(key).filter(|v| !v.is_null()) {
                func.insert(key.into(), v.clone());
            }
        }
        // OpenAI makes `parameters` optional (a function without arguments); Mistral's
        // reference requires it, so the empty object schema says the same thing.
        let params = f
            .get("parameters")
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        func.insert("parameters".into(), params);
        out.push(json!({"type": "function", "function": func}));
    }
    Ok(Value::Array(out))
}

/// `none` and `auto` are the same; OpenAI's `required` is Mistral's `any`; the object form
/// `{type: function, function: {name}}` is the same shape in both.
fn tool_choice(v: &Value) -> Result<Value, GatewayError> {
    match v {
        Value::String(s) => match s.as_str() {
            "none" | "auto" => Ok(v.clone()),
            "required" => Ok(json!("any")),
            other => Err(invalid(
                "tool_choice",
                format!("`tool_choice` `{other}` is not one of none, auto, required"),
            )),
        },
        Value::Object(o) => {
            match o.get("type").and_then(Value::as_str) {
                Some("function") => {}
                other => {
                    return Err(unsupported(
                        "tool_choice.type",
                        format!(
                            "`tool_choice` of type `{}` is not supported by Mistral models: name one function",
                            other.unwrap_or("")
                        ),
                    ))
                }
            }
            only(o, &["type", "function"], "tool_choice")?;
            let f = obj(
                o.get("function").unwrap_or(&Value::Null),
                "tool_choice.function",
            )?;
            only(f, &["name"], "tool_choice.function")?;
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| missing("tool_choice.function.name"))?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(invalid(
            "tool_choice",
            "`tool_choice` must be a string or an object",
        )),
    }
}

/// `text`, `json_object` and `json_schema` (`{name, description, schema, strict}`) are all in
/// Mistral's reference under the same names.
fn response_format(v: &Value) -> Result<Value, GatewayError> {
    let o = obj(v, "response_format")?;
    match o.get("type").and_then(Value::as_str) {
        Some("text") | Some("json_object") => {
            only(o, &["type"], "response_format")?;
            Ok(v.clone())
        }
        Some("json_schema") => {
            only(o, &["type", "json_schema"], "response_format")?;
            let s = obj(
                o.get("json_schema").unwrap_or(&Value::Null),
                "response_format.json_schema",
            )?;
            only(
                s,
                &["name", "description", "schema", "strict"],
                "response_format.json_schema",
            )?;
            Ok(v.clone())
        }
        Some(other) => Err(unsupported(
            "response_format.type",
            format!("response format `{other}` is not supported by Mistral models: use text, json_object or json_schema"),
        )),
        None => Err(missing("response_format.type")),
    }
}

/// Predicted outputs: Mistral takes `{type: "content", content: string}`.
fn prediction(v: &Value) -> Result<Value, GatewayError> {
    let o = obj(v, "prediction")?;
    only(o, &["type", "content"], "prediction")?;
    if o.get("type").and_then(Value::as_str) != Some("content") {
        return Err(unsupported(
            "prediction.type",
            "only `prediction.type: content` is supported by Mistral models",
        ));
    }
    let content = joined_text(
        o.get("content").unwrap_or(&Value::Null),
        "prediction.content",
    )?;
    Ok(json!({"type": "content", "content": content}))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
