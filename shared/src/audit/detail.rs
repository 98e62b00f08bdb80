//! The audit fields beyond the core record (route and attempts, guardrail decisions, budget
//! amounts, price-table version, content hashes), and [`AuditEvent`]: what the trail chains.
//!
//! `AuditEvent` serializes flat (`#[serde(flatten)]` of [`AuditRecord`] and [`AuditDetail`]), so a
//! chained record is one JSON object. Every detail field defaults, so records written before a
//! field existed still parse, and an absent optional field does not change a record's hash.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::record::AuditRecord;

/// A guardrail's verdict on one request, as counts only (never the matched text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailAction {
    /// Looked, found nothing to act on, or was configured to observe only.
    Allow,
    /// Found something and let the request through, marked.
    Flag,
    /// Replaced what it found before it left the gateway.
    Redact,
    /// Refused the request.
    Block,
}

impl GuardrailAction {
    /// The name as serialized (`allow`, `flag`, `redact`, `block`).
    pub fn as_str(self) -> &'static str {
        match self {
            GuardrailAction::Allow => "allow",
            GuardrailAction::Flag => "flag",
            GuardrailAction::Redact => "redact",
            GuardrailAction::Block => "block",
        }
    }
}

/// One detector's decision: `{detector, action, count}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailDecision {
    /// The detector's name, e.g. `email`, `credit_card`, `custom_pattern`.
    pub detector: String,
    pub action: GuardrailAction,
    /// How many matches the detector found.
    pub count: u32,
    /// `request` or `response`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<String>,
    /// A custom pattern's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The configured mode, when the action differs (a block rule redacts on responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<GuardrailAction>,
}

/// One upstream attempt of a request (a route may try several targets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub provider: String,
    pub endpoint_host: String,
    /// The model name sent upstream.
    pub model: String,
    /// The upstream's HTTP status, if it answered.
    pub status: Option<u16>,
    /// The gateway's error code for this attempt (`upstream_timeout`, ...), if it failed.
    pub error_code: Option<String>,
    pub latency_ms: u64,
}

/// How a request used the response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheOutcome {
    /// Answered from a stored entry; no upstream call.
    Hit,
    /// Looked up (or skipped by `Cache-Control: no-cache`) and sent upstream.
    Miss,
    /// The tenant caches this operation and model, but this request did not use the cache.
    Bypass,
}

/// The response cache's part in a request (absent when the tenant's cache does not cover it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheNote {
    pub outcome: CacheOutcome,
    /// SHA-256 (hex) naming the entry read or written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The response was handed to the region's cache to store (the write happens after the
    /// response; a failed write is logged and never fails the request).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stored: bool,
    /// Why the cache was bypassed or the response not stored: `no_store`, `no_cache`,
    /// `nondeterministic`, `too_large`, `tool_calls`, `not_ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An admin action's part (operations `admin.*`): who acted, with which roles, and what changed.
/// Never a token or a key's secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminNote {
    /// The token's `sub`.
    pub subject: String,
    /// The token's `iss`.
    pub issuer: String,
    /// The roles the token's groups granted, as `role` or `role@tenant`.
    pub roles: Vec<String>,
    /// The config version before and after a change (0: there was none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_after: Option<u64>,
    /// SHA-256 (hex) of the config bytes before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256_after: Option<String>,
    /// SHA-256 (hex) of the change: the canonical JSON of its field-by-field diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_sha256: Option<String>,
    /// The changed paths (`budgets[0].limit_usd_micros`), so a query shows what moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_paths: Vec<String>,
    /// The API key acted on (minted, revoked, rotated), by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key_id: Option<String>,
}

/// Prompt and response text, only when the tenant's policy asks for it, after redaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedContent {
    pub prompt: Option<String>,
    pub response: Option<String>,
    /// Which redaction policy produced this text (its version or hash).
    pub redaction_policy: Option<String>,
}

/// The issue's audit fields that today's pipeline does not fill yet. Every field defaults, so
/// records written before a feature existed parse, and the pipeline can fill them one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditDetail {
    /// Who acted: `key:<key_id>` for API requests, `operator:<name>` for admin and config changes.
    pub actor: Option<String>,
    /// The region the upstream endpoint serves (which may differ from the gateway's `region`).
    pub endpoint_region: Option<String>,
    /// The route that chose the target, when routes exist.
    pub route: Option<String>,
    /// Every upstream attempt in order; empty when the request never left the gateway.
    pub attempts: Vec<Attempt>,
    pub guardrails: Vec<GuardrailDecision>,
    /// Budget reserved before the call, in micro-USD (1 USD = 1,000,000).
    pub reserved_usd_micros: Option<u64>,
    /// Cost settled after the call, in micro-USD.
    pub settled_usd_micros: Option<u64>,
    /// Version (effective date or hash) of the price table that priced this request.
    pub price_table_version: Option<String>,
    /// SHA-256 (lowercase hex) of the request body as received: see [`content_sha256`].
    pub prompt_sha256: Option<String>,
    /// SHA-256 (lowercase hex) of the response body as sent to the client.
    pub response_sha256: Option<String>,
    /// Redacted content, only when the tenant's policy asks for it.
    pub content: Option<RecordedContent>,
    /// Set on a final record that arrived after the request had been given up on (its opening
    /// record was chained as `partial` and its reservation charged in full at expiry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_expiry: Option<bool>,
    /// The response cache's part, when the tenant's cache covers the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheNote>,
    /// An admin action's part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminNote>,
    /// The calling key's business-unit tags (budgets and analytics by tag).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A stream's time to its first relayed byte, from the request's start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// The admission lease a request was served under, or on a lease's own record how it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseNote>,
    /// On a record of refusals before any tenant was known: how many there were, when, from
    /// where, with which key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusals: Option<RefusalsNote>,
}

