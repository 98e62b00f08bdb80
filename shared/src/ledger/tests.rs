use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::open_tests::open_action;
use super::*;
use crate::audit::{AuditRecord, Usage, AUDIT_SCHEMA_VERSION};
use crate::budget::{BudgetLine, Mode, Period, ReserveAsk};
use crate::ratelimit::RateLimit;

pub(super) const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
pub(super) const TTL: u64 = 60_000;

pub(super) fn record(id: &str, at: u64, stream: bool) -> AuditEvent {
    AuditEvent::from(AuditRecord {
        schema_version: AUDIT_SCHEMA_VERSION,
        request_id: id.into(),
        timestamp_ms: at,
        region: "local".into(),
        tenant_id: Some("acme".into()),
        key_id: Some("k_1".into()),
        operation: "chat.completions".into(),
        requested_model: Some("gpt-4o-mini".into()),
        served_model: Some("gpt-4o-mini".into()),
        provider: Some("openai".into()),
        endpoint_host: Some("127.0.0.1".into()),
        stream,
        outcome: Outcome::Partial,
        status: 0,
        error_code: None,
        usage: None,
        latency_ms: 0,
        policy_version: None,
        trace_id: "t".into(),
    })
}

fn budget(limit: u64) -> BudgetLine {
    BudgetLine {
        key: "monthly".into(),
        budget_id: "monthly".into(),
        limit_micros: limit,
        period: Period::Monthly,
        mode: Mode::Hard,
        alert_percents: vec![],
    }
}

pub(super) fn admit(id: &str, at: u64, amount: Option<u64>) -> LedgerOp {
    LedgerOp::Admit(AdmitAsk {
        error_rate: None,
        now_ms: at,
        expires_ms: at + TTL,
        record: record(id, at, false),
        reserve: amount.map(|amount_micros| ReserveAsk {
            request_id: id.into(),
            now_ms: at,
            amount_micros,
            tokens: 100,
            requests: 1,
            budgets: vec![budget(1_000)],
            requests_per_minute: vec![RateLimit {
                scope: "tenant".into(),
                per_minute: 1_000,
            }],
            tokens_per_minute: vec![],
            expires_ms: at + TTL,
        }),
    })
}

pub(super) fn commit(id: &str, at: u64, cost: u64) -> LedgerOp {
    let mut r = record(id, at - 10, false);
    r.record.outcome = Outcome::Ok;
    r.record.status = 200;
    r.record.usage = Some(Usage {
        input_tokens: 10,
        output_tokens: 5,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
    });
    LedgerOp::Commit(CommitAsk {
        now_ms: at,
        record: r,
        actual_micros: cost,
        actual_tokens: 15,
        lease: None,
    })
}

pub(super) fn spent(ledger: &mut TenantLedger, at: u64) -> (u64, u64) {
    match ledger.apply(LedgerOp::Usage(UsageAsk {
        now_ms: at,
        budgets: vec![budget(1_000)],
        requests_per_minute: vec![],
        tokens_per_minute: vec![],
    })) {
        LedgerReply::Usage(r) => (r.budgets[0].spent_micros, r.budgets[0].reserved_micros),
        other => panic!("{other:?}"),
    }
}

pub(super) fn outbox(ledger: &TenantLedger) -> Vec<AuditEvent> {
    ledger
        .outbox
        .values()
        .map(|o| o.record.event().expect("an audit record"))
        .collect()
}

