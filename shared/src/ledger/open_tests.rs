//! Actions opened write-ahead (`LedgerOp::Open`, the admin plane's changes): ended by their
//! record, chained as partial at expiry, and never touching the tenant's policy or reservations.

use super::tests::{admit, outbox, record, spent, T0, TTL};
use super::*;

pub(super) fn open_action(id: &str, at: u64) -> LedgerOp {
    let mut r = record(id, at, false);
    r.record.operation = "admin.tenant.put".into();
    r.record.key_id = None;
    LedgerOp::Open(OpenAsk {
        now_ms: at,
        expires_ms: at + TTL,
        record: r,
    })
}

fn end_action(id: &str, at: u64) -> LedgerOp {
    let mut r = record(id, at - 10, false);
    r.record.operation = "admin.tenant.put".into();
    r.record.key_id = None;
    r.record.outcome = Outcome::Ok;
    r.record.status = 200;
    LedgerOp::Record(RecordAsk {
        now_ms: at,
        record: r,
    })
}

#[test]
fn an_action_opened_write_ahead_is_one_record_when_it_ends() {
    let mut l = TenantLedger::default();
    assert_eq!(l.apply(open_action("a1", T0)), LedgerReply::Done);
    assert_eq!(l.open_requests(), 1);
    assert_eq!(l.outbox_len(), 0, "the opening waits for the action's end");
    assert_eq!(
        l.wake_at(T0, 200),
        Some(T0 + TTL),
        "its expiry wakes the ledger"
    );
    // A repeated open (a retried call) holds it once.
    assert_eq!(l.apply(open_action("a1", T0 + 1)), LedgerReply::Done);
    assert_eq!(l.open_requests(), 1);
    assert_eq!(l.apply(end_action("a1", T0 + 40)), LedgerReply::Recorded);
    assert_eq!(l.open_requests(), 0);
    assert_eq!(l.expire(T0 + TTL + 1), 0, "nothing is left to give up on");
    let out = outbox(&l);
    assert_eq!(
        out.len(),
        1,
        "one record per action, not an opening and an end"
    );
    assert_eq!(out[0].record.request_id, "a1");
    assert_eq!(out[0].record.outcome, Outcome::Ok);
    assert_eq!(out[0].record.status, 200);
}

#[test]
fn an_action_whose_end_never_comes_is_chained_as_partial_at_expiry() {
    let mut l = TenantLedger::default();
    l.apply(open_action("a2", T0));
    assert_eq!(l.expire(T0 + TTL - 1), 0, "not before its expiry");
    assert_eq!(l.expire(T0 + TTL), 1);
    let out = outbox(&l);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].record.operation, "admin.tenant.put");
    assert_eq!(out[0].record.outcome, Outcome::Partial);
    assert_eq!(
        out[0].record.error_code.as_deref(),
        Some("request_unfinished")
    );
    assert_eq!(out[0].record.latency_ms, TTL);
    assert_eq!(out[0].detail.settled_usd_micros, None, "it held nothing");
    // Its end arriving late is recorded too, as the request's own record after its opening.
    l.apply(end_action("a2", T0 + TTL + 5));
    assert_eq!(outbox(&l).len(), 2);
}

#[test]
fn opening_an_action_leaves_the_tenants_policy_and_reservations_alone() {
    let mut l = TenantLedger::default();
    let rule = crate::config::ErrorRateRule {
        percent: 50,
        min_requests: 10,
        window_ms: 60_000,
    };
    let mut first = admit("r1", T0, Some(300));
    if let LedgerOp::Admit(a) = &mut first {
        a.error_rate = Some(rule);
    }
    l.apply(first);
    l.apply(open_action("a3", T0 + 1));
    assert_eq!(
        l.alerts.rule,
        Some(rule),
        "an admin action states no policy"
    );
    assert_eq!(spent(&mut l, T0 + 2), (0, 300));
    // A plain record with an admitted request's id does not end it: its reservation is
    // settled by its commit, never dropped by a record.
    let mut stray = end_action("r1", T0 + 3);
    if let LedgerOp::Record(r) = &mut stray {
        r.record.record.operation = "chat.completions".into();
    }
    l.apply(stray);
    assert_eq!(l.open_requests(), 2, "r1 and a3 are still open");
    assert_eq!(spent(&mut l, T0 + 4), (0, 300));
}
