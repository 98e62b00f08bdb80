//! The upstream's side of a completion: the request each provider expects (path, headers, body)
//! written from the hub, and its reply read back into the hub.

use serde_json::{Map, Value};

use crate::audit::Usage;
use crate::config::ModelTarget;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::anthropic::{self, outbound::AnthropicDecoder};
use crate::providers::mistral::{self, MistralDecoder};
use crate::providers::openai::{self, OpenAiDecoder};
use crate::providers::stream::UpstreamDecoder;
use crate::providers::{HubRequest, Provider};
use crate::secret::Secret;

/// Output-token ceiling sent to providers that require one (Anthropic) when the client set none;
/// the budget reserves for it too.
pub(super) const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 4096;

/// What to send: the operation path under the target's endpoint, the provider's own headers and
/// the body.
pub(super) struct UpstreamCall {
    pub operation: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The chat request for `target`'s provider. `stream` asks for usage on OpenAI streams so the
/// charge is exact (the client encoder drops it again if the client did not ask).
pub(super) fn chat_call(
    target: &ModelTarget,
    hub: &HubRequest,
    stream: bool,
    credential: &Secret,
) -> Result<UpstreamCall, GatewayError> {
    match target.provider {
        Provider::OpenAi => {
            let mut body = for_openai_like(hub)?;
            body.insert("model".into(), Value::String(target.upstream_model.clone()));
            if stream {
                // Keep any other stream options the client set.
                let options = body
                    .entry("stream_options")
                    .or_insert_with(|| Value::Object(Map::new()));
                match options.as_object_mut() {
                    Some(o) => {
                        o.insert("include_usage".into(), Value::Bool(true));
                    }
                    None => *options = serde_json::json!({"include_usage": true}),
                }
            }
            Ok(UpstreamCall {
                operation: "chat/completions",
                headers: bearer(credential),
                body: encode(&body)?,
            })
        }
        Provider::Anthropic => {
            let body = anthropic::outbound::request_from_hub(
                hub,
                &target.upstream_model,
                DEFAULT_MAX_OUTPUT_TOKENS,
            )?;
            Ok(UpstreamCall {
                operation: "messages",
                headers: vec![
                    ("x-api-key".to_string(), credential.expose().to_string()),
                    (
                        "anthropic-version".to_string(),
                        anthropic::API_VERSION.to_string(),
                    ),
                ],
                body,
            })
        }
        Provider::Mistral => {
            // The Mistral stream always ends with usage; `stream_options` is not sent.
            let body = mistral::request_from_hub(&for_openai_like(hub)?, &target.upstream_model)?;
            Ok(UpstreamCall {
                operation: "chat/completions",
                headers: bearer(credential),
                body,
            })
        }
    }
}

/// The embeddings request for `target`'s provider (OpenAI or Mistral; others have no such API).
pub(super) fn embeddings_call(
    target: &ModelTarget,
    request: &crate::providers::embeddings::EmbeddingsRequest,
    credential: &Secret,
) -> Result<UpstreamCall, GatewayError> {
    use crate::providers::embeddings;
    let body = match target.provider {
        Provider::Mistral => embeddings::mistral_request(request, &target.upstream_model)?,
        Provider::OpenAi => {
            reject_extensions(&request.body)?;
            embeddings::openai_request(request, &target.upstream_model)?
        }
        Provider::Anthropic => {
            return Err(GatewayError::new(
                ErrorKind::UnsupportedOperation,
                format!(
                    "The model `{}` is served by {}, which has no embeddings API; use an embeddings model.",
                    request.model,
                    target.provider.as_str()
                ),
            )
            .with_param("model"))
        }
    };
    Ok(UpstreamCall {
        operation: "embeddings",
        headers: bearer(credential),
        body,
    })
}

/// Max output tokens the request will be sent with, for the budget reservation.
pub(super) fn max_output_tokens(provider: Provider, asked: Option<u64>) -> Option<u64> {
    match provider {
        Provider::Anthropic => Some(asked.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS)),
        _ => asked,
    }
}

