//! Leases in the ledger: sizing, drawing, closing, expiry, and the budget invariant under any
//! sequence of them.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::tests::{record, store, T0};
use super::*;
use crate::budget::{BudgetLine, Mode, Period, ReserveAsk};
use crate::ratelimit::RateLimit;

const GRACE: u64 = 60_000;
const LIMIT: u64 = 1_000;

fn line() -> BudgetLine {
    BudgetLine {
        key: "monthly".into(),
        budget_id: "monthly".into(),
        limit_micros: LIMIT,
        period: Period::Monthly,
        mode: Mode::Hard,
        alert_percents: vec![],
    }
}

fn ask(lease: &str, at: u64, worst: u64, rpm: Option<u64>, close: Vec<LeaseClose>) -> LedgerOp {
    LedgerOp::Lease(LeaseAsk {
        now_ms: at,
        lease_id: lease.into(),
        record: record(&format!("asker-{lease}"), at, false),
        reserve: Some(ReserveAsk {
            request_id: format!("asker-{lease}"),
            now_ms: at,
            amount_micros: worst,
            tokens: 100,
            requests: 1,
            budgets: vec![line()],
            requests_per_minute: rpm
                .map(|n| RateLimit {
                    scope: "tenant".into(),
                    per_minute: n,
                })
                .into_iter()
                .collect(),
            tokens_per_minute: vec![],
            expires_ms: at + GRACE,
        }),
        want_requests: 64,
        usable_ms: 2_000,
        grace_ms: GRACE,
        close,
        error_rate: None,
    })
}

fn served(id: &str, lease: &str, at: u64, cost: u64) -> LedgerOp {
    let mut r = record(id, at - 10, false);
    r.record.outcome = Outcome::Ok;
    r.record.status = 200;
    LedgerOp::Commit(CommitAsk {
        now_ms: at,
        record: r,
        actual_micros: cost,
        actual_tokens: 15,
        lease: Some(lease.into()),
    })
}

fn close(lease: &str, admitted: u64, at: u64) -> LedgerOp {
    LedgerOp::CloseLease {
        now_ms: at,
        close: LeaseClose {
            lease_id: lease.into(),
            admitted,
        },
    }
}

/// (spent, reserved) of the monthly budget.
fn money(l: &mut TenantLedger, at: u64) -> (u64, u64) {
    match l.apply(LedgerOp::Usage(UsageAsk {
        now_ms: at,
        budgets: vec![line()],
        requests_per_minute: vec![],
        tokens_per_minute: vec![],
    })) {
        LedgerReply::Usage(r) => (r.budgets[0].spent_micros, r.budgets[0].reserved_micros),
        other => panic!("{other:?}"),
    }
}

fn requests_used(l: &mut TenantLedger, at: u64, rpm: u64) -> u64 {
    match l.apply(LedgerOp::Usage(UsageAsk {
        now_ms: at,
        budgets: vec![],
        requests_per_minute: vec![RateLimit {
            scope: "tenant".into(),
            per_minute: rpm,
        }],
        tokens_per_minute: vec![],
    })) {
        LedgerReply::Usage(r) => r.requests_per_minute[0].used,
        other => panic!("{other:?}"),
    }
}

fn granted(reply: LedgerReply) -> LeaseGrant {
    match reply {
        LedgerReply::Leased { grant, .. } => grant,
        other => panic!("expected a lease, got {other:?}"),
    }
}

fn lease_records(l: &TenantLedger) -> Vec<AuditEvent> {
    l.outbox
        .values()
        .map(|o| o.record.event().expect("an audit record"))
        .filter(|r| r.record.operation == LEASE_OPERATION)
        .collect()
}

