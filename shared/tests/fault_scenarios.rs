//! Faults at each step of a request (issue 20), through the whole pipeline with a failing fake
//! host: the config store before authentication, the ledger at admission, the circuit board, the
//! upstream after the reservation (refused, timed out, cut mid-stream), the ledger between the
//! response and the settle, the ledger at a read-only request's record. Each case must end with
//! a clear client answer (success, or an error with a stable code), and afterwards (once the
//! ledger's expiry has run): no reservation left open, no spend beyond the hard budget, spend
//! equal to what the records say was settled, one record per admitted request, and a trail
//! built from those records that verifies. A failed upload during a flush is covered by
//! `audit::drive` tests and the kill-mid-flush end-to-end test.

mod common;

use std::collections::{BTreeMap, HashMap};

use asc_core::audit::keys::key_pair;
use asc_core::audit::verify::{verify, VerifyOptions};
use asc_core::audit::{
    AuditEvent, Outcome, PublicKeyring, Sequencer, ShipPolicy, SigningKeyring, Validity,
};
use asc_core::host::HostError;
use asc_core::ledger::LedgerOp;
use common::*;
use serde_json::json;

const LIMIT: u64 = 1_000_000;
const TTL: u64 = 60_000;

fn setup() -> (asc_core::Gateway, FakeHost, String) {
    let host = FakeHost::new();
    let mut tenant = demo_tenant();
    tenant["limits"] = json!({"reservation_ttl_ms": TTL});
    tenant["budgets"] = json!([{"id": "hard", "applies_to": "tenant", "limit_usd_micros": LIMIT,
        "period": "monthly", "mode": "hard"}]);
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    (local_gateway(), host, key)
}

fn ask(stream: bool) -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "max_tokens": 500,
        "messages": [{"role": "user", "content": "Hello"}]})
}

fn stream_events() -> Vec<Vec<u8>> {
    let chunk = |content: &str| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": content},
            "finish_reason": null}]})
        )
        .into_bytes()
    };
    vec![chunk("Hel"), chunk("lo")]
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    ConfigStore,
    LedgerAtAdmit,
    CircuitBoard,
    UpstreamUnreachable,
    UpstreamTimeout,
    CutMidStream,
    LedgerAtCommit,
    LedgerAtCommitOfStream,
    LedgerAtRecord,
}

struct Outcome1 {
    status: u16,
    code: Option<String>,
    request_id: Option<String>,
}

fn inject(host: &FakeHost, fault: Fault) -> bool {
    let stream = matches!(fault, Fault::CutMidStream | Fault::LedgerAtCommitOfStream);
    match fault {
        Fault::ConfigStore => host.kv_down.set(true),
        Fault::LedgerAtAdmit => host
            .ledger_fails
            .set(Some(|op| matches!(op, LedgerOp::Admit(_)))),
        Fault::CircuitBoard => {
            host.circuits_down.set(true);
            host.script(ok_json(completion_json()));
        }
        Fault::UpstreamUnreachable => {
            host.script(Scripted::Fail(HostError::Unreachable("reset".into())))
        }
        Fault::UpstreamTimeout => host.script(Scripted::Fail(HostError::Timeout)),
        Fault::CutMidStream => {
            let mut chunks: Vec<Result<Vec<u8>, HostError>> =
                stream_events().into_iter().map(Ok).collect();
            chunks.push(Err(HostError::Unreachable("reset mid-stream".into())));
            host.script(sse(chunks));
        }
        Fault::LedgerAtCommit => {
            host.ledger_fails
                .set(Some(|op| matches!(op, LedgerOp::Commit(_))));
            host.script(ok_json(completion_json()));
        }
        Fault::LedgerAtCommitOfStream => {
            host.ledger_fails
                .set(Some(|op| matches!(op, LedgerOp::Commit(_))));
            let mut chunks: Vec<Result<Vec<u8>, HostError>> =
                stream_events().into_iter().map(Ok).collect();
            chunks.push(Ok(b"data: [DONE]\n\n".to_vec()));
            host.script(sse(chunks));
        }
        Fault::LedgerAtRecord => host
            .ledger_fails
            .set(Some(|op| matches!(op, LedgerOp::Record(_)))),
    }
    stream
}

fn heal(host: &FakeHost) {
    host.kv_down.set(false);
    host.ledger_fails.set(None);
    host.circuits_down.set(false);
}

fn run_case(gw: &asc_core::Gateway, host: &FakeHost, key: &str, fault: Fault) -> Outcome1 {
    let stream = inject(host, fault);
    let req = if matches!(fault, Fault::LedgerAtRecord) {
        request(
            "GET",
            "/v1/models",
            &[("authorization", &format!("Bearer {key}"))],
            b"",
        )
    } else {
        chat(key, &ask(stream))
    };
    let (status, headers, body) = run(gw, host, req);
    heal(host);
    let code = (status >= 400).then(|| error_code(&body));
    if stream && status == 200 {
        // A broken stream still ends with an event, never silence.
        assert!(
            String::from_utf8_lossy(&body).ends_with("\n\n"),
            "{fault:?}"
        );
    }
    Outcome1 {
        status,
        code,
        request_id: header(&headers, "x-request-id").map(str::to_string),
    }
}

fn spend(gw: &asc_core::Gateway, host: &FakeHost, key: &str) -> (u64, u64) {
    let usage = request(
        "GET",
        "/v1/usage",
        &[("authorization", &format!("Bearer {key}"))],
        b"",
    );
    let (status, _, body) = run(gw, host, usage);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let b = &v["budgets"][0];
    (
        b["spent_micros"].as_u64().expect("spent"),
        b["reserved_micros"].as_u64().expect("reserved"),
    )
}

