//! The audit record written for every request that reaches a tenant. It names who, which model,
//! where and with what outcome; it never holds a key, a secret, a prompt or a completion.

use serde::{Deserialize, Serialize};

use crate::json_view::object_view;

pub const AUDIT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Served in full.
    Ok,
    /// Refused by the gateway (auth, policy, limits, bad input).
    Refused,
    /// Failed upstream or in the gateway.
    Error,
    /// A stream that started but did not finish cleanly.
    Partial,
}

/// Token counts as the upstream reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    /// Tokens written to a provider's prompt cache (Anthropic bills them separately).
    #[serde(default)]
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Reads OpenAI's `usage` object (`prompt_tokens`, `completion_tokens`,
    /// `prompt_tokens_details.cached_tokens`).
    pub fn from_openai(usage: &serde_json::Value) -> Option<Usage> {
        let input = usage.get("prompt_tokens")?.as_u64()?;
        let output = usage.get("completion_tokens")?.as_u64()?;
        let cached = usage
            .pointer("/prompt_tokens_details/cached_tokens")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        Some(Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cache_write_tokens: 0,
        })
    }
}

// An OpenAI reply's `usage` read in place (crate::json_view), without a `Value`: what
// [`Usage::from_openai`] reads, for replies whose counts are plain integers. Any other shape
// fails and the caller reads a `Value` instead, so the two never disagree.
object_view!('a, pub(crate) OpenAiUsage {
    prompt_tokens: u64 = "prompt_tokens",
    completion_tokens: u64 = "completion_tokens",
    prompt_tokens_details: PromptTokensDetails<'a> = "prompt_tokens_details",
});
object_view!('a, PromptTokensDetails { cached_tokens: u64 = "cached_tokens" });

impl OpenAiUsage<'_> {
    pub(crate) fn usage(self) -> Option<Usage> {
        Some(Usage {
            input_tokens: self.prompt_tokens?,
            output_tokens: self.completion_tokens?,
            cached_input_tokens: self
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub schema_version: u32,
    pub request_id: String,
    pub timestamp_ms: u64,
    pub region: String,
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    /// e.g. `chat.completions`, `models.list`.
    pub operation: String,
    pub requested_model: Option<String>,
    pub served_model: Option<String>,
    pub provider: Option<String>,
    pub endpoint_host: Option<String>,
    pub stream: bool,
    pub outcome: Outcome,
    pub status: u16,
    pub error_code: Option<String>,
    pub usage: Option<Usage>,
    pub latency_ms: u64,
    /// SHA-256 of the tenant config in force.
    pub policy_version: Option<String>,
    pub trace_id: String,
}

impl AuditRecord {
    /// A record of `operation` that starts `ok` with nothing else known yet; callers fill in
    /// who, which model and how it ended.
    pub fn started(
        request_id: &str,
        timestamp_ms: u64,
        region: &str,
        operation: String,
        trace_id: &str,
    ) -> Self {
        AuditRecord {
            schema_version: AUDIT_SCHEMA_VERSION,
            request_id: request_id.to_string(),
            timestamp_ms,
            region: region.to_string(),
            tenant_id: None,
            key_id: None,
            operation,
            requested_model: None,
            served_model: None,
            provider: None,
            endpoint_host: None,
            stream: false,
            outcome: Outcome::Ok,
            status: 200,
            error_code: None,
            usage: None,
            latency_ms: 0,
            policy_version: None,
            trace_id: trace_id.to_string(),
        }
    }
}
