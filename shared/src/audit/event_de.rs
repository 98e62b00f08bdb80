//! `Deserialize` for [`AuditEvent`]: one pass over the flat object into a mirror of both halves.
//!
//! `#[serde(flatten)]` reads every value into serde's buffered `Content` before either half picks
//! its fields; inside an operation (an internally tagged enum, buffered again), reading took ~16%
//! of the control plane's samples in the bench, second to storing. The mirror reads each value
//! once. It must keep the halves' rules: the record's
//! fields as declared (a missing `Option` reads as `None`, a missing other field is an error),
//! every detail field defaulting (the detail's `#[serde(default)]`), unknown fields ignored. The
//! conversion names every field of both halves without `..`, so a field added to either half
//! does not compile until it is added here.

use serde::{Deserialize, Deserializer};

use super::{
    AdminNote, Attempt, AuditDetail, AuditEvent, CacheNote, GuardrailDecision, LeaseNote,
    RecordedContent, RefusalsNote,
};
use crate::audit::{AuditRecord, Outcome, Usage};

#[derive(Deserialize)]
struct FlatEvent {
    // AuditRecord
    schema_version: u32,
    request_id: String,
    timestamp_ms: u64,
    region: String,
    tenant_id: Option<String>,
    key_id: Option<String>,
    operation: String,
    requested_model: Option<String>,
    served_model: Option<String>,
    provider: Option<String>,
    endpoint_host: Option<String>,
    stream: bool,
    outcome: Outcome,
    status: u16,
    error_code: Option<String>,
    usage: Option<Usage>,
    latency_ms: u64,
    policy_version: Option<String>,
    trace_id: String,
    // AuditDetail: every field defaults.
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    endpoint_region: Option<String>,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    attempts: Vec<Attempt>,
    #[serde(default)]
    guardrails: Vec<GuardrailDecision>,
    #[serde(default)]
    reserved_usd_micros: Option<u64>,
    #[serde(default)]
    settled_usd_micros: Option<u64>,
    #[serde(default)]
    price_table_version: Option<String>,
    #[serde(default)]
    prompt_sha256: Option<String>,
    #[serde(default)]
    response_sha256: Option<String>,
    #[serde(default)]
    content: Option<RecordedContent>,
    #[serde(default)]
    after_expiry: Option<bool>,
    #[serde(default)]
    cache: Option<CacheNote>,
    #[serde(default)]
    admin: Option<AdminNote>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    ttft_ms: Option<u64>,
    #[serde(default)]
    lease: Option<LeaseNote>,
    #[serde(default)]
    refusals: Option<RefusalsNote>,
}

impl From<FlatEvent> for AuditEvent {
    fn from(f: FlatEvent) -> Self {
        AuditEvent {
            record: AuditRecord {
                schema_version: f.schema_version,
                request_id: f.request_id,
                timestamp_ms: f.timestamp_ms,
                region: f.region,
                tenant_id: f.tenant_id,
                key_id: f.key_id,
                operation: f.operation,
                requested_model: f.requested_model,
                served_model: f.served_model,
                provider: f.provider,
                endpoint_host: f.endpoint_host,
                stream: f.stream,
                outcome: f.outcome,
                status: f.status,
                error_code: f.error_code,
                usage: f.usage,
                latency_ms: f.latency_ms,
                policy_version: f.policy_version,
                trace_id: f.trace_id,
            },
            detail: AuditDetail {
                actor: f.actor,
                endpoint_region: f.endpoint_region,
                route: f.route,
                attempts: f.attempts,
                guardrails: f.guardrails,
                reserved_usd_micros: f.reserved_usd_micros,
                settled_usd_micros: f.settled_usd_micros,
                price_table_version: f.price_table_version,
                prompt_sha256: f.prompt_sha256,
                response_sha256: f.response_sha256,
                content: f.content,
                after_expiry: f.after_expiry,
                cache: f.cache,
                admin: f.admin,
                tags: f.tags,
                ttft_ms: f.ttft_ms,
                lease: f.lease,
                refusals: f.refusals,
            },
        }
    }
}

impl<'de> Deserialize<'de> for AuditEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        FlatEvent::deserialize(deserializer).map(AuditEvent::from)
    }
}