#[test]
fn a_lease_holds_half_the_room_and_is_released_when_every_request_reported() {
    let mut l = TenantLedger::default();
    // Room 1,000, worst case 100: half the room is 5 worst cases.
    let g = granted(l.apply(ask("L1", T0, 100, None, vec![])));
    assert_eq!((g.requests, g.micros), (5, Some(500)));
    assert_eq!(money(&mut l, T0), (0, 500));
    // Another isolate's lease gets half of what is left: 2 (500 / 100 / 2).
    let g2 = granted(l.apply(ask("L2", T0, 100, None, vec![])));
    assert_eq!((g2.requests, g2.micros), (2, Some(200)));
    // Two requests served under L1 at 40 each: charged as they report, the rest still held.
    l.apply(served("r1", "L1", T0 + 20, 40));
    l.apply(served("r2", "L1", T0 + 30, 40));
    assert_eq!(money(&mut l, T0 + 30), (80, 620));
    // Closed having admitted 3: one record is still to come, so the lease stays.
    l.apply(close("L1", 3, T0 + 40));
    assert_eq!(l.open_leases(), 2);
    assert!(lease_records(&l).is_empty());
    l.apply(served("r3", "L1", T0 + 50, 500));
    // r3's 500 is capped at what L1 still held (420); then L1 is done and released.
    assert_eq!(money(&mut l, T0 + 50), (500, 200));
    assert_eq!(l.open_leases(), 1);
    let records = lease_records(&l);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.record.request_id, "L1");
    assert_eq!(r.record.outcome, Outcome::Ok);
    assert_eq!(r.detail.settled_usd_micros, Some(500));
    let note = r.detail.lease.clone().expect("lease note");
    assert_eq!(
        (note.granted, note.admitted, note.reported),
        (Some(5), Some(3), Some(3))
    );
    // Each request's record names its lease.
    let named = l
        .outbox
        .values()
        .map(|o| o.record.event().expect("an audit record"))
        .filter(|r| r.detail.lease.as_ref().is_some_and(|n| n.id == "L1"))
        .count();
    assert_eq!(named, 4, "three requests and the lease itself");
}

#[test]
fn a_lease_whose_isolate_died_is_charged_what_it_held_and_recorded_as_unreconciled() {
    let mut l = TenantLedger::default();
    let g = granted(l.apply(ask("L1", T0, 100, None, vec![])));
    l.apply(served("r1", "L1", T0 + 10, 30));
    assert!(l.wake_at(T0 + 10, 200).is_some());
    // Never closed: at its expiry what it still held (470) is charged.
    let expiry = g.usable_until_ms + GRACE;
    l.expire(expiry - 1);
    assert_eq!(l.open_leases(), 1);
    l.expire(expiry);
    assert_eq!(l.open_leases(), 0);
    assert_eq!(money(&mut l, expiry), (500, 0));
    let records = lease_records(&l);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.record.outcome, Outcome::Partial);
    assert_eq!(r.record.error_code.as_deref(), Some("lease_unreconciled"));
    assert_eq!(r.detail.settled_usd_micros, Some(500));
    let note = r.detail.lease.clone().expect("note");
    assert_eq!(
        (note.granted, note.admitted, note.reported),
        (Some(5), None, Some(1))
    );
    // The tenant's analytics add up to what its budget was charged: r1's 30 as a request, the
    // 470 it never returned as cost without one.
    let rows = match l.apply(LedgerOp::Analytics(crate::ledger::AnalyticsAsk {
        from_ms: T0,
        to_ms: expiry,
        bucket_ms: crate::ledger::insights::HOUR_MS,
        group_by: vec![crate::ledger::Dimension::Model],
    })) {
        LedgerReply::Analytics { rows } => rows,
        other => panic!("{other:?}"),
    };
    let sum = |f: fn(&crate::ledger::insights::Rollup) -> u64| -> u64 {
        rows.iter().map(|r| f(&r.figures)).sum()
    };
    assert_eq!(sum(|f| f.cost_usd_micros), 500, "{rows:?}");
    assert_eq!(sum(|f| f.unreturned_usd_micros), 470);
    assert_eq!(sum(|f| f.requests), 1, "the lease is not a request");
    let unreturned: Vec<_> = rows
        .iter()
        .filter(|r| r.figures.unreturned_usd_micros > 0)
        .map(|r| (r.model.as_deref(), r.figures.requests))
        .collect();
    assert_eq!(unreturned, [(Some(""), 0)], "a group of its own");
    // A record that arrives later is kept, marked, and charges nothing more.
    let reply = l.apply(served("r2", "L1", expiry + 5, 50));
    assert_eq!(
        reply,
        LedgerReply::Committed {
            charged_micros: None,
            on_time: false,
            alerts: Vec::new(),
        }
    );
    assert_eq!(money(&mut l, expiry + 5), (500, 0));
    let last = l
        .outbox
        .values()
        .last()
        .expect("r2")
        .record
        .event()
        .expect("record");
    assert_eq!(last.detail.after_expiry, Some(true));
}

