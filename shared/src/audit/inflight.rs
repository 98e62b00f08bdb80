//! Streams whose outcome is not known yet. A streamed response is recorded as *open* before its
//! first byte goes out, and *closed* with its final record when it ends. A stream the client
//! abandons (the platform cancels the Worker's work with it) is never closed: when its time is up
//! the sequencer chains the open record as `partial`, so every request still leaves exactly one
//! record. The host stores each open record under [`inflight_storage_key`].

use serde::{Deserialize, Serialize};

use super::{AuditEvent, Outcome};

pub const INFLIGHT_PREFIX: &str = "inflight:";

pub fn inflight_storage_key(request_id: &str) -> String {
    format!("{INFLIGHT_PREFIX}{request_id}")
}

/// An open record and when it is given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRecord {
    pub expires_ms: u64,
    pub event: AuditEvent,
}

impl OpenRecord {
    pub fn new(event: AuditEvent, expires_ms: u64) -> Self {
        OpenRecord { expires_ms, event }
    }

    /// The record to chain for a stream that never closed: what was known when it opened,
    /// marked partial.
    pub fn abandoned(mut self, now_ms: u64) -> AuditEvent {
        let record = &mut self.event.record;
        record.outcome = Outcome::Partial;
        if record.error_code.is_none() {
            record.error_code = Some("stream_abandoned".to_string());
        }
        record.latency_ms = now_ms.saturating_sub(record.timestamp_ms);
        self.event
    }
}

/// Open records due for chaining at `now_ms`, oldest first.
pub fn due(open: Vec<OpenRecord>, now_ms: u64) -> Vec<OpenRecord> {
    let mut due: Vec<OpenRecord> = open
        .into_iter()
        .filter(|o| o.expires_ms <= now_ms)
        .collect();
    due.sort_by(|a, b| {
        (a.event.record.timestamp_ms, &a.event.record.request_id)
            .cmp(&(b.event.record.timestamp_ms, &b.event.record.request_id))
    });
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditRecord, AUDIT_SCHEMA_VERSION};

    fn event(id: &str, at: u64) -> AuditEvent {
        AuditEvent::from(AuditRecord {
            schema_version: AUDIT_SCHEMA_VERSION,
            request_id: id.into(),
            timestamp_ms: at,
            region: "local".into(),
            tenant_id: Some("t".into()),
            key_id: Some("k".into()),
            operation: "chat.completions".into(),
            requested_model: None,
            served_model: None,
            provider: None,
            endpoint_host: None,
            stream: true,
            outcome: Outcome::Ok,
            status: 200,
            error_code: None,
            usage: None,
            latency_ms: 0,
            policy_version: None,
            trace_id: "t".into(),
        })
    }

    #[test]
    fn only_expired_records_are_due_oldest_first() {
        let open = vec![
            OpenRecord::new(event("b", 20), 100),
            OpenRecord::new(event("a", 10), 100),
            OpenRecord::new(event("c", 30), 200),
        ];
        let due = due(open, 150);
        let ids: Vec<&str> = due
            .iter()
            .map(|o| o.event.record.request_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn abandoned_streams_are_partial() {
        let e = OpenRecord::new(event("a", 1_000), 5_000).abandoned(6_000);
        assert_eq!(e.record.outcome, Outcome::Partial);
        assert_eq!(e.record.error_code.as_deref(), Some("stream_abandoned"));
        assert_eq!(e.record.latency_ms, 5_000);
    }
}
