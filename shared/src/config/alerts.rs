//! A tenant's alerting (`alerts`: webhooks and the error-rate rule) and telemetry (`telemetry`)
//! settings. Webhook URLs are checked against the deployment's region when they are used (the
//! egress gate) and when the admin plane stores a config.

use std::collections::BTreeSet;

use serde_json::Value;
use url::Url;

use crate::alerts::{AlertKind, ALERT_KINDS};
use crate::ids::is_valid_id;
use crate::secret::SecretRef;
use crate::validate::{field_path, integer, object, required, string, ConfigErrors};

pub const ALERTS_FIELDS: &[&str] = &["webhooks", "error_rate"];
pub const WEBHOOK_FIELDS: &[&str] = &["id", "url", "secret", "events"];
pub const ERROR_RATE_FIELDS: &[&str] = &["percent", "min_requests", "window_seconds"];
pub const TELEMETRY_FIELDS: &[&str] = &["export", "content_hashes"];

/// Most webhooks a tenant may have: each event is sent to each subscribed one.
pub const MAX_WEBHOOKS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub url: Url,
    /// The secret (a Worker secret / Spin variable) that signs deliveries.
    pub secret: SecretRef,
    pub events: BTreeSet<AlertKind>,
}

/// Raise `error_rate.spike` when, in a window, at least `min_requests` ended and `percent` of
/// them failed (outcome `error`: upstream failures and gateway faults, not the client's own
/// mistakes or refusals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorRateRule {
    pub percent: u8,
    pub min_requests: u64,
    pub window_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertPolicy {
    pub webhooks: Vec<Webhook>,
    pub error_rate: Option<ErrorRateRule>,
}

impl AlertPolicy {
    /// The webhooks subscribed to `kind`.
    pub fn subscribers(&self, kind: AlertKind) -> impl Iterator<Item = &Webhook> {
        self.webhooks
            .iter()
            .filter(move |w| w.events.contains(&kind))
    }
}

/// What the execution records exported for this tenant may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelemetryPolicy {
    /// Export this tenant's requests to the region's collector (default true when one is set).
    pub export: bool,
    /// Add the SHA-256 of the request and response bodies to spans (default false; never text).
    pub content_hashes: bool,
}

impl Default for TelemetryPolicy {
    fn default() -> Self {
        TelemetryPolicy {
            export: true,
            content_hashes: false,
        }
    }
}

pub(super) fn alert_policy(value: &Value, errs: &mut ConfigErrors) -> Option<AlertPolicy> {
    let path = "alerts";
    let map = object(value, path, ALERTS_FIELDS, errs)?;
    let before = errs.0.len();
    let mut webhooks = Vec::new();
    if let Some(list) = map.get("webhooks") {
        let wpath = field_path(path, "webhooks");
        match list.as_array() {
            None => errs.push(&wpath, "must be a list of webhooks"),
            Some(items) if items.len() > MAX_WEBHOOKS => {
                errs.push(&wpath, format!("at most {MAX_WEBHOOKS} webhooks"))
            }
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(w) = webhook(item, &format!("{wpath}[{i}]"), errs) {
                        if webhooks.iter().any(|o: &Webhook| o.id == w.id) {
                            errs.push(
                                format!("{wpath}[{i}].id"),
                                format!("{:?} is used by another webhook", w.id),
                            );
                        }
                        webhooks.push(w);
                    }
                }
            }
        }
    }
    let error_rate = match map.get("error_rate") {
        Some(v) => error_rate(v, &field_path(path, "error_rate"), errs),
        None => None,
    };
    (errs.0.len() == before).then_some(AlertPolicy {
        webhooks,
        error_rate,
    })
}