#[test]
fn a_request_is_admitted_then_committed_into_the_outbox() {
    let mut l = TenantLedger::default();
    assert!(matches!(
        l.apply(admit("r1", T0, Some(300))),
        LedgerReply::Admitted { .. }
    ));
    assert_eq!(l.open_requests(), 1);
    assert_eq!(l.outbox_len(), 0, "nothing is recorded until it ends");
    assert_eq!(spent(&mut l, T0), (0, 300));
    let reply = l.apply(commit("r1", T0 + 50, 120));
    assert_eq!(
        reply,
        LedgerReply::Committed {
            charged_micros: Some(120),
            on_time: true,
            alerts: Vec::new(),
        }
    );
    assert_eq!(l.open_requests(), 0);
    assert_eq!(spent(&mut l, T0 + 50), (120, 0));
    let out = outbox(&l);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].record.outcome, Outcome::Ok);
    assert_eq!(out[0].detail.settled_usd_micros, Some(120));
    // A second commit of the same request finds it closed: recorded as late, charged nothing.
    let again = l.apply(commit("r1", T0 + 60, 120));
    assert_eq!(
        again,
        LedgerReply::Committed {
            charged_micros: None,
            on_time: false,
            alerts: Vec::new(),
        }
    );
    assert_eq!(spent(&mut l, T0 + 60), (120, 0));
}

#[test]
fn the_charge_is_capped_at_the_reservation() {
    let mut l = TenantLedger::default();
    l.apply(admit("r1", T0, Some(300)));
    let reply = l.apply(commit("r1", T0 + 5, 10_000));
    assert_eq!(
        reply,
        LedgerReply::Committed {
            charged_micros: Some(300),
            on_time: true,
            alerts: Vec::new(),
        }
    );
}

#[test]
fn a_refusal_is_recorded_by_the_ledger_and_holds_nothing() {
    let mut l = TenantLedger::default();
    l.apply(admit("r1", T0, Some(800)));
    let reply = l.apply(admit("r2", T0 + 1, Some(800)));
    let LedgerReply::Refused { refusal, .. } = reply else {
        panic!("{reply:?}");
    };
    assert_eq!(refusal.code(), "budget_exceeded");
    assert_eq!(l.open_requests(), 1);
    let out = outbox(&l);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].record.request_id, "r2");
    assert_eq!(out[0].record.outcome, Outcome::Refused);
    assert_eq!(out[0].record.status, 429);
    assert_eq!(out[0].record.error_code.as_deref(), Some("budget_exceeded"));
    assert_eq!(spent(&mut l, T0 + 1), (0, 800));
}

#[test]
fn a_retried_admission_holds_nothing_twice() {
    let mut l = TenantLedger::default();
    l.apply(admit("r1", T0, Some(600)));
    assert!(matches!(
        l.apply(admit("r1", T0 + 1, Some(600))),
        LedgerReply::Admitted { .. }
    ));
    assert_eq!(spent(&mut l, T0 + 1), (0, 600));
    assert_eq!(l.open_requests(), 1);
}

#[test]
fn a_reservation_priced_before_the_admission_clock_expires_with_its_opening_record() {
    // The host prices a request (reading the clock, maybe waiting on a price-table read) before
    // it reads the clock again for the admission: the reservation's own expiry is earlier.
    let mut l = TenantLedger::default();
    let mut ask = admit("skewed", T0, Some(400));
    if let LedgerOp::Admit(a) = &mut ask {
        a.expires_ms = T0 + 40 + TTL;
    }
    l.apply(ask);
    assert_eq!(
        l.expire(T0 + TTL),
        0,
        "the reservation is held as long as the request"
    );
    assert_eq!(spent(&mut l, T0 + TTL), (0, 400));
    assert_eq!(l.expire(T0 + 40 + TTL), 1);
    assert_eq!(spent(&mut l, T0 + 40 + TTL), (400, 0));
    let out = outbox(&l);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].detail.settled_usd_micros,
        Some(400),
        "recorded as charged"
    );
}

