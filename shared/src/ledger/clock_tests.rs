//! Time at a ledger: operations arrive out of their stamps' order (isolates at different
//! distances, pipelined operations waiting in a queue), and a lease is priced before it is asked
//! for. Limits must hold across minute and period boundaries all the same.

use super::tests::{record, T0};
use super::*;
use crate::budget::{BudgetLine, Budgets, Mode, Period, ReserveAsk, ReserveReply, SettleAsk};
use crate::ratelimit::RateLimit;

const MIN: u64 = 60_000;
const DAY: u64 = 86_400_000;

fn line(limit: u64, period: Period) -> BudgetLine {
    BudgetLine {
        key: "b".into(),
        budget_id: "b".into(),
        limit_micros: limit,
        period,
        mode: Mode::Hard,
        alert_percents: vec![],
    }
}

fn res(id: &str, at: u64, amount: u64, budgets: Vec<BudgetLine>, rpm: Option<u64>) -> ReserveAsk {
    ReserveAsk {
        request_id: id.into(),
        now_ms: at,
        amount_micros: amount,
        tokens: 10,
        requests: 1,
        budgets,
        requests_per_minute: rpm
            .map(|n| RateLimit {
                scope: "tenant".into(),
                per_minute: n,
            })
            .into_iter()
            .collect(),
        tokens_per_minute: vec![],
        expires_ms: at + MIN,
    }
}

fn admit(id: &str, at: u64, r: ReserveAsk) -> LedgerOp {
    LedgerOp::Admit(AdmitAsk {
        now_ms: at,
        expires_ms: at + MIN,
        record: record(id, at, false),
        reserve: Some(r),
        error_rate: None,
    })
}

fn lease(id: &str, at: u64, r: ReserveAsk) -> LedgerOp {
    LedgerOp::Lease(LeaseAsk {
        now_ms: at,
        lease_id: id.into(),
        record: record(id, at, false),
        reserve: Some(r),
        want_requests: 64,
        usable_ms: 2_000,
        grace_ms: MIN,
        close: vec![],
        error_rate: None,
    })
}

fn commit(id: &str, at: u64, cost: u64, lease: Option<&str>) -> LedgerOp {
    let mut r = record(id, at - 1, false);
    r.record.outcome = Outcome::Ok;
    LedgerOp::Commit(CommitAsk {
        now_ms: at,
        record: r,
        actual_micros: cost,
        actual_tokens: 10,
        lease: lease.map(Into::into),
    })
}

fn ok(reply: &LedgerReply) -> bool {
    matches!(
        reply,
        LedgerReply::Admitted { .. } | LedgerReply::Leased { .. }
    )
}

/// Four requests in minute M and four in M+1 fill a limit of 4 a minute. A lease call stamped in
/// M, applied after them, is refused, and so is M+1's next request: the late call used to move the
/// window back to M, empty, wiping M+1's count.
#[test]
fn an_operation_stamped_before_its_minute_ended_counts_in_the_current_one() {
    let mut l = TenantLedger::default();
    let m1 = T0 + MIN; // minute M+1 starts
    for (i, at) in (0..4)
        .map(|i| (i, m1 - 100 + i))
        .chain((4..8).map(|i| (i, m1 + 5 + i)))
    {
        let id = format!("r{i}");
        assert!(ok(&l.apply(admit(
            &id,
            at,
            res(&id, at, 0, vec![], Some(4))
        )))); // 4 in M, 4 in M+1
    }
    let late = l.apply(lease(
        "late",
        m1 - 1,
        res("late", m1 - 1, 0, vec![], Some(4)),
    )); // stamped in M
    let next = l.apply(admit(
        "next",
        m1 + 50,
        res("next", m1 + 50, 0, vec![], Some(4)),
    ));
    assert!(
        !ok(&late) && !ok(&next),
        "limit 4/min, both minutes full; late: {late:?}; next admitted: {}",
        ok(&next)
    );
}