/// Refusals before a tenant was known (no key, a malformed or unknown key, another region's
/// host or tenant), counted per isolate over a short window and recorded as one record per
/// group: same operation, error code, client address and key. The record's own fields are the
/// first attempt's (`request_id`, `timestamp_ms`, `trace_id`); `count` includes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefusalsNote {
    pub count: u64,
    pub first_ms: u64,
    pub last_ms: u64,
    /// The client's address as the platform reported it (Cloudflare's `CF-Connecting-IP`,
    /// Spin's `spin-client-addr`); `None` when it reported none or the group was merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The first 16 hex digits of a well-formed key's lookup hash (HMAC-SHA256 under the
    /// deployment's key-hashing secret): repeated attempts with one key match, and the key
    /// cannot be recovered from it. `None` when no well-formed key was presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_hash_prefix: Option<String>,
    /// Attempts past the isolate's group limit for the window, counted by operation and code
    /// only (client and key not kept), so a flood of distinct keys costs a bounded number of
    /// records.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub merged: bool,
}

/// A request admitted under a lease names it (`id` only); a lease's own record (operation
/// `lease`) says how many requests it was granted, how many its isolate said it admitted, and
/// how many records arrived: a verifier counts the records naming the lease against `reported`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaseNote {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted: Option<u64>,
    /// `None` on a lease record: its isolate never said (it did not close the lease).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admitted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported: Option<u64>,
}

/// One audit record as the ledger chains it: the pipeline's [`AuditRecord`] plus
/// [`AuditDetail`], serialized as one flat JSON object. Read back field by field
/// (`event_de.rs`), not through `flatten`, which buffers every value first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    #[serde(flatten)]
    pub record: AuditRecord,
    #[serde(flatten)]
    pub detail: AuditDetail,
}

impl From<AuditRecord> for AuditEvent {
    fn from(record: AuditRecord) -> Self {
        AuditEvent {
            record,
            detail: AuditDetail::default(),
        }
    }
}

/// SHA-256 of content bytes as lowercase hex: what `prompt_sha256` and `response_sha256` hold.
pub fn content_sha256(bytes: &[u8]) -> String {
    crate::hexstr::encode(&Sha256::digest(bytes))
}

