//! Builders shared by the ledger's unit tests.

use crate::audit::keys::{key_pair, PublicKeyring, SigningKeyring, Validity};
use crate::audit::{AuditEvent, AuditRecord, Outcome, Usage, AUDIT_SCHEMA_VERSION};

/// A plausible record, distinct per `n`.
pub(crate) fn event(n: u64) -> AuditEvent {
    let mut event = AuditEvent::from(AuditRecord {
        schema_version: AUDIT_SCHEMA_VERSION,
        request_id: format!("req_{n}"),
        timestamp_ms: 1_700_000_000_000 + n * 1000,
        region: "eu".into(),
        tenant_id: Some(["acme", "globex"][n as usize % 2].into()),
        key_id: Some(format!("k_{}", n % 3)),
        operation: "chat.completions".into(),
        requested_model: Some("gpt-4o-mini".into()),
        served_model: Some("gpt-4o-mini-2024-07-18".into()),
        provider: Some("openai".into()),
        endpoint_host: Some("eu.api.openai.com".into()),
        stream: n.is_multiple_of(4),
        outcome: Outcome::Ok,
        status: 200,
        error_code: None,
        usage: Some(Usage {
            input_tokens: 10 + n,
            output_tokens: 20 + n,
            ..Usage::default()
        }),
        latency_ms: 40 + n,
        policy_version: Some("cfg-1".into()),
        trace_id: format!("{n:032x}"),
    });
    event.detail.prompt_sha256 = Some(crate::audit::content_sha256(&n.to_le_bytes()));
    event.detail.settled_usd_micros = Some(n * 7);
    event
}

/// One signing key `k1` valid from 0 on, and the matching public keyring.
pub(crate) fn keys() -> (SigningKeyring, PublicKeyring) {
    let always = Validity {
        not_before_ms: 0,
        not_after_ms: None,
    };
    let (spec, public) = key_pair("k1", &[42; 32], always).expect("valid key");
    (
        SigningKeyring::from_specs(&[spec]).expect("ring"),
        PublicKeyring::from_entries(&[public]).expect("keys"),
    )
}
