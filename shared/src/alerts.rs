//! Alerts: events a platform team is told about through its tenant's webhooks (budget thresholds
//! crossed, a soft budget exceeded, a circuit opened or closed, an error-rate spike), and the
//! signed delivery format.
//!
//! Delivery follows the Standard Webhooks specification (standardwebhooks.com): headers
//! `webhook-id` (the event's id, the same on every retry, so a receiver drops duplicates),
//! `webhook-timestamp` (seconds) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 over
//! `id.timestamp.body`, keyed with the secret's bytes: a `whsec_` secret is base64 after the
//! prefix). Any Standard Webhooks library verifies them.

use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// A budget's settled spend reached one of its `alert_at_percent` thresholds.
    #[serde(rename = "budget.threshold")]
    BudgetThreshold,
    /// A soft budget's spend went past its limit (requests are still served).
    #[serde(rename = "budget.soft_exceeded")]
    BudgetSoftExceeded,
    #[serde(rename = "circuit.opened")]
    CircuitOpened,
    #[serde(rename = "circuit.closed")]
    CircuitClosed,
    /// The share of failed requests in a window reached the tenant's threshold.
    #[serde(rename = "error_rate.spike")]
    ErrorRateSpike,
}

pub const ALERT_KINDS: &[AlertKind] = &[
    AlertKind::BudgetThreshold,
    AlertKind::BudgetSoftExceeded,
    AlertKind::CircuitOpened,
    AlertKind::CircuitClosed,
    AlertKind::ErrorRateSpike,
];

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BudgetThreshold => "budget.threshold",
            AlertKind::BudgetSoftExceeded => "budget.soft_exceeded",
            AlertKind::CircuitOpened => "circuit.opened",
            AlertKind::CircuitClosed => "circuit.closed",
            AlertKind::ErrorRateSpike => "error_rate.spike",
        }
    }

    pub fn parse(name: &str) -> Option<AlertKind> {
        ALERT_KINDS.iter().copied().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event. Its `id` is derived from what happened (the budget, its period and the threshold;
/// the target and the time its circuit opened; the window), so every shard or isolate that sees
/// the same event names it the same way and it is raised once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: AlertKind,
    pub tenant_id: String,
    pub at_ms: u64,
    /// What the receiver needs to act: ids, figures, never prompt text or secrets.
    pub detail: serde_json::Value,
}

impl AlertEvent {
    /// The webhook body: Standard Webhooks' `{type, timestamp, data}` envelope.
    pub fn payload(&self) -> Vec<u8> {
        let timestamp = chrono::DateTime::from_timestamp_millis(self.at_ms as i64)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        serde_json::json!({
            "type": self.kind.as_str(),
            "timestamp": timestamp,
            "data": {
                "id": self.id,
                "tenant_id": self.tenant_id,
                "detail": self.detail,
            },
        })
        .to_string()
        .into_bytes()
    }
}

/// The key bytes of a webhook secret: a `whsec_` secret is base64 after the prefix (what Standard
/// Webhooks libraries generate and expect); any other value is used as it is.
fn key_bytes(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_else(|_| secret.as_bytes().to_vec()),
        None => secret.as_bytes().to_vec(),
    }
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp_s}.{body}")>`.
pub fn signature(secret: &str, id: &str, timestamp_s: u64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key_bytes(secret)) else {
        // HMAC takes keys of any length; this branch cannot be reached.
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// The headers of one delivery attempt (besides `content-type`).
pub fn delivery_headers(
    secret: &str,
    event: &AlertEvent,
    body: &[u8],
    now_ms: u64,
) -> Vec<(String, String)> {
    let ts = now_ms / 1000;
    vec![
        ("content-type".into(), "application/json".into()),
        ("webhook-id".into(), event.id.clone()),
        ("webhook-timestamp".into(), ts.to_string()),
        (
            "webhook-signature".into(),
            signature(secret, &event.id, ts, body),
        ),
        (
            "user-agent".into(),
            concat!("asc/", env!("CARGO_PKG_VERSION")).into(),
        ),
    ]
}

/// How long to wait before retrying a failed delivery (attempt 1 = the first retry): 2 s, 4 s,
/// 8 s ... capped at 10 minutes. After [`MAX_DELIVERY_ATTEMPTS`] the event is marked failed.
pub fn retry_delay_ms(attempt: u32) -> u64 {
    2_000u64
        .saturating_mul(1u64 << attempt.clamp(1, 16).saturating_sub(1))
        .min(600_000)
}

pub const MAX_DELIVERY_ATTEMPTS: u32 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_reference_vector() {
        // The specification's example (standard-webhooks spec.md, "Signature scheme"): secret
        // whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek,
        // timestamp 1614265330, body {"test": 2432232314}.
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for k in ALERT_KINDS {
            assert_eq!(AlertKind::parse(k.as_str()), Some(*k));
            let json = serde_json::to_string(k).expect("serializes");
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(AlertKind::parse("budget"), None);
    }

    #[test]
    fn retries_back_off_and_cap() {
        assert_eq!(retry_delay_ms(1), 2_000);
        assert_eq!(retry_delay_ms(2), 4_000);
        assert_eq!(retry_delay_ms(3), 8_000);
        assert_eq!(retry_delay_ms(30), 600_000);
    }
}