pub(super) fn decoder(provider: Provider, created_s: u64) -> Box<dyn UpstreamDecoder> {
    match provider {
        Provider::OpenAi => Box::new(OpenAiDecoder::new()),
        Provider::Mistral => Box::new(MistralDecoder::new()),
        Provider::Anthropic => Box::new(AnthropicDecoder::new(created_s)),
    }
}

/// A provider's full response as a hub `chat.completion` with its usage.
pub(super) fn response_to_hub(
    provider: Provider,
    body: &[u8],
    created_s: u64,
) -> Result<(Value, Option<Usage>), GatewayError> {
    match provider {
        Provider::OpenAi => {
            let hub: Value = serde_json::from_slice(body)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    GatewayError::new(
                        ErrorKind::UpstreamBadResponse,
                        "The upstream provider sent a response that is not a JSON object.",
                    )
                })?;
            let usage = hub.get("usage").and_then(Usage::from_openai);
            Ok((hub, usage))
        }
        Provider::Anthropic => anthropic::outbound::response_to_hub(body, created_s),
        Provider::Mistral => mistral::response_to_hub(body, created_s),
    }
}

/// A provider's error body as (type, message), when it has the provider's shape.
pub(super) fn parse_error(provider: Provider, body: &[u8]) -> Option<(String, String)> {
    match provider {
        Provider::OpenAi => openai::parse_error(body),
        Provider::Mistral => mistral::parse_error(body),
        Provider::Anthropic => anthropic::outbound::parse_error(body),
    }
}

fn bearer(credential: &Secret) -> Vec<(String, String)> {
    vec![(
        "authorization".to_string(),
        ["Bearer ", credential.expose()].concat(),
    )]
}

fn encode(body: &Map<String, Value>) -> Result<Vec<u8>, GatewayError> {
    Ok(crate::json_write::map_to_vec(body))
}

/// The hub as an OpenAI-shaped provider may see it. Of the Anthropic-only marks an Anthropic
/// client's request carries: `cache_control` is removed (OpenAI and Mistral cache prompts on their
/// own; the mark changes cost, never the answer), a tool result's `is_error` becomes an "Error: "
/// prefix on its content (how these models read a failed tool), and anything else (`top_k`) is
/// refused with a 400 naming it.
pub(super) fn for_openai_like(hub: &HubRequest) -> Result<HubRequest, GatewayError> {
    let mut out = hub.clone();
    if let Some(Value::Array(messages)) = out.get_mut("messages") {
        for m in messages.iter_mut().filter_map(Value::as_object_mut) {
            if m.remove(anthropic::EXT_IS_ERROR) == Some(Value::Bool(true)) {
                match m.get_mut("content") {
                    Some(Value::String(text)) => text.insert_str(0, "Error: "),
                    Some(Value::Array(parts)) => {
                        parts.insert(0, serde_json::json!({"type": "text", "text": "Error:"}))
                    }
                    _ => {}
                }
            }
        }
    }
    let mut value = Value::Object(out);
    strip_key(&mut value, anthropic::EXT_CACHE_CONTROL);
    let Value::Object(out) = value else {
        return Err(GatewayError::new(
            ErrorKind::Internal,
            "The hub is not an object.",
        ));
    };
    if let Some(k) = out.keys().find(|k| k.starts_with(anthropic::EXT_PREFIX)) {
        let name = k.trim_start_matches(anthropic::EXT_PREFIX);
        return Err(GatewayError::new(
            ErrorKind::UnsupportedParameter,
            format!(
                "`{name}` is an Anthropic-only parameter and this model is not served by Anthropic; remove it."
            ),
        )
        .with_param(name));
    }
    Ok(out)
}

fn strip_key(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| strip_key(v, key));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_key(v, key)),
        _ => {}
    }
}

/// Hub fields only Anthropic can honour, refused where no translation applies (embeddings).
pub(super) fn reject_extensions(hub: &HubRequest) -> Result<(), GatewayError> {
    for_openai_like(hub).map(|_| ())
}
