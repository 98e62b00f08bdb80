//! Execution records as OTLP: one trace per request (ASC's server span continuing the caller's
//! `traceparent`, a span per phase, a client span per upstream attempt) following the
//! OpenTelemetry GenAI semantic conventions, and delta metrics for a batch (GenAI duration,
//! token and time-to-first-token histograms; ASC's request, cost, token and guardrail counters;
//! breaker states; export failures).

use std::collections::BTreeMap;

use prost::Message;

use super::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use super::otlp::collector::trace::v1::ExportTraceServiceRequest;
use super::otlp::common::v1::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue};
use super::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use super::otlp::resource::v1::Resource;
use super::otlp::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use super::record::ExecutionRecord;
use crate::audit::{CacheOutcome, Outcome};

const SCOPE: &str = "asc";

/// Seconds buckets the GenAI semantic conventions advise for `gen_ai.client.operation.duration`.
const DURATION_BOUNDS_S: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// ... for `gen_ai.server.time_to_first_token`.
const TTFT_BOUNDS_S: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// ... for `gen_ai.client.token.usage`.
const TOKEN_BOUNDS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}
fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}
fn i(key: &str, v: u64) -> KeyValue {
    kv(
        key,
        any_value::Value::IntValue(i64::try_from(v).unwrap_or(i64::MAX)),
    )
}
fn list(key: &str, items: &[String]) -> KeyValue {
    kv(
        key,
        any_value::Value::ArrayValue(ArrayValue {
            values: items
                .iter()
                .map(|t| AnyValue {
                    value: Some(any_value::Value::StringValue(t.clone())),
                })
                .collect(),
        }),
    )
}

fn nanos(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

fn id_bytes(hex_id: &str) -> Vec<u8> {
    hex::decode(hex_id).unwrap_or_default()
}

/// `gen_ai.operation.name` of an ASC operation.
pub fn operation_name(operation: &str) -> &'static str {
    match operation {
        "embeddings" => "embeddings",
        "chat.completions" | "messages" => "chat",
        _ => "other",
    }
}

/// `gen_ai.provider.name` (the conventions' well-known values).
pub fn provider_name(provider: &str) -> String {
    match provider {
        "mistral" => "mistral_ai".to_string(),
        other => other.to_string(),
    }
}

/// What every span and metric of this deployment shares.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub region: String,
    /// Identifies this isolate or instance among the deployment's (random per isolate).
    pub instance_id: String,
}

