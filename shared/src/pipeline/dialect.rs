//! The caller's side of a completion: reading its dialect into the hub, and writing replies,
//! stream events and errors back in that dialect.

use serde_json::Value;

use crate::audit::Usage;
use crate::error::{ErrorKind, GatewayError};
use crate::host::ByteSource;
use crate::pipeline::http::Reply;
use crate::providers::anthropic::{self, inbound::AnthropicEncoder};
use crate::providers::openai::{self, OpenAiEncoder};
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

    /// The field that holds the output limit, as the client wrote it (for errors naming it).
    pub fn output_field(&self) -> &'static str {
        match self.hub.get("max_completion_tokens") {
            None | Some(Value::Null) => "max_tokens",
            Some(_) => "max_completion_tokens",
        }
    }

    /// How many choices the client asks for (`n`, 1 by default): each may use the whole output
    /// allowance and is billed, so the worst case the budget reserves is this many times it.
    pub fn choices(&self) -> Result<u64, GatewayError> {
        match self.hub.get("n") {
            None | Some(Value::Null) => Ok(1),
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_CHOICES).contains(n))
                .ok_or_else(|| {
                    GatewayError::invalid_request(
                        "n",
                        format!("`n` must be an integer from 1 to {MAX_CHOICES}."),
                    )
                }),
        }
    }
}

/// The most choices one request may ask for: a ceiling that keeps the worst case a budget reserves
/// (choices x output limit x price) far from overflowing anything.
pub const MAX_CHOICES: u64 = 128;

/// Names the field the client used in an error about the output limit (admission only sees the
/// number, and says `max_tokens`).
pub(super) fn name_output_field(mut err: GatewayError, field: &'static str) -> GatewayError {
    if field != "max_tokens" && err.param.as_deref() == Some("max_tokens") {
        err.message = err.message.replacen("max_tokens", field, 1);
        err.param = Some(field.to_string());
    }
    err
}

/// Headers that change what a dialect's request means. Anthropic's `anthropic-version` is a date;
/// newer SDKs send newer dates (the field notes warn about it). The mapper validates the body
/// itself, refusing any field it does not implement, so any well-formed version is accepted and
/// the upstream is always called with the version the mapper writes. `anthropic-beta` switches
/// on features the hub cannot carry, so it is refused rather than ignored.
pub(super) fn check_headers(
    dialect: Dialect,
    version: Option<&str>,
    beta: Option<&str>,
) -> Result<(), GatewayError> {
    if dialect != Dialect::Anthropic {
        return Ok(());
    }
    if let Some(v) = version {
        let v = v.trim();
        let well_formed = v.len() == 10
            && v.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !well_formed || v < "2023-01-01" {
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "anthropic-version {v:?} is not a supported version (a date such as {}).",
                    anthropic::API_VERSION
                ),
            )
            .with_param("anthropic-version"));
        }
    }
    if let Some(b) = beta.filter(|b| !b.trim().is_empty()) {
        return Err(GatewayError::new(
            ErrorKind::UnsupportedParameter,
            format!("Beta features ({b}) are not supported through ASC; remove the anthropic-beta header."),
        )
        .with_param("anthropic-beta"));
    }
    Ok(())
}

pub(super) fn parse(dialect: Dialect, body: &[u8]) -> Result<Parsed, GatewayError> {
    match dialect {
        Dialect::OpenAi => {
            let r = openai::parse_chat_request(body)?;
            Ok(Parsed {
                hub: r.hub,
                model: r.model,
                stream: r.stream,
                include_usage: r.include_usage,
            })
        }
        Dialect::Anthropic => {
            let r = anthropic::inbound::request_to_hub(body)?;
            Ok(Parsed {
                hub: r.hub,
                model: r.model,
                stream: r.stream,
                // Anthropic's stream always reports usage.
                include_usage: true,
            })
        }
    }
}

/// The stream writer for the caller's dialect.
pub(super) fn encoder(
    dialect: Dialect,
    parsed: &Parsed,
    request_id: &str,
) -> Box<dyn ClientEncoder> {
    match dialect {
        Dialect::OpenAi => Box::new(OpenAiEncoder::new(parsed.include_usage)),
        Dialect::Anthropic => Box::new(AnthropicEncoder::new(
            &parsed.model,
            format!("msg_{}", request_id.trim_start_matches("req_")),
        )),
    }
}

/// A full (non-streamed) reply body in the caller's dialect, from a hub `chat.completion`.
pub(super) fn full_body(
    dialect: Dialect,
    hub: &Value,
    usage: Option<Usage>,
    model: &str,
) -> Result<Vec<u8>, GatewayError> {
    match dialect {
        Dialect::OpenAi => Ok(crate::json_write::to_vec(hub)),
        Dialect::Anthropic => anthropic::inbound::response_from_hub(hub, usage, model),
    }
}

/// The error reply in the caller's dialect.
pub(super) fn error_reply<S: ByteSource>(dialect: Dialect, err: &GatewayError) -> Reply<S> {
    match dialect {
        Dialect::OpenAi => super::error_reply(err),
        Dialect::Anthropic => {
            let mut reply = super::error_reply(err);
            reply.body =
                crate::pipeline::http::ReplyBody::Full(anthropic::inbound::error_body(err));
            reply
        }
    }
}