#[path = "event_de.rs"]
mod event_de;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Outcome, AUDIT_SCHEMA_VERSION};

    pub(crate) fn record() -> AuditRecord {
        AuditRecord {
            schema_version: AUDIT_SCHEMA_VERSION,
            request_id: "req_1".into(),
            timestamp_ms: 1_700_000_000_000,
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
            usage: None,
            latency_ms: 42,
            policy_version: Some("abc".into()),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        }
    }

    #[test]
    fn guardrail_action_names_are_their_serialized_names() {
        for a in [
            GuardrailAction::Allow,
            GuardrailAction::Flag,
            GuardrailAction::Redact,
            GuardrailAction::Block,
        ] {
            assert_eq!(
                serde_json::to_string(&a).expect("serializes"),
                format!("\"{}\"", a.as_str())
            );
        }
    }

    #[test]
    fn event_serializes_flat_and_reads_records_without_detail() {
        let event = AuditEvent::from(record());
        let json = serde_json::to_value(&event).expect("serializes");
        let obj = json.as_object().expect("an object");
        // One level: the record's fields and the detail's fields side by side.
        assert_eq!(obj["tenant_id"], "acme");
        assert_eq!(obj["attempts"], serde_json::json!([]));
        assert!(obj.contains_key("settled_usd_micros"));
        assert!(!obj.contains_key("record") && !obj.contains_key("detail"));

        // A record serialized by today's pipeline (no detail fields) reads as an event.
        let plain = serde_json::to_vec(&record()).expect("serializes");
        let back: AuditEvent = serde_json::from_slice(&plain).expect("parses");
        assert_eq!(back, event);
    }

    /// An event with every field of both halves set (no `None`, no empty list), so a field the
    /// reader drops or misnames fails the round trip.
    fn full_event() -> AuditEvent {
        let mut e = AuditEvent::from(record());
        e.record.error_code = Some("upstream_timeout".into());
        e.record.stream = true;
        e.record.usage = Some(crate::audit::Usage {
            input_tokens: 12,
            output_tokens: 3,
            cached_input_tokens: 4,
            cache_write_tokens: 5,
        });
        e.detail = AuditDetail {
            actor: Some("key:k_1".into()),
            endpoint_region: Some("eu".into()),
            route: Some("fast".into()),
            attempts: vec![Attempt {
                provider: "openai".into(),
                endpoint_host: "eu.api.openai.com".into(),
                model: "gpt-4o-mini".into(),
                status: Some(504),
                error_code: Some("upstream_timeout".into()),
                latency_ms: 30_000,
            }],
            guardrails: vec![GuardrailDecision {
                detector: "email".into(),
                action: GuardrailAction::Redact,
                count: 2,
                side: Some("request".into()),
                pattern: Some("mrn".into()),
                mode: Some(GuardrailAction::Block),
            }],
            reserved_usd_micros: Some(900),
            settled_usd_micros: Some(80),
            price_table_version: Some("2026-01-01".into()),
            prompt_sha256: Some("a".repeat(64)),
            response_sha256: Some("b".repeat(64)),
            content: Some(RecordedContent {
                prompt: Some("hi [EMAIL]".into()),
                response: Some("hello".into()),
                redaction_policy: Some("v1".into()),
            }),
            after_expiry: Some(true),
            cache: Some(CacheNote {
                outcome: CacheOutcome::Miss,
                key: Some("c".repeat(64)),
                stored: true,
                reason: Some("no_cache".into()),
            }),
            admin: Some(AdminNote {
                subject: "alice".into(),
                issuer: "https://login.example.com".into(),
                roles: vec!["admin@acme".into()],
                version_before: Some(3),
                version_after: Some(4),
                config_sha256_before: Some("d".repeat(64)),
                config_sha256_after: Some("e".repeat(64)),
                change_sha256: Some("f".repeat(64)),
                changed_paths: vec!["budgets[0].limit_usd_micros".into()],
                target_key_id: Some("k_2".into()),
            }),
            tags: vec!["bu:research".into()],
            ttft_ms: Some(120),
            lease: Some(LeaseNote {
                id: "lease_1".into(),
                granted: Some(64),
                admitted: Some(60),
                reported: Some(60),
            }),
            refusals: Some(RefusalsNote {
                count: 7,
                first_ms: 1_000,
                last_ms: 2_500,
                client: Some("203.0.113.7".into()),
                key_hash_prefix: Some("0123456789abcdef".into()),
                merged: true,
            }),
        };
        e
    }

    #[test]
    fn every_field_of_an_event_survives_its_json() {
        let event = full_event();
        let text = serde_json::to_string(&event).expect("serializes");
        let back: AuditEvent = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, event);
        // Inside an operation, where serde buffers values before reading them.
        let wrapped = format!(r#"{{"later":1,"record":{text}}}"#);
        #[derive(Deserialize)]
        struct Holder {
            record: AuditEvent,
        }
        let held: Holder = serde_json::from_str(&wrapped).expect("parses");
        assert_eq!(held.record, event);
        let via_value: AuditEvent =
            serde_json::from_value(serde_json::from_str(&text).expect("json")).expect("parses");
        assert_eq!(via_value, event);
    }

    #[test]
    fn an_event_needs_the_records_fields_and_ignores_unknown_ones() {
        let mut obj = serde_json::to_value(full_event()).expect("serializes");
        obj["a_field_from_a_later_version"] = serde_json::json!({"x": [1, 2]});
        let back: AuditEvent = serde_json::from_value(obj.clone()).expect("parses");
        assert_eq!(back, full_event());

        // A missing Option of the record reads as None (as the derived reader did).
        let mut no_model = obj.clone();
        no_model
            .as_object_mut()
            .expect("object")
            .remove("served_model");
        let back: AuditEvent = serde_json::from_value(no_model).expect("parses");
        assert_eq!(back.record.served_model, None);

        // A missing required field of the record is an error that names it.
        let mut no_id = obj.clone();
        no_id.as_object_mut().expect("object").remove("request_id");
        let err = serde_json::from_value::<AuditEvent>(no_id).expect_err("refused");
        assert!(err.to_string().contains("request_id"), "{err}");

        // A field given twice is refused, not silently overwritten.
        let text = serde_json::to_string(&full_event()).expect("serializes");
        let twice = format!(r#"{{"status":500,{}"#, &text[1..]);
        let err = serde_json::from_str::<AuditEvent>(&twice).expect_err("refused");
        assert!(
            err.to_string().contains("duplicate field `status`"),
            "{err}"
        );

        // A wrong type is an error, not a default.
        let mut bad = obj;
        bad["settled_usd_micros"] = serde_json::json!("eighty");
        assert!(serde_json::from_value::<AuditEvent>(bad).is_err());
    }

    #[test]
    fn content_hash_is_sha256_hex() {
        // FIPS 180-2 example: SHA-256("abc").
        assert_eq!(
            content_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