impl ResourceInfo {
    fn resource(&self) -> Resource {
        Resource {
            attributes: vec![
                s("service.name", "asc"),
                s("service.version", env!("CARGO_PKG_VERSION")),
                s("service.instance.id", self.instance_id.clone()),
                s("asc.region", self.region.clone()),
            ],
            ..Default::default()
        }
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// The request's own attributes (the server span's).
fn request_attributes(r: &ExecutionRecord) -> Vec<KeyValue> {
    let rec = &r.event.record;
    let d = &r.event.detail;
    let mut a = vec![
        s("gen_ai.operation.name", operation_name(&rec.operation)),
        s("asc.operation", rec.operation.clone()),
        s("asc.request.id", rec.request_id.clone()),
        s("asc.outcome", outcome_name(rec.outcome)),
        i("http.response.status_code", u64::from(rec.status)),
        s("asc.region", rec.region.clone()),
    ];
    if let Some(t) = &rec.tenant_id {
        a.push(s("asc.tenant.id", t.clone()));
    }
    if let Some(k) = &rec.key_id {
        a.push(s("asc.key.id", k.clone()));
    }
    if !d.tags.is_empty() {
        a.push(list("asc.tags", &d.tags));
    }
    if let Some(p) = &rec.provider {
        a.push(s("gen_ai.provider.name", provider_name(p)));
    }
    if let Some(m) = &rec.requested_model {
        a.push(s("gen_ai.request.model", m.clone()));
    }
    if let Some(m) = &rec.served_model {
        a.push(s("gen_ai.response.model", m.clone()));
    }
    if let Some(u) = rec.usage {
        a.push(i("gen_ai.usage.input_tokens", u.input_tokens));
        a.push(i("gen_ai.usage.output_tokens", u.output_tokens));
    }
    if let Some(code) = &rec.error_code {
        a.push(s("error.type", code.clone()));
    }
    if let Some(route) = &d.route {
        a.push(s("asc.route", route.clone()));
    }
    if let Some(rule) = r.routing.rule {
        a.push(i("asc.route.rule", rule as u64));
    }
    if let Some(strategy) = r.routing.strategy {
        a.push(s("asc.route.strategy", strategy));
    }
    if let Some(w) = &r.routing.workload {
        a.push(s("asc.workload", w.clone()));
    }
    if let Some(t) = &r.routing.target {
        a.push(s("asc.target", t.clone()));
    }
    if let Some(host) = &rec.endpoint_host {
        a.push(s("server.address", host.clone()));
    }
    if let Some(region) = &d.endpoint_region {
        a.push(s("asc.endpoint.region", region.clone()));
    }
    a.push(kv("asc.stream", any_value::Value::BoolValue(rec.stream)));
    if let Some(v) = d.reserved_usd_micros {
        a.push(i("asc.budget.reserved_usd_micros", v));
    }
    if let Some(v) = d.settled_usd_micros {
        a.push(i("asc.cost.usd_micros", v));
    }
    if let Some(c) = &d.cache {
        a.push(s("asc.cache.outcome", cache_outcome(c.outcome)));
    }
    if let Some(t) = r.ttft_ms {
        a.push(i("asc.time_to_first_token_ms", t));
    }
    a.push(i("asc.attempts", d.attempts.len() as u64));
    if !d.guardrails.is_empty() {
        let hits: Vec<String> = d
            .guardrails
            .iter()
            .map(|g| format!("{}:{}", g.detector, action_name(g)))
            .collect();
        a.push(list("asc.guardrails", &hits));
    }
    if !r.alerts.is_empty() {
        a.push(list("asc.alerts", &r.alerts));
    }
    if let Some(h) = &d.prompt_sha256 {
        a.push(s("asc.request.sha256", h.clone()));
    }
    if let Some(h) = &d.response_sha256 {
        a.push(s("asc.response.sha256", h.clone()));
    }
    a
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Refused => "refused",
        Outcome::Error => "error",
        Outcome::Partial => "partial",
    }
}

fn cache_outcome(o: CacheOutcome) -> String {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action_name(g: &crate::audit::GuardrailDecision) -> String {
    serde_json::to_value(g.action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn error_status(failed: bool, message: Option<&String>) -> Option<Status> {
    failed.then(|| Status {
        code: status::StatusCode::Error as i32,
        message: message.cloned().unwrap_or_default(),
    })
}

/// The spans of one request.
pub fn spans(r: &ExecutionRecord) -> Vec<Span> {
    let rec = &r.event.record;
    let trace_id = id_bytes(&r.trace_id);
    let server_id = id_bytes(&r.span_id);
    let model = rec
        .requested_model
        .clone()
        .unwrap_or_else(|| rec.operation.clone());
    let failed = matches!(rec.outcome, Outcome::Error | Outcome::Partial);
    let mut out = Vec::with_capacity(1 + r.phases.len() + r.attempts.len());
    let mut events = Vec::new();
    for g in &r.event.detail.guardrails {
        events.push(span::Event {
            time_unix_nano: nanos(r.start_ms),
            name: "asc.guardrail".into(),
            attributes: vec![
                s("asc.guardrail.detector", g.detector.clone()),
                s("asc.guardrail.action", action_name(g)),
                i("asc.guardrail.count", u64::from(g.count)),
            ],
            ..Default::default()
        });
    }
    if let Some(t) = r.ttft_ms {
        events.push(span::Event {
            time_unix_nano: nanos(r.start_ms + t),
            name: "asc.first_byte".into(),
            ..Default::default()
        });
    }
    out.push(Span {
        trace_id: trace_id.clone(),
        span_id: server_id.clone(),
        parent_span_id: r
            .parent_span_id
            .as_deref()
            .map(id_bytes)
            .unwrap_or_default(),
        name: format!("{} {model}", operation_name(&rec.operation)),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: nanos(r.start_ms),
        end_time_unix_nano: nanos(r.end_ms),
        attributes: request_attributes(r),
        events,
        status: error_status(failed, rec.error_code.as_ref()),
        ..Default::default()
    });
    for (n, p) in r.phases.iter().enumerate() {
        let mut id = server_id.clone();
        // Phase span ids: the server span's with its last byte varied by phase (distinct from
        // attempt spans, which are derived by hashing).
        if let Some(last) = id.last_mut() {
            *last = last.wrapping_add(1 + n as u8);
        }
        out.push(Span {
            trace_id: trace_id.clone(),
            span_id: id,
            parent_span_id: server_id.clone(),
            name: format!("asc.{}", p.name),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: nanos(p.start_ms),
            end_time_unix_nano: nanos(p.end_ms),
            ..Default::default()
        });
    }
    for (a, span) in r.event.detail.attempts.iter().zip(&r.attempts) {
        let mut attrs = vec![
            s("gen_ai.operation.name", operation_name(&rec.operation)),
            s("gen_ai.provider.name", provider_name(&a.provider)),
            s("gen_ai.request.model", a.model.clone()),
            s("server.address", a.endpoint_host.clone()),
        ];
        if let Some(st) = a.status {
            attrs.push(i("http.response.status_code", u64::from(st)));
        }
        if let Some(code) = &a.error_code {
            attrs.push(s("error.type", code.clone()));
        }
        out.push(Span {
            trace_id: trace_id.clone(),
            span_id: id_bytes(&span.span_id),
            parent_span_id: server_id.clone(),
            name: format!("{} {}", operation_name(&rec.operation), a.model),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: nanos(span.start_ms),
            end_time_unix_nano: nanos(span.end_ms),
            attributes: attrs,
            status: error_status(a.error_code.is_some(), a.error_code.as_ref()),
            ..Default::default()
        });
    }
    out
}

/// One OTLP/HTTP trace export body (protobuf).
pub fn trace_request(resource: &ResourceInfo, records: &[ExecutionRecord]) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans: records.iter().flat_map(spans).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

type Attrs = Vec<(String, String)>;

#[derive(Default)]
struct HistAgg {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
    min: f64,
    max: f64,
}

impl HistAgg {
    fn record(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
            self.min = v;
            self.max = v;
        }
        let idx = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        if let Some(c) = self.counts.get_mut(idx) {
            *c += 1;
        }
        self.sum += v;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

fn attrs_kv(attrs: &Attrs) -> Vec<KeyValue> {
    attrs.iter().map(|(k, v)| s(k, v.clone())).collect()
}

/// A breaker's state for the `asc.circuit.state` gauge: 0 closed, 1 half-open probe, 2 open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerReading {
    pub tenant: String,
    pub target: String,
    pub state: i64,
}

/// One OTLP/HTTP metrics export body (protobuf): delta sums and histograms over `records`
/// between `start_ms` and `now_ms`, breaker gauges, and the exports that failed since the last
/// successful one.
pub fn metrics_request(
    resource: &ResourceInfo,
    records: &[ExecutionRecord],
    breakers: &[BreakerReading],
    export_failures: u64,
    start_ms: u64,
    now_ms: u64,
) -> Vec<u8> {
    let mut duration: BTreeMap<Attrs, HistAgg> = BTreeMap::new();
    let mut ttft: BTreeMap<Attrs, HistAgg> = BTreeMap::new();
    let mut tokens: BTreeMap<Attrs, HistAgg> = BTreeMap::new();
    let mut requests: BTreeMap<Attrs, u64> = BTreeMap::new();
    let mut cost: BTreeMap<Attrs, u64> = BTreeMap::new();
    let mut token_sums: BTreeMap<Attrs, u64> = BTreeMap::new();
    let mut guardrails: BTreeMap<Attrs, u64> = BTreeMap::new();
    for r in records {
        let rec = &r.event.record;
        let d = &r.event.detail;
        let tenant = rec.tenant_id.clone().unwrap_or_default();
        let tags = d.tags.join(",");
        let mut genai: Attrs = vec![
            (
                "gen_ai.operation.name".into(),
                operation_name(&rec.operation).into(),
            ),
            (
                "gen_ai.provider.name".into(),
                provider_name(rec.provider.as_deref().unwrap_or("")),
            ),
            (
                "gen_ai.request.model".into(),
                rec.requested_model.clone().unwrap_or_default(),
            ),
            (
                "gen_ai.response.model".into(),
                rec.served_model.clone().unwrap_or_default(),
            ),
            ("asc.tenant.id".into(), tenant.clone()),
        ];
        let mut with_error = genai.clone();
        if let Some(code) = &rec.error_code {
            with_error.push(("error.type".into(), code.clone()));
        }
        duration
            .entry(with_error.clone())
            .or_default()
            .record(&DURATION_BOUNDS_S, rec.latency_ms as f64 / 1000.0);
        if let Some(t) = r.ttft_ms {
            ttft.entry(genai.clone())
                .or_default()
                .record(&TTFT_BOUNDS_S, t as f64 / 1000.0);
        }
        let mut by_tenant: Attrs = vec![
            ("asc.tenant.id".into(), tenant.clone()),
            ("asc.tags".into(), tags.clone()),
            (
                "gen_ai.request.model".into(),
                rec.requested_model.clone().unwrap_or_default(),
            ),
        ];
        if let Some(u) = rec.usage {
            for (kind, n) in [("input", u.input_tokens), ("output", u.output_tokens)] {
                let mut a = genai.clone();
                a.push(("gen_ai.token.type".into(), kind.into()));
                tokens.entry(a).or_default().record(&TOKEN_BOUNDS, n as f64);
                let mut t = by_tenant.clone();
                t.push(("gen_ai.token.type".into(), kind.into()));
                *token_sums.entry(t).or_insert(0) += n;
            }
        }
        *cost.entry(by_tenant.clone()).or_insert(0) += d.settled_usd_micros.unwrap_or(0);
        by_tenant.push(("asc.outcome".into(), outcome_name(rec.outcome).into()));
        by_tenant.push((
            "error.type".into(),
            rec.error_code.clone().unwrap_or_default(),
        ));
        by_tenant.push(("asc.operation".into(), rec.operation.clone()));
        if let Some(c) = &d.cache {
            by_tenant.push(("asc.cache.outcome".into(), cache_outcome(c.outcome)));
        }
        *requests.entry(by_tenant).or_insert(0) += 1;
        for g in &d.guardrails {
            let a: Attrs = vec![
                ("asc.tenant.id".into(), tenant.clone()),
                ("asc.guardrail.detector".into(), g.detector.clone()),
                ("asc.guardrail.action".into(), action_name(g)),
            ];
            *guardrails.entry(a).or_insert(0) += u64::from(g.count.max(1));
        }
        genai.clear();
    }
    let (start, now) = (nanos(start_ms), nanos(now_ms));
    let histogram =
        |name: &str, unit: &str, desc: &str, bounds: &[f64], data: BTreeMap<Attrs, HistAgg>| {
            Metric {
                name: name.into(),
                unit: unit.into(),
                description: desc.into(),
                data: Some(metric::Data::Histogram(Histogram {
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                    data_points: data
                        .into_iter()
                        .map(|(attrs, h)| HistogramDataPoint {
                            attributes: attrs_kv(&attrs),
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            count: h.count,
                            sum: Some(h.sum),
                            bucket_counts: h.counts,
                            explicit_bounds: bounds.to_vec(),
                            min: Some(h.min),
                            max: Some(h.max),
                            ..Default::default()
                        })
                        .collect(),
                })),
                ..Default::default()
            }
        };
    let sum = |name: &str, unit: &str, desc: &str, data: BTreeMap<Attrs, u64>| Metric {
        name: name.into(),
        unit: unit.into(),
        description: desc.into(),
        data: Some(metric::Data::Sum(Sum {
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
            data_points: data
                .into_iter()
                .map(|(attrs, n)| NumberDataPoint {
                    attributes: attrs_kv(&attrs),
                    start_time_unix_nano: start,
                    time_unix_nano: now,
                    value: Some(number_data_point::Value::AsInt(
                        i64::try_from(n).unwrap_or(i64::MAX),
                    )),
                    ..Default::default()
                })
                .collect(),
        })),
        ..Default::default()
    };
    let mut metrics = vec![
        histogram(
            "gen_ai.client.operation.duration",
            "s",
            "Duration of GenAI operations through the gateway",
            &DURATION_BOUNDS_S,
            duration,
        ),
        histogram(
            "gen_ai.client.token.usage",
            "{token}",
            "Tokens used per request, by token type",
            &TOKEN_BOUNDS,
            tokens,
        ),
        sum(
            "asc.requests",
            "{request}",
            "Requests by tenant, tags, model, outcome and error code",
            requests,
        ),
        sum(
            "asc.cost",
            "[USD]/1e6",
            "Settled cost in micro-USD by tenant, tags and model",
            cost,
        ),
        sum(
            "asc.tokens",
            "{token}",
            "Tokens by tenant, tags, model and type",
            token_sums,
        ),
    ];
    if !ttft.is_empty() {
        metrics.push(histogram(
            "gen_ai.server.time_to_first_token",
            "s",
            "Time to the first streamed byte",
            &TTFT_BOUNDS_S,
            ttft,
        ));
    }
    if !guardrails.is_empty() {
        metrics.push(sum(
            "asc.guardrail.hits",
            "{match}",
            "Guardrail matches by detector and action",
            guardrails,
        ));
    }
    if !breakers.is_empty() {
        metrics.push(Metric {
            name: "asc.circuit.state".into(),
            unit: "1".into(),
            description: "Breaker state per target: 0 closed, 1 half-open probe, 2 open".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: breakers
                    .iter()
                    .map(|b| NumberDataPoint {
                        attributes: vec![
                            s("asc.tenant.id", b.tenant.clone()),
                            s("asc.target", b.target.clone()),
                        ],
                        time_unix_nano: now,
                        value: Some(number_data_point::Value::AsInt(b.state)),
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        });
    }
    let mut failures = BTreeMap::new();
    failures.insert(Vec::new(), export_failures);
    metrics.push(sum(
        "asc.telemetry.export.failures",
        "{export}",
        "Telemetry exports that failed since the last successful one",
        failures,
    ));
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}
