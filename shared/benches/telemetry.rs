//! What exporting execution records costs the isolate, per request: building the record at the
//! end of a request, then its share of one OTLP export (spans, and delta metrics over a batch of
//! 256): `cargo bench -p asc-core --bench telemetry`. Compare with the `pipeline` bench (the
//! core's whole request) and, on workerd, the OpenTelemetry row of the gateway bench.

use asc_core::audit::{
    Attempt, AuditEvent, AuditRecord, GuardrailAction, GuardrailDecision, Outcome, Usage,
};
use asc_core::telemetry::{metrics_request, trace_request, ExecutionRecord, ResourceInfo, Timing};
use asc_core::trace::TraceContext;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BATCH: usize = 256;

fn event(n: u64, trace: &TraceContext) -> AuditEvent {
    let mut e = AuditEvent::from(AuditRecord {
        schema_version: 1,
        request_id: format!("req_{n:024x}"),
        timestamp_ms: 1_767_225_600_000 + n,
        region: "eu".into(),
        tenant_id: Some("acme".into()),
        key_id: Some("k_3f9a1c".into()),
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
            input_tokens: 120,
            output_tokens: 80,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
        }),
        latency_ms: 420,
        policy_version: Some("ab".repeat(32)),
        trace_id: trace.trace_id.clone(),
    });
    e.detail.tags = vec!["bu:payments".into()];
    e.detail.route = Some("default".into());
    e.detail.settled_usd_micros = Some(61);
    e.detail.attempts.push(Attempt {
        provider: "openai".into(),
        endpoint_host: "eu.api.openai.com".into(),
        model: "gpt-4o-mini".into(),
        status: Some(200),
        error_code: None,
        latency_ms: 400,
    });
    e.detail.guardrails.push(GuardrailDecision {
        detector: "email".into(),
        action: GuardrailAction::Redact,
        count: 1,
        side: Some("request".into()),
        pattern: None,
        mode: None,
    });
    if e.record.stream {
        e.detail.ttft_ms = Some(180);
    }
    e
}

fn timing(n: u64) -> Timing {
    let t0 = 1_767_225_600_000 + n;
    let mut t = Timing::new(t0);
    for (i, phase) in ["auth", "guard", "plan", "admission", "upstream", "response"]
        .into_iter()
        .enumerate()
    {
        t.mark(phase, t0 + 3 * i as u64 + 1);
    }
    t.attempt_starts.push(t0 + 10);
    t
}

fn bench(c: &mut Criterion) {
    let trace = TraceContext::continue_or_start(
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        &[9; 24],
    );
    let events: Vec<AuditEvent> = (0..BATCH as u64).map(|n| event(n, &trace)).collect();
    let records: Vec<ExecutionRecord> = events
        .iter()
        .enumerate()
        .map(|(n, e)| ExecutionRecord::new(&trace, &timing(n as u64), e.clone(), 0, false))
        .collect();
    let resource = ResourceInfo {
        region: "eu".into(),
        instance_id: "0123456789abcdef".into(),
    };
    let mut group = c.benchmark_group("telemetry");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("execution records (256)", |b| {
        b.iter(|| {
            events
                .iter()
                .enumerate()
                .map(|(n, e)| {
                    ExecutionRecord::new(&trace, &timing(n as u64), e.clone(), 0, false).end_ms
                })
                .sum::<u64>()
        })
    });
    group.bench_function("OTLP spans (256 requests)", |b| {
        b.iter(|| trace_request(&resource, &records).len())
    });
    group.bench_function("OTLP metrics (256 requests)", |b| {
        b.iter(|| metrics_request(&resource, &records, &[], 0, 0, 1_000).len())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
