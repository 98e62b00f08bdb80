//! Streams an upstream's SSE response to the client event by event, as it arrives. Each complete
//! event is forwarded byte for byte; the relay watches the events for usage, upstream `error`
//! events, malformed chunks and a missing `[DONE]`, and ends a broken stream with a terminal error
//! event (never a clean `[DONE]`). When the stream ends it appends the request's audit record.

use sha2::{Digest, Sha256};

use crate::audit::{AuditEvent, Outcome, Usage};
use crate::error::{ErrorKind, GatewayError};
use crate::guard::{self, OpenAiStreamGuard};
use crate::host::HostError;
use crate::host::{ByteSource, Host};
use crate::pipeline::{Charge, Counted};
use crate::sse::SseParser;

/// Largest single event accepted from an upstream.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// What the relay saw, for the audit record and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSummary {
    pub events: u64,
    pub done: bool,
    pub usage: Option<Usage>,
    /// Why the stream ended badly, if it did.
    pub failure: Option<ErrorKind>,
    /// Content seen, for a charge when the upstream never reported usage.
    pub counted: Counted,
    /// What the ledger charged when the stream ended.
    pub charged_micros: Option<u64>,
}

/// A stream being relayed. The adapter pumps it with `next` until it returns `None`.
pub struct Relay<S: ByteSource> {
    source: S,
    parser: SseParser,
    summary: StreamSummary,
    /// The record to complete and append when the stream ends.
    audit: AuditEvent,
    started_ms: u64,
    finished: bool,
    audit_error: Option<HostError>,
    charge: Charge,
    /// The gateway asked the upstream for usage the client did not ask for: drop that chunk.
    strip_usage: bool,
    /// SHA-256 of the bytes sent to the client, for the audit record.
    sent: Sha256,
    /// The guardrails on the response, or (when responses are not scanned) the request's
    /// decisions, for the audit record.
    guard: Result<OpenAiStreamGuard, guard::Ledger>,
}

impl<S: ByteSource> Relay<S> {
    pub fn new(
        source: S,
        audit: AuditEvent,
        started_ms: u64,
        charge: Charge,
        strip_usage: bool,
        guard: Result<OpenAiStreamGuard, guard::Ledger>,
    ) -> Self {
        Relay {
            source,
            parser: SseParser::new(MAX_EVENT_BYTES),
            summary: StreamSummary::default(),
            audit,
            started_ms,
            finished: false,
            audit_error: None,
            charge,
            strip_usage,
            sent: Sha256::new(),
            guard,
        }
    }

    /// The next bytes for the client, or `None` when the stream is over (and audited).
    pub async fn next<H: Host>(&mut self, host: &H) -> Option<Vec<u8>> {
        while !self.finished {
            let chunk = self.source.next_chunk().await;
            let out = match chunk {
                Ok(Some(bytes)) => self.on_bytes(&bytes),
                Ok(None) => self.on_end(),
                Err(_) => self.fail(ErrorKind::UpstreamUnreachable),
            };
            self.sent.update(&out);
            if self.finished {
                self.append_audit(host).await;
            }
            if !out.is_empty() {
                return Some(out);
            }
        }
        None
    }

    pub fn summary(&self) -> &StreamSummary {
        &self.summary
    }

    /// Set when the stream's audit record could not be stored, for the adapter to report.
    pub fn audit_error(&self) -> Option<&HostError> {
        self.audit_error.as_ref()
    }

