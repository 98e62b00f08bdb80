//! The upstream's side of a completion: the request each provider expects (path, headers, body)
//! written from the hub, and its reply read back into the hub.

use serde_json::{Map, Value};

use crate::audit::Usage;
use crate::config::ModelTarget;
use crate::error::{ErrorKind, GatewayError};
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
            reject_extensions(hub)?;
            let mut body = hub.clone();
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
        Provider::Anthropic | Provider::Mistral => Err(unsupported(target.provider)),
    }
}

/// Max output tokens the request will be sent with, for the budget reservation.
pub(super) fn max_output_tokens(provider: Provider, asked: Option<u64>) -> Option<u64> {
    match provider {
        Provider::Anthropic => Some(asked.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS)),
        _ => asked,
    }
}

pub(super) fn decoder(provider: Provider, _created_s: u64) -> Box<dyn UpstreamDecoder> {
    match provider {
        Provider::OpenAi | Provider::Anthropic | Provider::Mistral => {
            Box::new(OpenAiDecoder::new())
        }
    }
}

/// A provider's full response as a hub `chat.completion` with its usage.
pub(super) fn response_to_hub(
    provider: Provider,
    body: &[u8],
    _created_s: u64,
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
        Provider::Anthropic | Provider::Mistral => Err(unsupported(provider)),
    }
}

/// A provider's error body as (type, message), when it has the provider's shape.
pub(super) fn parse_error(provider: Provider, body: &[u8]) -> Option<(String, String)> {
    match provider {
        Provider::OpenAi | Provider::Anthropic | Provider::Mistral => openai::parse_error(body),
    }
}

fn bearer(credential: &Secret) -> Vec<(String, String)> {
    vec![(
        "authorization".to_string(),
        format!("Bearer {}", credential.expose()),
    )]
}

fn encode(body: &Map<String, Value>) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(body)
        .map_err(|_| GatewayError::new(ErrorKind::Internal, "The request could not be re-encoded."))
}

fn unsupported(provider: Provider) -> GatewayError {
    GatewayError::new(
        ErrorKind::UnsupportedOperation,
        format!("Provider {} is not available yet.", provider.as_str()),
    )
}

/// Hub fields only Anthropic can honour (`x_anthropic_*`), refused for other providers.
pub(super) fn reject_extensions(hub: &HubRequest) -> Result<(), GatewayError> {
    match hub.keys().find(|k| k.starts_with("x_anthropic_")) {
        Some(k) => Err(GatewayError::new(
            ErrorKind::UnsupportedParameter,
            format!(
                "`{}` is an Anthropic-only parameter and this model is not served by Anthropic; remove it.",
                k.trim_start_matches("x_anthropic_")
            ),
        )
        .with_param(k.trim_start_matches("x_anthropic_"))),
        None => Ok(()),
    }
}