#[test]
fn unused_requests_return_to_the_rate_window_and_a_full_budget_refuses() {
    let mut l = TenantLedger::default();
    // 10 requests a minute: a lease holds 5.
    let g = granted(l.apply(ask("L1", T0, 10, Some(10), vec![])));
    assert_eq!(g.requests, 5);
    assert!(
        g.usable_until_ms <= T0 + 60_000,
        "never past the rate minute"
    );
    assert_eq!(requests_used(&mut l, T0, 10), 5);
    l.apply(served("r1", "L1", T0 + 10, 10));
    l.apply(close("L1", 1, T0 + 20));
    assert_eq!(requests_used(&mut l, T0 + 20, 10), 1, "4 unused given back");
    // The budget nearly spent: room 40, worst case 100: refused, and the refusal recorded.
    l.apply(ask("L2", T0 + 30, 485, None, vec![]));
    l.apply(served("r2", "L2", T0 + 40, 485));
    l.apply(ask("L3", T0 + 50, 470, None, vec![close_of("L2", 1)]));
    l.apply(served("r3", "L3", T0 + 60, 470));
    assert_eq!(money(&mut l, T0 + 60).0, 965);
    let reply = l.apply(ask("L4", T0 + 70, 100, None, vec![]));
    match reply {
        LedgerReply::Refused { refusal, .. } => assert_eq!(refusal.code(), "budget_exceeded"),
        other => panic!("{other:?}"),
    }
    let refused = l
        .outbox
        .values()
        .last()
        .expect("refusal")
        .record
        .event()
        .expect("record");
    assert_eq!(refused.record.request_id, "asker-L4");
    assert_eq!(refused.record.outcome, Outcome::Refused);
}

fn close_of(lease: &str, admitted: u64) -> LeaseClose {
    LeaseClose {
        lease_id: lease.into(),
        admitted,
    }
}

proptest! {
    /// Whatever isolates do with leases (grants, requests costing up to their worst case,
    /// closes with any count, isolates dying, expiries, restarts), a hard budget is never
    /// over-spent, nothing stays held once every lease has ended, and the stored pieces rebuild
    /// the ledger exactly.
    #[test]
    fn leases_never_over_spend_and_survive_restarts(
        ops in proptest::collection::vec((0u8..4, 0u8..4, 0u16..200), 1..80)
    ) {
        let mut l = TenantLedger::default();
        let mut stored = BTreeMap::new();
        let mut now = T0;
        // Per isolate: its lease, worst case, requests served, micros it may still admit.
        let mut held: BTreeMap<u8, (String, u64, u64, u64)> = BTreeMap::new();
        let mut n = 0;
        for (kind, isolate, amount) in ops {
            now += u64::from(amount) * 37;
            n += 1;
            match kind {
                0 => {
                    let worst = u64::from(amount) + 1;
                    let lease = format!("L{n}");
                    if let std::collections::btree_map::Entry::Vacant(slot) = held.entry(isolate) {
                        if let LedgerReply::Leased { grant, .. } = l.apply(ask(&lease, now, worst, None, vec![])) {
                            slot.insert((lease, worst, 0, grant.micros.unwrap_or(0)));
                        }
                    }
                }
                1 => {
                    if let Some((lease, worst, served_n, left)) = held.get_mut(&isolate) {
                        if *left >= *worst {
                            *left -= *worst;
                            *served_n += 1;
                            let cost = u64::from(amount) % (*worst + 1);
                            l.apply(served(&format!("r{n}"), lease, now, cost));
                            *left += *worst - cost;
                        }
                    }
                }
                2 => {
                    // Sometimes the isolate says it admitted one more than ever reported.
                    if let Some((lease, _, served_n, _)) = held.remove(&isolate) {
                        l.apply(close(&lease, served_n + u64::from(amount % 2), now));
                    }
                }
                _ => {
                    l.expire(now);
                }
            }
            let (spent, reserved) = money(&mut l, now);
            prop_assert!(spent + reserved <= LIMIT, "spent {} + reserved {} over {}", spent, reserved, LIMIT);
            store(&l.take_writes().expect("serializes"), &mut stored);
            let restored = TenantLedger::restore(stored.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .expect("restores");
            prop_assert_eq!(&restored, &l);
        }
        l.expire(now + 10 * GRACE + 3_600_000);
        prop_assert_eq!(l.open_leases(), 0);
        prop_assert_eq!(money(&mut l, now + 10 * GRACE + 3_600_000).1, 0);
    }
}