#[test]
fn a_stored_reservation_that_expires_before_its_request_is_held_until_the_request_expires() {
    // Rows written before admissions aligned the two expiries: the reservation's is earlier.
    let mut l = TenantLedger::default();
    l.apply(admit("old", T0, Some(300)));
    let mut rows: BTreeMap<String, String> =
        l.take_writes().expect("writes").puts.into_iter().collect();
    let key = request_key("old");
    let mut row: serde_json::Value = serde_json::from_str(&rows[&key]).expect("row");
    assert_eq!(row["reservation"]["expires_ms"], T0 + TTL);
    row["reservation"]["expires_ms"] = (T0 + TTL - 30).into();
    rows.insert(key, row.to_string());
    let mut restored = TenantLedger::restore(rows.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .expect("restores");
    assert_eq!(restored.expire(T0 + TTL - 30), 0);
    assert_eq!(spent(&mut restored, T0 + TTL - 30), (0, 300), "still held");
    assert_eq!(restored.expire(T0 + TTL), 1);
    let out = outbox(&restored);
    assert_eq!(out[0].detail.settled_usd_micros, Some(300));
    assert_eq!(spent(&mut restored, T0 + TTL), (300, 0));
}

#[test]
fn an_unfinished_request_is_charged_in_full_and_recorded_as_partial_at_expiry() {
    let mut l = TenantLedger::default();
    l.apply(admit("plain", T0, Some(250)));
    let mut streamed = admit("streamed", T0, None);
    if let LedgerOp::Admit(a) = &mut streamed {
        a.record.record.stream = true;
    }
    l.apply(streamed);
    assert_eq!(l.wake_at(T0, 500), Some(T0 + TTL));
    assert_eq!(l.expire(T0 + TTL - 1), 0, "not before its time");
    assert_eq!(l.expire(T0 + TTL), 2);
    assert_eq!(spent(&mut l, T0 + TTL), (250, 0));
    let out = outbox(&l);
    let by_id = |id: &str| out.iter().find(|r| r.record.request_id == id).cloned();
    let plain = by_id("plain").expect("recorded");
    assert_eq!(plain.record.outcome, Outcome::Partial);
    assert_eq!(
        plain.record.error_code.as_deref(),
        Some("request_unfinished")
    );
    assert_eq!(plain.detail.settled_usd_micros, Some(250));
    assert_eq!(plain.record.latency_ms, TTL);
    let streamed = by_id("streamed").expect("recorded");
    assert_eq!(
        streamed.record.error_code.as_deref(),
        Some("stream_abandoned")
    );
    assert_eq!(
        streamed.detail.settled_usd_micros, None,
        "held no reservation"
    );
    // The commit that comes after: recorded, marked, charged nothing more.
    let late = l.apply(commit("plain", T0 + TTL + 5, 10));
    assert_eq!(
        late,
        LedgerReply::Committed {
            charged_micros: None,
            on_time: false,
            alerts: Vec::new(),
        }
    );
    assert_eq!(spent(&mut l, T0 + TTL + 5), (250, 0));
    let last = outbox(&l).pop().expect("late record");
    assert_eq!(last.detail.after_expiry, Some(true));
}

#[test]
fn a_ledger_stored_whole_keeps_its_opening_records_as_text_until_they_expire() {
    // As Spin stores a ledger (the whole state as one JSON row) and another instance reads it.
    let mut live = TenantLedger::default();
    live.apply(admit("plain", T0, Some(250)));
    live.apply(admit("edited", T0, Some(100)));
    live.take_writes().expect("serializes"); // what is left to store: not part of the state
    let row = crate::json_ser::to_string(&live).expect("serializes");
    let mut read: TenantLedger = serde_json::from_str(&row).expect("parses");
    assert_eq!(read, live);
    let kept = read.open_request("plain").expect("open");
    assert!(matches!(kept.record, OpeningRecord::Stored(_)), "{kept:?}");
    assert_eq!(
        crate::json_ser::to_string(&read).expect("serializes"),
        row,
        "written back as it was read"
    );
    // Expired from the text, the record is the one the live ledger chains.
    live.expire(T0 + TTL);
    read.expire(T0 + TTL);
    assert_eq!(outbox(&read), outbox(&live));
    assert_eq!(outbox(&read)[1].detail.settled_usd_micros, Some(250));

    // A stored opening record edited into something that is not an audit record: the request
    // is still recorded at expiry, and charged, with a record that says so.
    let edited = row.replacen(
        r#""request_id":"edited","timestamp_ms""#,
        r#""request_id":7,"timestamp_ms""#,
        1,
    );
    assert_ne!(edited, row);
    let mut read: TenantLedger = serde_json::from_str(&edited).expect("still parses");
    assert_eq!(read.expire(T0 + TTL), 2);
    let records = outbox(&read);
    let unreadable = records
        .iter()
        .find(|r| r.record.request_id == "edited")
        .expect("recorded");
    assert_eq!(unreadable.record.outcome, Outcome::Partial);
    assert_eq!(
        unreadable.record.error_code.as_deref(),
        Some("opening_record_unreadable")
    );
    assert_eq!(unreadable.detail.settled_usd_micros, Some(100));
}

#[test]
fn forwarding_resends_until_acknowledged_and_keeps_its_stream() {
    let id = LedgerId("acme".into());
    let mut l = TenantLedger::default();
    for n in 0..(FORWARD_BATCH_MAX as u64 + 10) {
        l.apply(LedgerOp::Record(RecordAsk {
            now_ms: T0 + n,
            record: record(&format!("r{n}"), T0 + n, false),
        }));
    }
    let first = l
        .forward_batch(&id, "audit-eu-1-of-4")
        .expect("readable records")
        .expect("a batch");
    assert_eq!(first.first_seq, 1);
    assert_eq!(first.records.len(), FORWARD_BATCH_MAX);
    assert_eq!(first.source, "acme");
    // Not acknowledged (lost): the same records go again, to the same stream, even if the
    // region now has another shard count.
    let again = l
        .forward_batch(&id, "audit-eu-5-of-16")
        .expect("readable records")
        .expect("a batch");
    assert_eq!(again, first);
    // The borrowing form the Worker sends is the same batch, in the same JSON.
    let borrowed = l.forward_ref(&id, "x").expect("a batch");
    assert_eq!(borrowed.last_seq(), first.last_seq());
    let json = serde_json::to_string(&borrowed).expect("json");
    assert_eq!(json, serde_json::to_string(&first).expect("json"));
    assert_eq!(
        serde_json::from_str::<ForwardBatch>(&json).expect("parses"),
        first
    );
    // Acknowledged part way (the stream had chained up to 100 already, say): the rest follows.
    l.forwarded(ForwardAck { through: 100 });
    let rest = l
        .forward_batch(&id, "audit-eu-5-of-16")
        .expect("readable records")
        .expect("a batch");
    assert_eq!(rest.first_seq, 101);
    assert_eq!(rest.stream, "audit-eu-1-of-4");
    assert_eq!(rest.last_seq(), first.last_seq());
    l.forwarded(ForwardAck {
        through: rest.last_seq(),
    });
    let tail = l
        .forward_batch(&id, "audit-eu-5-of-16")
        .expect("readable records")
        .expect("the tail");
    assert_eq!(tail.stream, "audit-eu-5-of-16");
    assert_eq!(tail.records.len(), 10);
    l.forwarded(ForwardAck {
        through: tail.last_seq(),
    });
    assert!(l
        .forward_batch(&id, "x")
        .expect("readable records")
        .is_none());
    assert_eq!(l.wake_at(T0, 500), None, "nothing left to do");
}

#[test]
fn the_outbox_wakes_the_host_to_forward() {
    let mut l = TenantLedger::default();
    l.apply(LedgerOp::Record(RecordAsk {
        now_ms: T0,
        record: record("r", T0, false),
    }));
    assert_eq!(l.wake_at(T0, 200), Some(T0 + 200));
}

#[test]
fn a_commit_rewrites_one_piece_and_deletes_none() {
    let mut l = TenantLedger::default();
    l.apply(admit("r1", T0, Some(300)));
    let w = l.take_writes().expect("writes");
    let keys: Vec<&str> = w.puts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec![TOTALS_KEY, "req:r1"]);
    l.apply(commit("r1", T0 + 5, 100));
    let w = l.take_writes().expect("writes");
    let keys: Vec<&str> = w.puts.iter().map(|(k, _)| k.as_str()).collect();
    // The record's hour of the key's usage rollup is the one other piece a commit writes.
    // (The commit's record started at T0 - 5 ms: the hour before T0.)
    let rollup = format!("roll:h{:013}:k_1", T0 - 3_600_000);
    assert_eq!(
        keys,
        vec![TOTALS_KEY, rollup.as_str(), "req:r1"],
        "the finished record takes the open one's key"
    );
    assert!(w.deletes.is_empty());
    // Forwarded and acknowledged: now the piece goes.
    let batch = l
        .forward_batch(&LedgerId("acme".into()), "audit-local")
        .expect("readable records")
        .expect("batch");
    l.forwarded(ForwardAck {
        through: batch.last_seq(),
    });
    let w = l.take_writes().expect("writes");
    assert_eq!(w.deletes, vec!["req:r1".to_string()]);
}

