//! Anthropic's Messages API, both as an inbound dialect and as an upstream provider.
//!
//! - [`inbound`]: an Anthropic client calls `POST /v1/messages`; its request is read into a hub
//!   request and the hub response (or stream) is written back as an Anthropic `message` (or
//!   Anthropic SSE events).
//! - [`outbound`]: a hub request is written as an Anthropic Messages request for an Anthropic
//!   upstream; its `message` (or SSE events) is read back into the hub.
//!
//! Fields only an Anthropic upstream can honour (`top_k`, `cache_control`, a tool result's
//! `is_error`) travel in the hub under keys prefixed [`EXT_PREFIX`]; the Anthropic outbound
//! mapper restores them. For other providers `cache_control` is removed (a cost hint, never the
//! answer), `is_error` becomes an `Error: ` prefix on the tool result, and anything else (`top_k`)
//! is refused (`unsupported_parameter`): `pipeline::provider::for_openai_like`.
//!
//! Usage: Anthropic's `input_tokens` excludes prompt-cache reads and writes; OpenAI's
//! `prompt_tokens` includes cached tokens. [`Usage::input_tokens`] follows OpenAI (the whole
//! prompt), with `cached_input_tokens` = cache reads and `cache_write_tokens` = cache writes.

mod decoder;
mod encoder;
mod from_hub;
pub mod inbound;
pub mod outbound;
mod to_hub;

use serde_json::{json, Value};

use crate::audit::Usage;
use crate::error::{ErrorKind, GatewayError};

/// The `anthropic-version` ASC speaks, upstream and to clients.
pub const API_VERSION: &str = "2023-06-01";

/// Hub keys carrying Anthropic-only fields start with this.
pub const EXT_PREFIX: &str = "x_anthropic_";
/// Hub request key: Anthropic's `top_k`.
pub const EXT_TOP_K: &str = "x_anthropic_top_k";
/// Key inside a hub content part, tool, tool call or tool message: Anthropic's `cache_control`.
pub const EXT_CACHE_CONTROL: &str = "x_anthropic_cache_control";
/// Key on a hub `tool` message: Anthropic's `tool_result.is_error`. Other providers' mappers
/// should say so in the tool message's text rather than drop it.
pub const EXT_IS_ERROR: &str = "x_anthropic_is_error";
/// Key on a hub response choice (or stream chunk choice): the stop sequence Anthropic matched.
pub const EXT_STOP_SEQUENCE: &str = "x_anthropic_stop_sequence";

/// Anthropic `stop_reason` -> OpenAI `finish_reason`.
///
/// `pause_turn` only happens with server tools, which ASC refuses; it is mapped to `stop` (the
/// turn ended without a tool call for the client to run). `model_context_window_exceeded` is a
/// length limit. An unknown reason maps to `stop`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn, and anything new.
        _ => "stop",
    }
}

/// OpenAI `finish_reason` -> Anthropic `stop_reason`. `stop` becomes `stop_sequence` when the
/// matched sequence is known.
pub fn stop_reason(finish_reason: &str, stop_sequence_matched: bool) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ if stop_sequence_matched => "stop_sequence",
        _ => "end_turn",
    }
}

/// Anthropic's `usage` object -> [`Usage`] (input = uncached + cache reads + cache writes).
pub fn usage_from_anthropic(usage: &Value) -> Usage {
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    let read = n("cache_read_input_tokens");
    let write = n("cache_creation_input_tokens");
    Usage {
        input_tokens: n("input_tokens") + read + write,
        output_tokens: n("output_tokens"),
        cached_input_tokens: read,
        cache_write_tokens: write,
    }
}

/// [`Usage`] -> Anthropic's `usage` object (input_tokens without cache reads and writes).
pub fn usage_to_anthropic(u: &Usage) -> Value {
    json!({
        "input_tokens": u
            .input_tokens
            .saturating_sub(u.cached_input_tokens)
            .saturating_sub(u.cache_write_tokens),
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cached_input_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
    })
}

/// [`Usage`] -> OpenAI's `usage` object (prompt tokens include cached ones).
pub fn usage_to_openai(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": { "cached_tokens": u.cached_input_tokens },
    })
}

/// The Anthropic `error.type` for a status, as Anthropic's errors page lists them (other 4xx
/// are `invalid_request_error` there too).
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// What an Anthropic upstream error means for ASC. `status` is the HTTP status when there is
/// one (`None` for an `error` event inside a stream).
pub fn error_kind(status: Option<u16>, error_type: &str) -> ErrorKind {
    match error_type {
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "request_too_large" => ErrorKind::BodyTooLarge,
        "authentication_error" | "permission_error" => ErrorKind::UpstreamAuth,
        "not_found_error" => ErrorKind::ModelNotFound,
        "rate_limit_error" => ErrorKind::UpstreamRateLimited,
        "timeout_error" => ErrorKind::UpstreamTimeout,
        "overloaded_error" | "api_error" => ErrorKind::UpstreamError,
        _ => match status {
            Some(429) => ErrorKind::UpstreamRateLimited,
            Some(401 | 403) => ErrorKind::UpstreamAuth,
            Some(s) if (400..500).contains(&s) => ErrorKind::InvalidRequest,
            _ => ErrorKind::UpstreamError,
        },
    }
}

/// An Anthropic upstream's error response -> the gateway error the client sees.
pub fn upstream_error(status: u16, body: &[u8]) -> GatewayError {
    match outbound::parse_error(body) {
        Some((ty, message)) => GatewayError::new(
            error_kind(Some(status), &ty),
            format!("anthropic {ty}: {message}"),
        ),
        None => GatewayError::new(
            error_kind(Some(status), ""),
            format!("anthropic answered {status} without an error body"),
        ),
    }
}

#[cfg(test)]
mod tests;
