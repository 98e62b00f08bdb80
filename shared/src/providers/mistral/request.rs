//! Hub (OpenAI `chat.completions` body) -> Mistral `POST /v1/chat/completions` body.
//!
//! Mistral validates strictly and answers an unknown field with 422, so every field is mapped from
//! an allowlist; anything else is refused here with a 400 that names the field, never dropped.
//! A field whose value is `null` is treated as absent (in OpenAI's API `null` means "default").

use serde_json::{json, Map, Value};

use super::messages::{joined_text, messages};
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
                        return Err(GatewayError::invalid_request(
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
                return Err(GatewayError::unsupported(
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
    Ok(crate::json_write::map_to_vec(&out))
}

/// The 400 for a field Mistral cannot take. `param` is the field's path, `name` its key.
fn refused(param: &str, name: &str) -> GatewayError {
    if name.starts_with("x_anthropic_") {
        let field = name.trim_start_matches("x_anthropic_");
        GatewayError::unsupported(
            param,
            format!(
                "`{field}` is an Anthropic-only parameter and this model is served by Mistral: \
                 remove it or choose an Anthropic model"
            ),
        )
    } else {
        GatewayError::unsupported(
            param,
            format!("`{param}` is not supported by Mistral models: remove it"),
        )
    }
}

pub(super) fn obj<'a>(v: &'a Value, param: &str) -> Result<&'a Map<String, Value>, GatewayError> {
    v.as_object()
        .ok_or_else(|| GatewayError::invalid_request(param, format!("`{param}` must be an object")))
}

pub(super) fn arr<'a>(v: &'a Value, param: &str) -> Result<&'a Vec<Value>, GatewayError> {
    v.as_array()
        .ok_or_else(|| GatewayError::invalid_request(param, format!("`{param}` must be an array")))
}

/// Refuses every non-null key of `m` outside `allowed`.
pub(super) fn only(
    m: &Map<String, Value>,
    allowed: &[&str],
    path: &str,
) -> Result<(), GatewayError> {
    match m
        .iter()
        .find(|(k, v)| !v.is_null() && !allowed.contains(&k.as_str()))
    {
        Some((k, _)) => Err(refused(&format!("{path}.{k}"), k)),
        None => Ok(()),
    }
}

fn tools(v: &Value) -> Result<Value, GatewayError> {
    let mut out = Vec::new();
    for (i, t) in arr(v, "tools")?.iter().enumerate() {
        let path = format!("tools[{i}]");
        let t = obj(t, &path)?;
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                return Err(GatewayError::unsupported(
                    format!("{path}.type"),
                    format!(
                        "tool type `{other}` is not supported by Mistral models: only `function`"
                    ),
                ))
            }
            None => return Err(GatewayError::missing(&format!("{path}.type"))),
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
                .ok_or_else(|| GatewayError::missing(&format!("{fpath}.name")))?,
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
            other => Err(GatewayError::invalid_request(
                "tool_choice",
                format!("`tool_choice` `{other}` is not one of none, auto, required"),
            )),
        },
        Value::Object(o) => {
            match o.get("type").and_then(Value::as_str) {
                Some("function") => {}
                other => {
                    return Err(GatewayError::unsupported(
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
                .ok_or_else(|| GatewayError::missing("tool_choice.function.name"))?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(GatewayError::invalid_request(
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
        Some(other) => Err(GatewayError::unsupported(
            "response_format.type",
            format!("response format `{other}` is not supported by Mistral models: use text, json_object or json_schema"),
        )),
        None => Err(GatewayError::missing("response_format.type")),
    }
}

/// Predicted outputs: Mistral takes `{type: "content", content: string}`.
fn prediction(v: &Value) -> Result<Value, GatewayError> {
    let o = obj(v, "prediction")?;
    only(o, &["type", "content"], "prediction")?;
    if o.get("type").and_then(Value::as_str) != Some("content") {
        return Err(GatewayError::unsupported(
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