/// Day 1 spent 600 and day 2 700 of a daily 1,000. An admission stamped on day 1 but applied after
/// day 2's is refused (counted on day 2), and so is day 2's next 900: the late one used to roll
/// the budget back to day 1, losing day 2's spend.
#[test]
fn an_operation_stamped_before_its_period_ended_counts_in_the_current_one() {
    let mut l = TenantLedger::default();
    let (d2, b) = (T0 + DAY, || vec![line(1_000, Period::Daily)]);
    l.apply(admit("d1", d2 - 10, res("d1", d2 - 10, 600, b(), None)));
    l.apply(commit("d1", d2 - 9, 600, None)); // day 1: 600
    l.apply(admit("d2", d2 + 5, res("d2", d2 + 5, 700, b(), None)));
    l.apply(commit("d2", d2 + 6, 700, None)); // day 2: 700
    let late = l.apply(admit("late", d2 - 1, res("late", d2 - 1, 900, b(), None)));
    let next = l.apply(admit("next", d2 + 20, res("next", d2 + 20, 900, b(), None)));
    assert!(
        !ok(&late) && !ok(&next),
        "late 900 on day 1 admitted: {}; 900 more on day 2 admitted: {}",
        ok(&late),
        ok(&next)
    );
}

/// A lease priced before midnight and asked for after it (its request waited for another's lease
/// call) admits only in the day its reservation counts in: day 2 serves at most its 1,000.
#[test]
fn a_lease_admits_only_in_the_period_its_reservation_counts_in() {
    let mut l = TenantLedger::default();
    let d2 = T0 + DAY;
    // Priced 500 ms before midnight, asked 500 ms after (waited for another request's lease call).
    let grant = match l.apply(lease(
        "L1",
        d2 + 500,
        res(
            "asker",
            d2 - 500,
            100,
            vec![line(1_000, Period::Daily)],
            None,
        ),
    )) {
        LedgerReply::Leased { grant, .. } => grant,
        other => panic!("{other:?}"),
    };
    let mut served_day2 = 0;
    for i in 0..grant.requests {
        let at = d2 + 510 + i * 10;
        assert!(at < grant.usable_until_ms);
        l.apply(commit(&format!("l{i}"), at, 100, Some("L1")));
        served_day2 += 100;
    }
    l.apply(LedgerOp::CloseLease {
        now_ms: d2 + 900,
        close: LeaseClose {
            lease_id: "L1".into(),
            admitted: grant.requests,
        },
    });
    for i in 0..20 {
        let (id, at) = (format!("w{i}"), d2 + 5_000 + i);
        if !ok(&l.apply(admit(
            &id,
            at,
            res(&id, at, 100, vec![line(1_000, Period::Daily)], None),
        ))) {
            break;
        }
        l.apply(commit(&id, at + 1, 100, None));
        served_day2 += 100;
    }
    assert!(
        served_day2 <= 1_000,
        "day 2 served {served_day2} against a hard daily 1,000 (lease {grant:?})"
    );
}

/// A rolling hour's Retry-After counts only the spend still in the window: retried after it, the
/// request finds room.
#[test]
fn a_rolling_budgets_retry_after_ignores_buckets_already_out_of_the_window() {
    let hour = 60 * MIN;
    let b = || vec![line(1_000, Period::Rolling { window_ms: hour })];
    let mut budgets = Budgets::default();
    for (id, at, amount) in [("a", T0, 600), ("b", T0 + 30 * MIN, 400)] {
        assert!(matches!(
            budgets.reserve(&res(id, at, amount, b(), None)),
            ReserveReply::Admitted { .. }
        ));
        budgets.settle(&SettleAsk {
            request_id: id.into(),
            now_ms: at,
            actual_micros: amount,
            actual_tokens: 0,
        });
    }
    let now = T0 + hour + MIN + 1; // "a" has left the window; "b" leaves at T0 + 91 min
    let ReserveReply::Refused {
        retry_after_ms: Some(retry),
        ..
    } = budgets.reserve(&res("c", now, 700, b(), None))
    else {
        panic!()
    };
    let again = budgets.reserve(&res("c2", now + retry, 700, b(), None));
    assert!(
        retry >= 29 * MIN,
        "Retry-After {retry} ms; retried then: {again:?}"
    );
    assert!(
        matches!(again, ReserveReply::Admitted { .. }),
        "retried after {retry} ms: {again:?}"
    );
}
