//! The caller's side of a completion: reading its dialect into the hub, and writing replies,
//! stream events and errors back in that dialect.

use serde_json::{Map, Value};

use crate::audit::Usage;
use crate::error::{ErrorKind, GatewayError};
use crate::host::ByteSource;
use crate::http::Reply;
use crate::providers::openai::OpenAiEncoder;
use crate::providers::stream::ClientEncoder;
use crate::providers::{Dialect, HubRequest};

/// A completion request read into the hub, with what the gateway acts on.
pub(super) struct Parsed {
    pub hub: HubRequest,
    /// The model name the client asked for.
    pub model: String,
    pub stream: bool,
    /// The client wants usage on its stream (always, in Anthropic's dialect).
    pub include_usage: bool,
}

impl Parsed {
    /// `max_completion_tokens` (current) or `max_tokens` (legacy), if set.
    pub fn max_output_tokens(&self) -> Result<Option<u64>, GatewayError> {
        for name in ["max_completion_tokens", "max_tokens"] {
            match self.hub.get(name) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    return v.as_u64().filter(|n| *n >= 1).map(Some).ok_or_else(|| {
                        GatewayError::new(
                            ErrorKind::InvalidRequest,
                            format!("`{name}` must be a positive integer."),
                        )
                        .with_param(name)
                    })
                }
            }
        }
        Ok(None)
    }
}

pub(super) fn parse(dialect: Dialect, body: &[u8]) -> Result<Parsed, GatewayError> {
    match dialect {
        Dialect::OpenAi => parse_openai(body),
        Dialect::Anthropic => Err(GatewayError::new(
            ErrorKind::UnsupportedOperation,
            "The Anthropic dialect is not available yet.",
        )),
    }
}

/// The stream writer for the caller's dialect.
pub(super) fn encoder(
    dialect: Dialect,
    parsed: &Parsed,
    _request_id: &str,
) -> Box<dyn ClientEncoder> {
    match dialect {
        Dialect::OpenAi | Dialect::Anthropic => Box::new(OpenAiEncoder::new(parsed.include_usage)),
    }
}

/// A full (non-streamed) reply body in the caller's dialect, from a hub `chat.completion`.
pub(super) fn full_body(
    dialect: Dialect,
    hub: &Value,
    _usage: Option<Usage>,
    _model: &str,
) -> Result<Vec<u8>, GatewayError> {
    match dialect {
        Dialect::OpenAi | Dialect::Anthropic => serde_json::to_vec(hub).map_err(|_| {
            GatewayError::new(ErrorKind::Internal, "The response could not be re-encoded.")
        }),
    }
}

/// The error reply in the caller's dialect.
pub(super) fn error_reply<S: ByteSource>(dialect: Dialect, err: &GatewayError) -> Reply<S> {
    match dialect {
        Dialect::OpenAi | Dialect::Anthropic => super::error_reply(err),
    }
}

fn parse_openai(bytes: &[u8]) -> Result<Parsed, GatewayError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidJson,
            format!("The request body is not valid JSON ({e})."),
        )
    })?;
    let Value::Object(body) = value else {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "The request body must be a JSON object.",
        ));
    };
    let model = required_model(&body)?;
    match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => {}
        Some(_) => {
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                "`messages` must be a non-empty array.",
            )
            .with_param("messages"))
        }
        None => {
            return Err(GatewayError::new(
                ErrorKind::MissingParameter,
                "Missing required parameter: 'messages'.",
            )
            .with_param("messages"))
        }
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(
                GatewayError::new(ErrorKind::InvalidRequest, "`stream` must be a boolean.")
                    .with_param("stream"),
            )
        }
    };
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Parsed {
        hub: body,
        model,
        stream,
        include_usage,
    })
}

/// `model`: a non-empty string, as OpenAI words the errors.
pub(super) fn required_model(body: &Map<String, Value>) -> Result<String, GatewayError> {
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => Ok(m.clone()),
        Some(_) => Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "`model` must be a non-empty string.",
        )
        .with_param("model")),
        None => Err(GatewayError::new(
            ErrorKind::MissingParameter,
            "You must provide a model parameter.",
        )
        .with_param("model")),
    }
}
