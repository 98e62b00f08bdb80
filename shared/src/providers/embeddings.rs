//! `POST /v1/embeddings`: OpenAI's request read and checked once, then written for the serving
//! provider; Mistral's response written back in OpenAI's shape.
//!
//! References: OpenAI <https://platform.openai.com/docs/api-reference/embeddings/create>,
//! Mistral <https://docs.mistral.ai/api/#tag/embeddings>.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::audit::Usage;
use crate::error::{ErrorKind, GatewayError};

/// An OpenAI embeddings request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsRequest {
    /// The model the client asked for.
    pub model: String,
    /// The whole request body, unknown fields included (OpenAI gets them as sent).
    pub body: Map<String, Value>,
    /// How many embeddings the request asks for.
    pub inputs: usize,
    /// Characters of text input (token-array inputs count none: they are not text).
    pub input_chars: u64,
    /// Whether the client wants `embedding` as base64 (little-endian f32 bytes). OpenAI's SDKs ask
    /// for it by default and decode it themselves.
    pub base64: bool,
}

/// Reads and checks an OpenAI embeddings request body.
pub fn parse_request(body: &[u8]) -> Result<EmbeddingsRequest, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidJson,
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(body) = v else {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "the request body must be a JSON object",
        ));
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(
                GatewayError::new(ErrorKind::MissingParameter, "`model` is required")
                    .with_param("model"),
            )
        }
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "model",
                "`model` must be a string",
            ))
        }
    };
    let (inputs, input_chars) = match body.get("input") {
        None | Some(Value::Null) => {
            return Err(
                GatewayError::new(ErrorKind::MissingParameter, "`input` is required")
                    .with_param("input"),
            )
        }
        Some(input) => count_input(input)?,
    };
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "float" => false,
        Some(Value::String(s)) if s == "base64" => true,
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "encoding_format",
                "`encoding_format` must be `float` or `base64`",
            ))
        }
    };
    match body.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(d) if d.as_u64().is_some_and(|n| n > 0) => {}
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "dimensions",
                "`dimensions` must be a positive integer",
            ))
        }
    }
    match body.get("user") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "user",
                "`user` must be a string",
            ))
        }
    }
    Ok(EmbeddingsRequest {
        model,
        body,
        inputs,
        input_chars,
        base64,
    })
}

/// `input`: a string, an array of strings, an array of token ids (one input) or an array of token
/// arrays. Returns (inputs, characters of text).
fn count_input(input: &Value) -> Result<(usize, u64), GatewayError> {
    const SHAPE: &str = "`input` must be a non-empty string, an array of non-empty strings, an \
                         array of token ids or an array of non-empty token-id arrays";
    let is_token = |v: &Value| v.as_u64().is_some_and(|n| n <= u64::from(u32::MAX));
    match input {
        Value::String(s) if !s.is_empty() => Ok((1, s.chars().count() as u64)),
        Value::Array(items) if !items.is_empty() => {
            if items
                .iter()
                .all(|i| i.as_str().is_some_and(|s| !s.is_empty()))
            {
                let chars = items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.chars().count() as u64)
                    .sum();
                Ok((items.len(), chars))
            } else if items.iter().all(is_token) {
                Ok((1, 0))
            } else if items.iter().all(|i| {
                i.as_array()
                    .is_some_and(|t| !t.is_empty() && t.iter().all(is_token))
            }) {
                Ok((items.len(), 0))
            } else {
                Err(GatewayError::invalid_request("input", SHAPE))
            }
        }
        _ => Err(GatewayError::invalid_request("input", SHAPE)),
    }
}

/// Whether `input` holds token ids rather than text.
fn has_token_input(req: &EmbeddingsRequest) -> bool {
    match req.body.get("input") {
        Some(Value::Array(items)) => items.iter().any(|i| !i.is_string()),
        _ => false,
    }
}

fn to_bytes(v: &Value) -> Result<Vec<u8>, GatewayError> {
    Ok(crate::json_write::to_vec(v))
}

/// OpenAI (or compatible): the client's body as sent, with the upstream model.
pub fn openai_request(
    req: &EmbeddingsRequest,
    upstream_model: &str,
) -> Result<Vec<u8>, GatewayError> {
    let mut body = req.body.clone();
    body.insert("model".into(), Value::String(upstream_model.to_string()));
    to_bytes(&Value::Object(body))
}