fn recorded(id: &str, at: u64) -> LedgerOp {
    LedgerOp::Record(RecordAsk {
        now_ms: at,
        record: record(id, at, false),
    })
}

#[test]
fn records_finished_together_share_one_row_until_the_last_is_forwarded() {
    let id = LedgerId("acme".into());
    let mut l = TenantLedger::default();
    for n in 0..3 {
        l.apply(recorded(&format!("g{n}"), T0 + n));
    }
    let w = l.take_writes().expect("writes");
    let groups: Vec<&(String, String)> = w
        .puts
        .iter()
        .filter(|(k, _)| k.starts_with(GROUP_PREFIX))
        .collect();
    assert_eq!(
        groups.len(),
        1,
        "one row for the three records: {:?}",
        w.puts
    );
    assert!(
        !w.puts.iter().any(|(k, _)| k.starts_with(REQUEST_PREFIX)),
        "no row per record"
    );
    let stored: Vec<serde_json::Value> = serde_json::from_str(&groups[0].1).expect("json");
    let ids: Vec<&str> = stored
        .iter()
        .map(|g| g["record"]["request_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["g0", "g1", "g2"]);
    // The next call's records start a row of their own.
    l.apply(recorded("h0", T0 + 10));
    let w = l.take_writes().expect("writes");
    let next: Vec<&str> = w
        .puts
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with(GROUP_PREFIX))
        .collect();
    assert_eq!(next.len(), 1);
    assert_ne!(next[0], groups[0].0, "a new group, a new row");
    // Two of the first three forwarded: the row stays as written...
    let batch = l
        .forward_batch(&id, "audit-local")
        .expect("readable records")
        .expect("batch");
    l.forwarded(ForwardAck {
        through: batch.first_seq + 1,
    });
    let w = l.take_writes().expect("writes");
    assert!(w.deletes.is_empty(), "{:?}", w.deletes);
    assert!(!w.puts.iter().any(|(k, _)| k.starts_with(GROUP_PREFIX)));
    // A restart now rebuilds the outbox without the two already forwarded.
    let mut rows = BTreeMap::new();
    for (k, v) in groups.iter().map(|(k, v)| (k.clone(), v.clone())) {
        rows.insert(k, v);
    }
    let restored =
        TenantLedger::restore(rows.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain([(
            META_KEY,
            serde_json::to_string(&l.meta).expect("meta").as_str(),
        )]))
        .expect("restores");
    let left: Vec<String> = restored
        .outbox
        .values()
        .map(|o| o.record.event().expect("record").record.request_id)
        .collect();
    assert_eq!(
        left,
        ["g2"],
        "forwarded records are not resent after a restart"
    );
    // ...and goes with the third.
    l.forwarded(ForwardAck {
        through: batch.first_seq + 2,
    });
    let w = l.take_writes().expect("writes");
    assert_eq!(w.deletes, vec![groups[0].0.clone()]);
}

/// A store that applies writes the way a Durable Object does: puts, then deletes.
pub(super) fn store(writes: &LedgerWrites, into: &mut BTreeMap<String, String>) {
    for (k, v) in &writes.puts {
        into.insert(k.clone(), v.clone());
    }
    for k in &writes.deletes {
        into.remove(k);
    }
}

fn any_op() -> impl Strategy<Value = (u8, u8, u16)> {
    (0u8..6, 0u8..12, 0u16..400)
}

proptest! {
    /// Whatever the operations, the pieces written after each one rebuild exactly the state in
    /// memory: a Durable Object that restarts between any two operations carries on unchanged.
    #[test]
    fn stored_pieces_rebuild_the_state(ops in proptest::collection::vec(any_op(), 1..60)) {
        let id = LedgerId("acme".into());
        let mut live = TenantLedger::default();
        let mut stored = BTreeMap::new();
        let mut now = T0;
        let last = ops.len() - 1;
        for (i, (kind, req, amount)) in ops.into_iter().enumerate() {
            now += u64::from(amount) * 100;
            let rid = format!("r{req}");
            match kind {
                0 => { live.apply(admit(&rid, now, Some(u64::from(amount)))); }
                1 => { live.apply(admit(&rid, now, None)); }
                2 => { live.apply(commit(&rid, now, u64::from(amount))); }
                3 => { live.expire(now); }
                4 => { live.apply(recorded(&rid, now)); }
                _ => {
                    if let Some(batch) = live.forward_batch(&id, "audit-local").expect("readable") {
                        let through = batch.first_seq + u64::from(amount) % batch.records.len() as u64;
                        live.forwarded(ForwardAck { through });
                    }
                }
            }
            // Stored after one to three operations, as a host that applies a group per call:
            // so a group row holds several records, and some are forwarded before its last.
            if req % 3 != 0 && i != last {
                continue;
            }
            store(&live.take_writes().expect("serializes"), &mut stored);
            let restored = TenantLedger::restore(stored.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .expect("restores");
            prop_assert_eq!(&restored, &live);
        }
    }
}

#[test]
fn every_reply_survives_the_json_boundary() {
    // Hosts move replies as JSON text: each variant must serialize and parse back.
    let mut l = TenantLedger::default();
    l.apply(admit("r1", T0, Some(300)));
    l.apply(commit("r1", T0 + 5, 100));
    let replies = [
        l.apply(LedgerOp::Analytics(crate::ledger::AnalyticsAsk {
            from_ms: T0 - 7_200_000,
            to_ms: T0 + 3_600_000,
            bucket_ms: 3_600_000,
            group_by: vec![crate::ledger::Dimension::Model],
        })),
        l.apply(LedgerOp::Alerts { limit: 10 }),
        l.apply(LedgerOp::Raise {
            now_ms: T0,
            events: Vec::new(),
        }),
    ];
    for reply in replies {
        let text = serde_json::to_string(&reply).expect("serializes");
        let back: LedgerReply = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, reply);
    }
}

/// One of each operation, with optional parts filled where the variant has them.
fn every_operation() -> Vec<LedgerOp> {
    let mut lease = admit("asker", T0, Some(300));
    let LedgerOp::Admit(a) = &mut lease else {
        unreachable!("admit builds an admission")
    };
    a.error_rate = Some(crate::config::ErrorRateRule {
        percent: 20,
        min_requests: 10,
        window_ms: 60_000,
    });
    let lease_ask = LedgerOp::Lease(crate::ledger::LeaseAsk {
        now_ms: T0,
        lease_id: "lease_1".into(),
        record: record("asker", T0, false),
        reserve: a.reserve.clone(),
        want_requests: 64,
        usable_ms: 2_000,
        grace_ms: 30_000,
        close: vec![crate::ledger::LeaseClose {
            lease_id: "lease_0".into(),
            admitted: 12,
        }],
        error_rate: a.error_rate,
    });
    let mut leased_commit = commit("r2", T0 + 5, 100);
    if let LedgerOp::Commit(c) = &mut leased_commit {
        c.lease = Some("lease_1".into());
    }
    vec![
        lease.clone(),
        lease_ask,
        LedgerOp::CloseLease {
            now_ms: T0 + 9,
            close: crate::ledger::LeaseClose {
                lease_id: "lease_1".into(),
                admitted: 3,
            },
        },
        commit("r1", T0 + 5, 100),
        leased_commit,
        recorded("r3", T0),
        open_action("a1", T0),
        LedgerOp::Usage(UsageAsk {
            now_ms: T0,
            budgets: vec![budget(1_000)],
            requests_per_minute: vec![RateLimit {
                scope: "tenant".into(),
                per_minute: 60,
            }],
            tokens_per_minute: vec![],
        }),
        LedgerOp::Analytics(crate::ledger::AnalyticsAsk {
            from_ms: T0,
            to_ms: T0 + 3_600_000,
            bucket_ms: 3_600_000,
            group_by: vec![
                crate::ledger::Dimension::Model,
                crate::ledger::Dimension::Tag,
            ],
        }),
        LedgerOp::Alerts { limit: 10 },
        LedgerOp::Raise {
            now_ms: T0,
            events: vec![crate::alerts::AlertEvent {
                id: "alert_1".into(),
                kind: crate::alerts::AlertKind::CircuitOpened,
                tenant_id: "acme".into(),
                at_ms: T0,
                detail: serde_json::json!({"target": "openai/gpt-4o-mini"}),
            }],
        },
        LedgerOp::ClaimAlerts { now_ms: T0 },
        LedgerOp::Delivered {
            now_ms: T0,
            results: vec![("alert_1".into(), crate::ledger::Delivery::Retry)],
        },
    ]
}

#[test]
fn every_operation_survives_the_json_boundary_with_its_tag_anywhere() {
    // Hosts move operations as JSON text, tag first (read without buffering); another writer may
    // put the tag anywhere (read through a buffer): both read back the same operation.
    let ops = every_operation();
    let tags: BTreeSet<String> = ops
        .iter()
        .map(|op| serde_json::to_value(op).expect("serializes")["op"].to_string())
        .collect();
    assert_eq!(tags.len(), 12, "one of each variant: {tags:?}");
    for op in ops {
        let text = serde_json::to_string(&op).expect("serializes");
        assert!(text.starts_with(r#"{"op":"#), "{text}");
        let back: LedgerOp = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, op);

        let mut fields = match serde_json::to_value(&op).expect("serializes") {
            serde_json::Value::Object(m) => m,
            other => panic!("an operation is an object: {other}"),
        };
        let tag = fields.remove("op").expect("tagged");
        let mut text = serde_json::to_string(&fields).expect("serializes");
        text.insert_str(text.len() - 1, &format!(r#","op":{tag}"#));
        let back: LedgerOp = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, op, "tag last: {text}");
    }
}

#[test]
fn an_operation_without_a_known_tag_is_refused_with_the_reason() {
    let untagged = r#"{"now_ms":1,"limit":3}"#;
    let err = serde_json::from_str::<LedgerOp>(untagged).expect_err("refused");
    assert!(err.to_string().contains("missing field `op`"), "{err}");
    let err = serde_json::from_str::<LedgerOp>("{}").expect_err("refused");
    assert!(err.to_string().contains("missing field `op`"), "{err}");
    for text in [
        r#"{"op":"reset","now_ms":1}"#,
        r#"{"now_ms":1,"op":"reset"}"#,
    ] {
        let err = serde_json::from_str::<LedgerOp>(text).expect_err("refused");
        assert!(err.to_string().contains("unknown variant `reset`"), "{err}");
    }
    // The variant's own rules still hold: a missing field is named.
    let err = serde_json::from_str::<LedgerOp>(r#"{"op":"alerts"}"#).expect_err("refused");
    assert!(err.to_string().contains("missing field `limit`"), "{err}");
    let err = serde_json::from_str::<LedgerOp>("[1]").expect_err("refused");
    assert!(err.to_string().contains("ledger operation"), "{err}");
}
