//! Observability: each request's execution record ([`ExecutionRecord`]), exported to the
//! region's OpenTelemetry collector over OTLP/HTTP (protobuf) in batches, after the response.
//! An isolate buffers records and sends a batch when it is full or when the first record of
//! the batch is [`Collector::flush_ms`] old; an export that fails never fails a request, is
//! counted (`asc.telemetry.export.failures`) and its records are kept for the next try while
//! the buffer has room (the oldest are dropped past [`Collector::max_buffered`], and counted).

mod export;
pub mod otlp;
mod record;

pub use export::{
    metrics_request, operation_name, provider_name, spans, trace_request, BreakerReading,
    ResourceInfo,
};
pub use record::{attempt_span_id, AttemptSpan, ExecutionRecord, Phase, RouteNote, Timing};

use url::Url;

use crate::secret::SecretRef;

/// The secret holding extra headers for the collector (`OTEL_EXPORTER_OTLP_HEADERS` format:
/// `name=value,name2=value2`, e.g. an API key).
pub const HEADERS_SECRET: &str = "OTLP_HEADERS";

/// Where and how this deployment exports (from `OTLP_ENDPOINT` and friends, checked against
/// the region's `telemetry_hosts` when the deployment is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collector {
    /// The OTLP/HTTP base URL; `/v1/traces` and `/v1/metrics` are appended.
    pub endpoint: Url,
    pub headers_secret: SecretRef,
    /// Most records per export.
    pub max_batch: usize,
    /// How long the first record of a batch waits for others.
    pub flush_ms: u64,
    pub timeout_ms: u64,
}

impl Collector {
    pub fn new(endpoint: Url) -> Self {
        Collector {
            endpoint,
            headers_secret: SecretRef(HEADERS_SECRET.into()),
            max_batch: 256,
            flush_ms: 1_000,
            timeout_ms: 5_000,
        }
    }

    /// Records kept while exports fail.
    pub fn max_buffered(&self) -> usize {
        self.max_batch.saturating_mul(4)
    }

    /// `<endpoint>/v1/traces` or `/v1/metrics` (a path on the endpoint is kept as a prefix).
    pub fn url(&self, signal: &str) -> Option<Url> {
        let base = self.endpoint.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/v1/{signal}")).ok()
    }
}

/// Parses `name=value,name2=value2` (values may be percent-encoded, as the OTLP exporter spec
/// allows). Malformed pairs are skipped.
pub fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim().to_ascii_lowercase();
            let v = percent_decode(v.trim());
            (!k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                .then_some((k, v))
        })
        .collect()
}

fn percent_decode(v: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", v.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// What happened to a pushed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The batch is full: flush now.
    FlushNow,
    /// The first record of a new batch: flush after `flush_ms`.
    FlushAfter(u64),
    /// A flush is already due; nothing to schedule.
    Queued,
}

/// An isolate's records waiting for export, and the counts the metrics report.
#[derive(Debug, Default)]
pub struct TelemetryBuffer {
    records: Vec<ExecutionRecord>,
    /// Start of the metrics' delta window (the last export's end).
    pub window_start_ms: u64,
    /// Exports that failed since the last successful one.
    pub failures: u64,
    /// Records dropped because the buffer was full while exports failed.
    pub dropped: u64,
    /// A flush is scheduled (the next push need not schedule one).
    scheduled: bool,
}

impl TelemetryBuffer {
    pub fn push(&mut self, record: ExecutionRecord, collector: &Collector) -> Push {
        if self.window_start_ms == 0 {
            self.window_start_ms = record.start_ms;
        }
        if self.records.len() >= collector.max_buffered() {
            self.records.remove(0);
            self.dropped += 1;
        }
        self.records.push(record);
        if self.records.len().is_multiple_of(collector.max_batch) {
            Push::FlushNow
        } else if !self.scheduled {
            self.scheduled = true;
            Push::FlushAfter(collector.flush_ms)
        } else {
            Push::Queued
        }
    }

    /// Takes up to `max` records for one export. The next push schedules the next flush (so
    /// records put back after a failed export go out with the next request's).
    pub fn take(&mut self, max: usize) -> Vec<ExecutionRecord> {
        self.scheduled = false;
        let n = self.records.len().min(max);
        self.records.drain(..n).collect()
    }

    /// Puts records of a failed export back in front (as many as there is room for).
    pub fn restore(&mut self, mut records: Vec<ExecutionRecord>, collector: &Collector) {
        let room = collector.max_buffered().saturating_sub(self.records.len());
        if records.len() > room {
            self.dropped += (records.len() - room) as u64;
            records.truncate(room);
        }
        records.append(&mut self.records);
        self.records = records;
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_the_otlp_exporter_format() {
        assert_eq!(
            parse_headers("api-key=secret%20value, X-Team = obs ,bad, =x"),
            vec![
                ("api-key".to_string(), "secret value".to_string()),
                ("x-team".to_string(), "obs".to_string())
            ]
        );
    }

    fn record(n: u64) -> ExecutionRecord {
        let trace = crate::trace::TraceContext::continue_or_start(None, &[7; 24]);
        let event = crate::audit::AuditEvent::from(crate::audit::AuditRecord {
            schema_version: 1,
            request_id: format!("req_{n}"),
            timestamp_ms: n,
            region: "local".into(),
            tenant_id: None,
            key_id: None,
            operation: "chat.completions".into(),
            requested_model: None,
            served_model: None,
            provider: None,
            endpoint_host: None,
            stream: false,
            outcome: crate::audit::Outcome::Ok,
            status: 200,
            error_code: None,
            usage: None,
            latency_ms: 0,
            policy_version: None,
            trace_id: trace.trace_id.clone(),
        });
        ExecutionRecord::new(&trace, &Timing::new(n), event, n, false)
    }

    #[test]
    fn a_batch_is_flushed_once_full_or_by_its_first_record_and_survives_a_failure() {
        let mut c = Collector::new(Url::parse("http://127.0.0.1:4318").expect("url"));
        c.max_batch = 3;
        let mut b = TelemetryBuffer::default();
        assert_eq!(b.push(record(1), &c), Push::FlushAfter(1_000));
        assert_eq!(b.push(record(2), &c), Push::Queued);
        assert_eq!(b.push(record(3), &c), Push::FlushNow);
        let batch = b.take(c.max_batch);
        assert_eq!(batch.len(), 3);
        // The export failed: the records go back, and the next push schedules a flush.
        b.restore(batch, &c);
        assert_eq!(b.push(record(4), &c), Push::FlushAfter(1_000));
        let ids: Vec<String> = b
            .take(10)
            .iter()
            .map(|r| r.event.record.request_id.clone())
            .collect();
        assert_eq!(ids, ["req_1", "req_2", "req_3", "req_4"], "oldest first");
        // Bounded while exports keep failing: the oldest are dropped and counted.
        for n in 0..20 {
            b.push(record(n), &c);
        }
        assert_eq!(b.len(), c.max_buffered());
        assert_eq!(b.dropped, 20 - c.max_buffered() as u64);
    }

    #[test]
    fn collector_urls_keep_a_path_prefix() {
        let c = Collector::new(Url::parse("https://otel.example.com:4318/otlp/").expect("url"));
        assert_eq!(
            c.url("traces").expect("url").as_str(),
            "https://otel.example.com:4318/otlp/v1/traces"
        );
    }
}