fn webhook(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<Webhook> {
    let map = object(value, path, WEBHOOK_FIELDS, errs)?;
    let id = required(map, path, "id", errs)
        .and_then(|v| string(v, &field_path(path, "id"), errs))
        .and_then(|s| {
            if is_valid_id(s) {
                Some(s.to_string())
            } else {
                errs.push(field_path(path, "id"), "must be 1-64 of [a-z0-9_-]");
                None
            }
        });
    let url = required(map, path, "url", errs)
        .and_then(|v| string(v, &field_path(path, "url"), errs))
        .and_then(|s| match Url::parse(s) {
            Ok(u)
                if matches!(u.scheme(), "https" | "http")
                    && u.host_str().is_some()
                    && u.username().is_empty()
                    && u.password().is_none() =>
            {
                Some(u)
            }
            _ => {
                errs.push(
                    field_path(path, "url"),
                    "must be an https URL without credentials (http only for loopback in the local region)",
                );
                None
            }
        });
    let secret = required(map, path, "secret", errs)
        .and_then(|v| string(v, &field_path(path, "secret"), errs))
        .and_then(|s| {
            if !s.is_empty()
                && s.len() <= 128
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                Some(SecretRef(s.to_string()))
            } else {
                errs.push(
                    field_path(path, "secret"),
                    "must name a secret of the deployment (letters, digits, _ and -), not hold one",
                );
                None
            }
        });
    let events = match map.get("events") {
        None => Some(ALERT_KINDS.iter().copied().collect()),
        Some(v) => {
            let epath = field_path(path, "events");
            match v.as_array() {
                Some(items) if !items.is_empty() => {
                    let mut out = BTreeSet::new();
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{epath}[{i}]");
                        match string(item, &p, errs).map(AlertKind::parse) {
                            Some(Some(k)) => {
                                out.insert(k);
                            }
                            Some(None) => errs.push(
                                p,
                                format!(
                                    "unknown event; expected one of {}",
                                    ALERT_KINDS
                                        .iter()
                                        .map(|k| k.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ),
                            None => {}
                        }
                    }
                    Some(out)
                }
                _ => {
                    errs.push(epath, "must list at least one event (omit it to mean all)");
                    None
                }
            }
        }
    };
    Some(Webhook {
        id: id?,
        url: url?,
        secret: secret?,
        events: events?,
    })
}

fn error_rate(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<ErrorRateRule> {
    let map = object(value, path, ERROR_RATE_FIELDS, errs)?;
    let percent = required(map, path, "percent", errs)
        .and_then(|v| integer(v, &field_path(path, "percent"), 1, 100, errs));
    let min_requests = match map.get("min_requests") {
        Some(v) => integer(v, &field_path(path, "min_requests"), 1, 1_000_000, errs),
        None => Some(20),
    };
    let window_s = match map.get("window_seconds") {
        Some(v) => integer(v, &field_path(path, "window_seconds"), 10, 3600, errs),
        None => Some(60),
    };
    Some(ErrorRateRule {
        percent: u8::try_from(percent?).ok()?,
        min_requests: min_requests?,
        window_ms: window_s? * 1000,
    })
}

pub(super) fn telemetry_policy(value: &Value, errs: &mut ConfigErrors) -> Option<TelemetryPolicy> {
    let path = "telemetry";
    let map = object(value, path, TELEMETRY_FIELDS, errs)?;
    let mut flag = |name: &str, default: bool| match map.get(name) {
        None => Some(default),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errs.push(field_path(path, name), "must be true or false");
            None
        }
    };
    let export = flag("export", true);
    let content_hashes = flag("content_hashes", false);
    Some(TelemetryPolicy {
        export: export?,
        content_hashes: content_hashes?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<AlertPolicy, ConfigErrors> {
        let mut errs = ConfigErrors::default();
        match alert_policy(&v, &mut errs) {
            Some(p) if errs.is_empty() => Ok(p),
            _ => Err(errs),
        }
    }

    #[test]
    fn a_webhook_defaults_to_every_event() {
        let p = parse(json!({"webhooks": [{"id": "ops", "url": "https://hooks.example.com/a", "secret": "OPS_HOOK"}],
                             "error_rate": {"percent": 25}}))
        .expect("valid");
        assert_eq!(p.webhooks[0].events.len(), ALERT_KINDS.len());
        assert_eq!(
            p.error_rate,
            Some(ErrorRateRule {
                percent: 25,
                min_requests: 20,
                window_ms: 60_000
            })
        );
        assert_eq!(p.subscribers(AlertKind::CircuitOpened).count(), 1);
    }

    #[test]
    fn errors_name_their_paths() {
        let errs = parse(json!({"webhooks": [
            {"id": "ops", "url": "ftp://x", "secret": "sk-live-abc def", "events": ["budget.threshold", "nope"]},
            {"id": "ops", "url": "https://user:pw@hooks.example.com", "secret": "S"}
        ], "error_rate": {"percent": 0, "window_seconds": 5}}))
        .expect_err("invalid");
        let paths = errs.paths();
        for p in [
            "alerts.webhooks[0].url",
            "alerts.webhooks[0].secret",
            "alerts.webhooks[0].events[1]",
            "alerts.webhooks[1].url",
            "alerts.error_rate.percent",
            "alerts.error_rate.window_seconds",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
        // A secret's value is never echoed back.
        assert!(!format!("{errs:?}").contains("sk-live-abc"));
    }
}
