//! A realistic audit record, shared by the benches (each bench is its own crate).

use asc_core::audit::{AuditEvent, AuditRecord, Outcome, Usage, AUDIT_SCHEMA_VERSION};

/// A finished chat completion's record, distinct per `n`.
pub fn record(n: u64) -> AuditEvent {
    let mut e = AuditEvent::from(AuditRecord {
        schema_version: AUDIT_SCHEMA_VERSION,
        request_id: format!("req_{n:024x}"),
        timestamp_ms: 1_767_225_600_000 + n,
        region: "eu".into(),
        tenant_id: Some("acme".into()),
        key_id: Some("k_1".into()),
        operation: "chat.completions".into(),
        requested_model: Some("gpt-4o-mini".into()),
        served_model: Some("gpt-4o-mini-2024-07-18".into()),
        provider: Some("openai".into()),
        endpoint_host: Some("eu.api.openai.com".into()),
        stream: false,
        outcome: Outcome::Ok,
        status: 200,
        error_code: None,
        usage: Some(Usage {
            input_tokens: 412,
            output_tokens: 64,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
        }),
        latency_ms: 312,
        policy_version: Some("4b1d".into()),
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
    });
    e.detail.prompt_sha256 =
        Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into());
    e.detail.response_sha256 =
        Some("60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752".into());
    e.detail.settled_usd_micros = Some(80);
    e
}