    fn on_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut events = Vec::new();
        let parsed = self.parser.feed(bytes, &mut events);
        let mut out = Vec::new();
        for ev in events {
            if self.summary.done {
                break;
            }
            self.summary.events += 1;
            if ev.data == "[DONE]" {
                self.summary.done = true;
                self.finished = true;
                out.extend(self.flush_guard());
                out.extend_from_slice(&ev.raw);
                break;
            }
            if ev.data.is_empty() {
                // Comments and keep-alives pass through.
                out.extend_from_slice(&ev.raw);
                continue;
            }
            match serde_json::from_str::<serde_json::Value>(&ev.data) {
                Ok(v) if v.get("error").is_some() => {
                    // The upstream's own error event already has OpenAI's shape: forward it as
                    // the terminal event.
                    out.extend(self.flush_guard());
                    out.extend_from_slice(&ev.raw);
                    self.summary.failure = Some(ErrorKind::UpstreamError);
                    self.finished = true;
                    break;
                }
                Ok(mut v) => {
                    let rewritten = match &mut self.guard {
                        Ok(g) => g.on_chunk(&mut v),
                        Err(_) => false,
                    };
                    self.count_content(&v);
                    if let Some(u) = v.get("usage").and_then(Usage::from_openai) {
                        self.summary.usage = Some(u);
                        let usage_only = v
                            .get("choices")
                            .and_then(|c| c.as_array())
                            .is_some_and(|c| c.is_empty());
                        if self.strip_usage && usage_only {
                            continue;
                        }
                    }
                    if rewritten {
                        out.extend(data_event(&v));
                    } else {
                        out.extend_from_slice(&ev.raw);
                    }
                }
                Err(_) => {
                    out.extend(self.fail(ErrorKind::UpstreamBadResponse));
                    break;
                }
            }
        }
        if parsed.is_err() && !self.finished {
            // Oversized or non-UTF-8 event: nothing sensible can follow it.
            out.extend(self.fail(ErrorKind::UpstreamBadResponse));
        }
        out
    }

    fn count_content(&mut self, chunk: &serde_json::Value) {
        let Some(choices) = chunk.get("choices").and_then(|c| c.as_array()) else {
            return;
        };
        for choice in choices {
            let delta = choice.get("delta");
            let text = delta
                .and_then(|d| d.get("content"))
                .and_then(|c| c.as_str());
            let args = delta
                .and_then(|d| d.get("tool_calls"))
                .and_then(|t| t.as_array())
                .map(|calls| {
                    calls
                        .iter()
                        .filter_map(|c| c.pointer("/function/arguments").and_then(|a| a.as_str()))
                        .map(str::len)
                        .sum::<usize>()
                })
                .unwrap_or(0);
            let bytes = text.map(str::len).unwrap_or(0) + args;
            if bytes > 0 {
                self.summary.counted.content_events += 1;
                self.summary.counted.content_bytes += bytes as u64;
            }
        }
    }

    fn on_end(&mut self) -> Vec<u8> {
        if self.summary.done || self.finished {
            self.finished = true;
            return Vec::new();
        }
        self.fail(ErrorKind::UpstreamError)
    }

    /// Text the guard still holds back, as a final chunk (before `[DONE]` or an error).
    fn flush_guard(&mut self) -> Vec<u8> {
        match &mut self.guard {
            Ok(g) => g
                .finish()
                .map(|chunk| data_event(&chunk))
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Ends the stream with a terminal error event the OpenAI SDKs raise on.
    fn fail(&mut self, kind: ErrorKind) -> Vec<u8> {
        let mut out = self.flush_guard();
        self.finished = true;
        self.summary.failure = Some(kind);
        let message = match kind {
            ErrorKind::UpstreamBadResponse => {
                "The upstream sent a malformed stream event; the stream was ended."
            }
            _ => "The upstream stream ended before it was complete.",
        };
        out.extend(terminal_error_event(&GatewayError::new(kind, message)));
        out
    }

    async fn append_audit<H: Host>(&mut self, host: &H) {
        self.summary.charged_micros = self
            .charge
            .settle(host, self.summary.usage, self.summary.counted)
            .await;
        let (_, cost) = self.charge.cost(self.summary.usage, self.summary.counted);
        self.audit.detail.settled_usd_micros = Some(self.summary.charged_micros.unwrap_or(cost));
        self.audit.detail.response_sha256 = Some(hex::encode(self.sent.clone().finalize()));
        let decisions = match &self.guard {
            Ok(g) => g.ledger(),
            Err(l) => l,
        };
        crate::pipeline::record_guardrails(&mut self.audit, decisions);
        let now = host.now().millis();
        self.audit.record.latency_ms = now.saturating_sub(self.started_ms);
        self.audit.record.usage = self.summary.usage;
        match self.summary.failure {
            None => self.audit.record.outcome = Outcome::Ok,
            Some(kind) => {
                self.audit.record.outcome = Outcome::Partial;
                self.audit.record.error_code = Some(kind.code().to_string());
            }
        }
        // The status line is gone already, so a failed append cannot change this response; the
        // adapter reports it (see `audit_error`).
        if let Err(e) = host.append_audit(&self.audit).await {
            self.audit_error = Some(e);
        }
    }
}

/// `data: {"error":{...}}` followed by a blank line.
pub fn terminal_error_event(err: &GatewayError) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&err.body());
    out.extend_from_slice(b"\n\n");
    out
}

/// `data: <json>` and a blank line.
fn data_event(value: &serde_json::Value) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}