/// Chains the records as a sequencer does, ships them, and verifies the objects.
fn trail_verifies(events: &[AuditEvent], now: u64) {
    let v = Validity {
        not_before_ms: 0,
        not_after_ms: None,
    };
    let (spec, public) = key_pair("k1", &[7; 32], v).expect("key");
    let ring = SigningKeyring::from_specs(&[spec]).expect("ring");
    let keys = PublicKeyring::from_entries(&[public]).expect("keys");
    let policy = ShipPolicy {
        max_records: 3,
        max_age_ms: 1,
        heartbeat_ms: 10_000,
    };
    let mut seq = Sequencer::new("audit-local", now).expect("stream");
    let mut objects = BTreeMap::new();
    for e in events {
        seq.append(e, now).expect("appends");
    }
    while let Some(s) = seq.next_shipment(now + 1, &policy, &ring).expect("ships") {
        for o in s.objects() {
            objects.insert(o.key.clone(), o.bytes.clone());
        }
        seq.confirm(s.id).expect("confirms");
    }
    let report = verify(
        &objects,
        &keys,
        &VerifyOptions::new(now + 2, policy.heartbeat_ms),
    );
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.records.len(), events.len());
}

#[test]
fn every_fault_ends_clearly_and_leaves_the_books_whole() {
    let cases = [
        // Refused before its key's tenant could be read: the region's trail counts it.
        (Fault::ConfigStore, 503, Some("store_unavailable"), true),
        // The admission failed, but the ledger took the failure's record.
        (Fault::LedgerAtAdmit, 503, Some("store_unavailable"), true),
        (Fault::CircuitBoard, 200, None, true),
        (
            Fault::UpstreamUnreachable,
            502,
            Some("upstream_unreachable"),
            true,
        ),
        (Fault::UpstreamTimeout, 504, Some("upstream_timeout"), true),
        (Fault::CutMidStream, 200, None, true),
        (Fault::LedgerAtCommit, 200, None, true),
        (Fault::LedgerAtCommitOfStream, 200, None, true),
        (Fault::LedgerAtRecord, 503, Some("audit_unavailable"), false),
    ];
    for (fault, status, code, recorded) in cases {
        let (gw, host, key) = setup();
        let got = run_case(&gw, &host, &key, fault);
        assert_eq!(
            (got.status, got.code.as_deref()),
            (status, code),
            "{fault:?}: a clear answer"
        );
        assert!(got.request_id.is_some(), "{fault:?}: x-request-id");
        let sent = host.sent_count();
        if matches!(fault, Fault::ConfigStore | Fault::LedgerAtAdmit) {
            assert_eq!(
                sent, 0,
                "{fault:?}: nothing sent without a durable opening record"
            );
        }

        // Let every unfinished request expire, as the ledger's alarm would.
        host.advance(TTL + 1);
        host.expire_all();
        assert!(
            host.open_requests().is_empty(),
            "{fault:?}: no reservation left open"
        );

        let events: Vec<AuditEvent> = host
            .events
            .borrow()
            .iter()
            .filter(|e| e.record.operation != "usage.read")
            .cloned()
            .collect();
        let id = got.request_id.clone().unwrap_or_default();
        let mine: Vec<&AuditEvent> = events
            .iter()
            .filter(|e| e.record.request_id == id)
            .collect();
        assert_eq!(
            mine.len(),
            usize::from(recorded),
            "{fault:?}: records of the request"
        );
        let mut seen = HashMap::new();
        for e in &events {
            *seen.entry(e.record.request_id.clone()).or_insert(0) += 1;
        }
        assert!(seen.values().all(|n| *n == 1), "{fault:?}: no record twice");

        let (spent, reserved) = spend(&gw, &host, &key);
        let settled: u64 = events
            .iter()
            .filter_map(|e| e.detail.settled_usd_micros)
            .sum();
        assert_eq!(reserved, 0, "{fault:?}");
        assert!(spent <= LIMIT, "{fault:?}");
        assert_eq!(spent, settled, "{fault:?}: the books equal the records");
        if let Some(e) = mine.first() {
            let charged = e.detail.settled_usd_micros.unwrap_or(0);
            assert!(
                charged <= e.detail.reserved_usd_micros.unwrap_or(0),
                "{fault:?}: no overspend"
            );
            match fault {
                Fault::LedgerAtCommit | Fault::LedgerAtCommitOfStream => {
                    // The commit was lost: given up on at expiry, charged in full, partial.
                    assert_eq!(e.record.outcome, Outcome::Partial, "{fault:?}");
                    assert_eq!(e.detail.settled_usd_micros, e.detail.reserved_usd_micros);
                }
                Fault::CutMidStream => assert_eq!(e.record.outcome, Outcome::Partial),
                Fault::ConfigStore => {
                    assert_eq!(e.record.outcome, Outcome::Error);
                    assert_eq!(e.record.tenant_id, None, "no tenant was read");
                    assert_eq!(e.detail.refusals.as_ref().map(|n| n.count), Some(1));
                }
                Fault::UpstreamUnreachable | Fault::UpstreamTimeout | Fault::LedgerAtAdmit => {
                    assert_eq!(e.record.outcome, Outcome::Error);
                    assert_eq!(charged, 0, "{fault:?}: nothing served, nothing charged");
                }
                _ => assert_eq!(e.record.outcome, Outcome::Ok),
            }
        }
        trail_verifies(&host.events.borrow(), host.clock_ms.get());
    }
}