/// Mistral's embeddings request: `model`, `input` (a string or strings) and `output_dimension`
/// (OpenAI's `dimensions`). Floats are Mistral's default (`output_dtype: float`), so none of
/// `output_dtype` or `encoding_format` is sent: a client's `base64` is served by the gateway
/// encoding Mistral's floats. Token inputs and any other field are refused.
pub fn mistral_request(
    req: &EmbeddingsRequest,
    upstream_model: &str,
) -> Result<Vec<u8>, GatewayError> {
    let mut out = Map::new();
    out.insert("model".into(), Value::String(upstream_model.to_string()));
    for (key, value) in &req.body {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "encoding_format" => {}
            "input" => {
                if has_token_input(req) {
                    return Err(GatewayError::new(
                        ErrorKind::UnsupportedParameter,
                        "Mistral embeds text only: send `input` as a string or an array of \
                         strings, not token ids",
                    )
                    .with_param("input"));
                }
                out.insert("input".into(), value.clone());
            }
            "dimensions" => {
                out.insert("output_dimension".into(), value.clone());
            }
            "user" => {
                return Err(GatewayError::new(
                    ErrorKind::UnsupportedParameter,
                    "`user` (an end-user id) is not supported by Mistral models: remove it; the \
                     gateway's audit trail already records which API key made the request",
                )
                .with_param("user"))
            }
            other => {
                return Err(GatewayError::new(
                    ErrorKind::UnsupportedParameter,
                    format!("`{other}` is not supported by Mistral embedding models: remove it"),
                )
                .with_param(other))
            }
        }
    }
    to_bytes(&Value::Object(out))
}

/// Mistral's embeddings response -> OpenAI's `list`, named after the model the client asked for.
/// With `base64`, each embedding is its f32 values' little-endian bytes in standard base64, which
/// OpenAI's SDKs decode with `np.frombuffer(base64.b64decode(s), dtype="float32")`.
pub fn mistral_response_to_openai(
    body: &[u8],
    base64: bool,
    model: &str,
    id: &str,
) -> Result<(Vec<u8>, Option<Usage>), GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        GatewayError::bad_upstream(format!("Mistral's embeddings response is not JSON: {e}"))
    })?;
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| GatewayError::bad_upstream("Mistral's embeddings response has no `data`"))?;
    let mut out = Vec::with_capacity(data.len());
    for (i, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(i as u64);
        let values = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                GatewayError::bad_upstream("a Mistral embedding has no `embedding` list")
            })?;
        let embedding = if base64 {
            let mut bytes = Vec::with_capacity(values.len() * 4);
            for x in values {
                let x = x.as_f64().ok_or_else(|| {
                    GatewayError::bad_upstream(
                        "a Mistral embedding holds a value that is not a number",
                    )
                })?;
                bytes.extend_from_slice(&(x as f32).to_le_bytes());
            }
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            if !values.iter().all(Value::is_number) {
                return Err(GatewayError::bad_upstream(
                    "a Mistral embedding holds a value that is not a number",
                ));
            }
            Value::Array(values.clone())
        };
        out.push(json!({"object": "embedding", "index": index, "embedding": embedding}));
    }
    let prompt = v.pointer("/usage/prompt_tokens").and_then(Value::as_u64);
    let total = v
        .pointer("/usage/total_tokens")
        .and_then(Value::as_u64)
        .or(prompt);
    let usage = prompt.map(|p| Usage {
        input_tokens: p,
        ..Usage::default()
    });
    // Mistral's own id when it sent one: Mistral's SDK requires an `id` (see `openai_response`).
    let id = v.get("id").and_then(Value::as_str).unwrap_or(id);
    let resp = json!({
        "id": id,
        "object": "list",
        "data": out,
        "model": model,
        "usage": {"prompt_tokens": prompt.unwrap_or(0), "total_tokens": total.unwrap_or(0)},
    });
    Ok((to_bytes(&resp)?, usage))
}

/// The usage in an OpenAI embeddings response (`usage.prompt_tokens`; embeddings have no output
/// tokens).
pub fn openai_usage(body: &[u8]) -> Option<Usage> {
    let v: Value = serde_json::from_slice(body).ok()?;
    usage_of(&v)
}

fn usage_of(v: &Value) -> Option<Usage> {
    let prompt = v.pointer("/usage/prompt_tokens")?.as_u64()?;
    Some(Usage {
        input_tokens: prompt,
        ..Usage::default()
    })
}

/// An OpenAI embeddings response as the client gets it, and its usage. OpenAI's reply has no
/// `id`, which Mistral's SDK requires (its `EmbeddingResponse` needs `id`, `object`, `model`,
/// `usage`, `data`; OpenAI's SDK ignores extra fields), so `id` is added when missing. The bytes
/// are otherwise kept as the upstream sent them (the field goes in after the opening brace).
pub fn openai_response(body: Vec<u8>, id: &str) -> (Vec<u8>, Option<Usage>) {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return (body, None);
    };
    let usage = usage_of(&v);
    let Some(obj) = v.as_object() else {
        return (body, usage);
    };
    let Some(open) = body.iter().position(|b| *b == b'{') else {
        return (body, usage);
    };
    if obj.contains_key("id") {
        return (body, usage);
    }
    let field = format!("\"id\":{},", Value::from(id)).into_bytes();
    let mut out = Vec::with_capacity(body.len() + field.len());
    out.extend_from_slice(body.get(..=open).unwrap_or_default());
    // An empty object takes the field without its comma.
    let rest = body.get(open + 1..).unwrap_or_default();
    if obj.is_empty() {
        out.extend_from_slice(field.get(..field.len() - 1).unwrap_or_default());
    } else {
        out.extend_from_slice(&field);
    }
    out.extend_from_slice(rest);
    (out, usage)
}

#[cfg(test)]
#[path = "embeddings_tests.rs"]
mod tests;
