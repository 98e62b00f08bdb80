//! The execution record: one per request, what observability needs to explain it (phases and
//! their durations, each upstream attempt, time to first token, the route and target, budget
//! and guardrail decisions, the cache, tokens and cost). Built from the request's final audit
//! record plus its timing, so the two can never disagree; it holds no prompt or response text
//! (the audit record's optional redacted content is dropped, and the body hashes are kept only
//! when the tenant's `telemetry.content_hashes` asks for them).

use serde::Serialize;

use crate::audit::AuditEvent;
use crate::trace::TraceContext;

/// When each phase of a request ended, in milliseconds of the host's clock. On Workers the
/// clock only advances across I/O, so phases without I/O (guardrails) show as 0 ms there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Timing {
    pub started_ms: u64,
    /// `(phase, end_ms)` in order; each phase starts where the previous one ended.
    pub marks: Vec<(&'static str, u64)>,
    /// When each upstream attempt was sent (parallel to the audit record's attempts).
    pub attempt_starts: Vec<u64>,
    /// When a stream's first byte went to the client.
    pub first_byte_ms: Option<u64>,
}

impl Timing {
    pub fn new(started_ms: u64) -> Self {
        Timing {
            started_ms,
            ..Timing::default()
        }
    }

    /// Notes that `phase` ended at `at_ms` (a phase marked twice keeps its first end).
    pub fn mark(&mut self, phase: &'static str, at_ms: u64) {
        if !self.marks.iter().any(|(p, _)| *p == phase) {
            self.marks.push((phase, at_ms));
        }
    }
}

/// One phase of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// How the route chose: the rule that matched (its index), the strategy, the workload, and
/// the target (model key) that served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteNote {
    pub rule: Option<usize>,
    pub strategy: Option<&'static str>,
    pub workload: Option<String>,
    pub target: Option<String>,
}

/// One upstream attempt as a span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptSpan {
    pub span_id: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionRecord {
    pub trace_id: String,
    /// ASC's server span for the request.
    pub span_id: String,
    /// The caller's span, when it sent a valid `traceparent`.
    pub parent_span_id: Option<String>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub phases: Vec<Phase>,
    /// Parallel to `event.detail.attempts`.
    pub attempts: Vec<AttemptSpan>,
    pub ttft_ms: Option<u64>,
    /// Alerts this request raised or carried to delivery (their ids).
    pub alerts: Vec<String>,
    pub routing: RouteNote,
    /// The final audit record, without any recorded content.
    pub event: AuditEvent,
}

/// The span id of upstream attempt `n` of the request whose server span is `span_id`: derived,
/// so the `traceparent` sent upstream and the exported client span agree without storing ids.
/// The server span's (random) id XOR a bijective mix of `n + 1`: distinct for every attempt and
/// never the server span's own id, at the cost of a multiply instead of a hash.
pub fn attempt_span_id(trace: &TraceContext, n: usize) -> String {
    let server = u64::from_str_radix(&trace.span_id, 16).unwrap_or(0);
    let id = server ^ mix(n as u64 + 1);
    // All-zero span ids are invalid (W3C); astronomically unlikely, but never send one.
    let id = if id == 0 { 1 } else { id };
    crate::hexstr::encode(&id.to_be_bytes())
}

/// SplitMix64's finalizer: a bijection on u64 that maps only 0 to 0.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl ExecutionRecord {
    pub fn new(
        trace: &TraceContext,
        timing: &Timing,
        mut event: AuditEvent,
        end_ms: u64,
        content_hashes: bool,
    ) -> Self {
        event.detail.content = None;
        if !content_hashes {
            event.detail.prompt_sha256 = None;
            event.detail.response_sha256 = None;
        }
        let mut phases = Vec::with_capacity(timing.marks.len());
        let mut start = timing.started_ms;
        for (name, end) in &timing.marks {
            let end = (*end).max(start);
            phases.push(Phase {
                name,
                start_ms: start,
                end_ms: end,
            });
            start = end;
        }
        let attempts = event
            .detail
            .attempts
            .iter()
            .enumerate()
            .map(|(n, a)| {
                let start_ms = timing
                    .attempt_starts
                    .get(n)
                    .copied()
                    .unwrap_or(timing.started_ms);
                AttemptSpan {
                    span_id: attempt_span_id(trace, n),
                    start_ms,
                    end_ms: start_ms + a.latency_ms,
                }
            })
            .collect();
        let ttft_ms = event.detail.ttft_ms;
        ExecutionRecord {
            trace_id: trace.trace_id.clone(),
            span_id: trace.span_id.clone(),
            parent_span_id: trace.parent_id.clone(),
            start_ms: timing.started_ms,
            end_ms: end_ms.max(timing.started_ms),
            phases,
            attempts,
            ttft_ms,
            alerts: Vec::new(),
            routing: RouteNote::default(),
            event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditRecord, Outcome, RecordedContent};

    #[test]
    fn recorded_content_never_enters_the_record_and_hashes_only_when_asked() {
        let trace = TraceContext::continue_or_start(
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            &[1; 24],
        );
        let mut event = AuditEvent::from(AuditRecord {
            schema_version: 1,
            request_id: "req_1".into(),
            timestamp_ms: 1_000,
            region: "local".into(),
            tenant_id: Some("t".into()),
            key_id: Some("k".into()),
            operation: "chat.completions".into(),
            requested_model: Some("m".into()),
            served_model: Some("m".into()),
            provider: Some("openai".into()),
            endpoint_host: Some("127.0.0.1".into()),
            stream: false,
            outcome: Outcome::Ok,
            status: 200,
            error_code: None,
            usage: None,
            latency_ms: 40,
            policy_version: None,
            trace_id: trace.trace_id.clone(),
        });
        event.detail.content = Some(RecordedContent {
            prompt: Some("secret prompt".into()),
            response: Some("secret answer".into()),
            redaction_policy: None,
        });
        event.detail.prompt_sha256 = Some("ab".repeat(32));
        let mut timing = Timing::new(1_000);
        timing.mark("auth", 1_002);
        timing.mark("guard", 1_001); // a clock that went back is clamped, never negative
        timing.mark("auth", 1_500); // marked twice: the first end stays
        let r = ExecutionRecord::new(&trace, &timing, event.clone(), 1_040, false);
        assert!(r.event.detail.content.is_none());
        assert!(r.event.detail.prompt_sha256.is_none());
        assert_eq!(r.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(
            r.phases,
            vec![
                Phase {
                    name: "auth",
                    start_ms: 1_000,
                    end_ms: 1_002
                },
                Phase {
                    name: "guard",
                    start_ms: 1_002,
                    end_ms: 1_002
                },
            ]
        );
        let hashed = ExecutionRecord::new(&trace, &timing, event, 1_040, true);
        assert!(hashed.event.detail.content.is_none());
        assert!(hashed.event.detail.prompt_sha256.is_some());
        // Attempt span ids are stable per attempt and distinct from each other.
        assert_eq!(attempt_span_id(&trace, 0), attempt_span_id(&trace, 0));
        assert_ne!(attempt_span_id(&trace, 0), attempt_span_id(&trace, 1));
        assert_eq!(attempt_span_id(&trace, 0).len(), 16);
        // Distinct from each other and from the server span, for many attempts.
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|n| attempt_span_id(&trace, n)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&trace.span_id));
        assert!(ids
            .iter()
            .all(|id| id.len() == 16 && id != "0000000000000000"));
    }
}
