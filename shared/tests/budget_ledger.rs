//! The ledger's guarantees: hard budgets hold under any interleaving of reserves, settles and
//! expiries; periods roll over exactly at their boundary; settles are idempotent.

use std::collections::HashMap;

use asc_core::budget::period::parse_instant;
use asc_core::budget::{
    BudgetLine, Budgets, Mode, Period, Refusal, ReserveAsk, ReserveReply, SettleAsk, SettleReply,
};
use asc_core::ratelimit::RateLimit;
use proptest::prelude::*;

fn line(key: &str, limit: u64, period: Period, mode: Mode) -> BudgetLine {
    BudgetLine {
        key: key.into(),
        budget_id: key.into(),
        limit_micros: limit,
        period,
        mode,
        alert_percents: vec![80],
    }
}

fn ask(id: &str, now: u64, amount: u64, budgets: Vec<BudgetLine>) -> ReserveAsk {
    ReserveAsk {
        request_id: id.into(),
        now_ms: now,
        amount_micros: amount,
        tokens: 0,
        requests: 1,
        budgets,
        requests_per_minute: vec![],
        tokens_per_minute: vec![],
        expires_ms: now + 60_000,
    }
}

fn settle(id: &str, now: u64, actual: u64) -> SettleAsk {
    SettleAsk {
        request_id: id.into(),
        now_ms: now,
        actual_micros: actual,
        actual_tokens: 0,
    }
}

fn t(s: &str) -> u64 {
    parse_instant(s).expect("instant")
}

#[test]
fn a_hard_budget_refuses_what_does_not_fit_and_reserved_money_counts() {
    let mut l = Budgets::default();
    let b = vec![line("monthly", 1000, Period::Monthly, Mode::Hard)];
    let now = t("2026-05-10T12:00:00Z");
    assert!(matches!(
        l.reserve(&ask("a", now, 600, b.clone())),
        ReserveReply::Admitted { .. }
    ));
    // 600 reserved + 500 > 1000, even though nothing is spent yet.
    match l.reserve(&ask("b", now, 500, b.clone())) {
        ReserveReply::Refused {
            refusal,
            retry_after_ms,
            ..
        } => {
            assert_eq!(
                refusal,
                Refusal::Budget {
                    budget_id: "monthly".into()
                }
            );
            assert_eq!(retry_after_ms, Some(t("2026-06-01") - now));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Settling below the reservation frees the difference.
    match l.settle(&settle("a", now, 100)) {
        SettleReply::Settled {
            charged_micros,
            budgets,
        } => {
            assert_eq!(charged_micros, 100);
            assert_eq!(
                (
                    budgets[0].spent_micros,
                    budgets[0].reserved_micros,
                    budgets[0].remaining_micros
                ),
                (100, 0, 900)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        l.reserve(&ask("b", now, 500, b)),
        ReserveReply::Admitted { .. }
    ));
}

#[test]
fn settles_are_idempotent_and_capped_at_the_reservation() {
    let mut l = Budgets::default();
    let b = vec![line("d", 1000, Period::Daily, Mode::Hard)];
    let now = t("2026-05-10T12:00:00Z");
    l.reserve(&ask("a", now, 300, b.clone()));
    let first = l.settle(&settle("a", now, 900));
    assert!(
        matches!(
            first,
            SettleReply::Settled {
                charged_micros: 300,
                ..
            }
        ),
        "{first:?}"
    );
    assert_eq!(l.settle(&settle("a", now, 900)), SettleReply::NotReserved);
    let report = l.usage(&b, &[], &[], now);
    assert_eq!(report.budgets[0].spent_micros, 300);
}

#[test]
fn unsettled_reservations_expire_charged_at_the_reserved_amount() {
    let mut l = Budgets::default();
    let b = vec![line("d", 1000, Period::Daily, Mode::Hard)];
    let now = t("2026-05-10T12:00:00Z");
    l.reserve(&ask("gone", now, 250, b.clone()));
    assert_eq!(l.next_expiry(), Some(now + 60_000));
    assert!(l.expire(now + 59_999).is_empty());
    let expired = l.expire(now + 60_000);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].charged_micros, 250);
    assert_eq!(l.open_reservations(), 0);
    assert_eq!(
        l.settle(&settle("gone", now + 61_000, 10)),
        SettleReply::NotReserved,
        "a late settle changes nothing"
    );
    let report = l.usage(&b, &[], &[], now + 61_000);
    assert_eq!(
        (
            report.budgets[0].spent_micros,
            report.budgets[0].reserved_micros
        ),
        (250, 0)
    );
}

#[test]
fn periods_roll_over_exactly_at_the_boundary() {
    for (period, last, next) in [
        (
            Period::Daily,
            "2026-05-10T23:59:59.999Z",
            "2026-05-11T00:00:00Z",
        ),
        (
            Period::Weekly,
            "2026-05-17T23:59:59.999Z",
            "2026-05-18T00:00:00Z",
        ), // Sunday -> Monday
        (
            Period::Monthly,
            "2026-05-31T23:59:59.999Z",
            "2026-06-01T00:00:00Z",
        ),
    ] {
        let mut l = Budgets::default();
        let b = vec![line("b", 100, period, Mode::Hard)];
        l.reserve(&ask("fill", t(last) - 1000, 100, b.clone()));
        l.settle(&settle("fill", t(last) - 500, 100));
        assert!(
            matches!(
                l.reserve(&ask("late", t(last), 1, b.clone())),
                ReserveReply::Refused { .. }
            ),
            "{period:?}"
        );
        assert!(
            matches!(
                l.reserve(&ask("new", t(next), 100, b.clone())),
                ReserveReply::Admitted { .. }
            ),
            "{period:?}"
        );
    }
}

#[test]
fn a_settle_after_rollover_is_charged_to_the_period_it_was_reserved_in() {
    let mut l = Budgets::default();
    let b = vec![line("d", 1000, Period::Daily, Mode::Hard)];
    l.reserve(&ask("x", t("2026-05-10T23:59:59Z"), 400, b.clone()));
    l.settle(&settle("x", t("2026-05-11T00:00:05Z"), 400));
    let today = l.usage(&b, &[], &[], t("2026-05-11T00:00:06Z"));
    assert_eq!(today.budgets[0].spent_micros, 0, "the new day starts empty");
    assert_eq!(today.budgets[0].remaining_micros, 1000);
}

#[test]
fn soft_budgets_admit_and_flag() {
    let mut l = Budgets::default();
    let b = vec![line("soft", 100, Period::Daily, Mode::Soft)];
    let now = t("2026-05-10T12:00:00Z");
    match l.reserve(&ask("a", now, 150, b)) {
        ReserveReply::Admitted { budgets } => {
            assert!(budgets[0].exceeded);
            assert_eq!(budgets[0].alerts_reached, vec![80]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn alerts_fire_at_their_threshold() {
    let mut l = Budgets::default();
    let b = vec![line("d", 1000, Period::Daily, Mode::Hard)];
    let now = t("2026-05-10T12:00:00Z");
    let alerts = |r: ReserveReply| match r {
        ReserveReply::Admitted { budgets } => budgets[0].alerts_reached.clone(),
        other => panic!("{other:?}"),
    };
    assert!(alerts(l.reserve(&ask("a", now, 799, b.clone()))).is_empty());
    assert_eq!(alerts(l.reserve(&ask("b", now, 1, b))), vec![80]);
}

#[test]
fn tokens_per_minute_count_the_worst_case_and_give_back_the_rest() {
    let mut l = Budgets::default();
    let now = t("2026-05-10T12:00:10Z");
    let mut a = ask("a", now, 0, vec![]);
    a.tokens = 800;
    a.tokens_per_minute = vec![RateLimit {
        scope: "tenant".into(),
        per_minute: 1000,
    }];
    assert!(matches!(l.reserve(&a), ReserveReply::Admitted { .. }));
    let mut b = a.clone();
    b.request_id = "b".into();
    b.tokens = 300;
    match l.reserve(&b) {
        ReserveReply::Refused {
            refusal: Refusal::Tokens { scope },
            retry_after_ms,
            ..
        } => {
            assert_eq!(scope, "tenant");
            assert_eq!(retry_after_ms, Some(50_000));
        }
        other => panic!("{other:?}"),
    }
    l.settle(&SettleAsk {
        request_id: "a".into(),
        now_ms: now + 1,
        actual_micros: 0,
        actual_tokens: 100,
    });
    assert!(
        matches!(l.reserve(&b), ReserveReply::Admitted { .. }),
        "700 unused tokens came back"
    );
}

#[test]
fn rolling_windows_free_spend_as_it_ages_out() {
    let mut l = Budgets::default();
    let hour = 3_600_000;
    let b = vec![line(
        "r",
        100,
        Period::Rolling { window_ms: hour },
        Mode::Hard,
    )];
    let t0 = t("2026-05-10T12:00:00Z");
    l.reserve(&ask("a", t0, 100, b.clone()));
    l.settle(&settle("a", t0, 100));
    let refused = l.reserve(&ask("b", t0 + hour / 2, 10, b.clone()));
    let ReserveReply::Refused {
        retry_after_ms: Some(retry),
        ..
    } = refused
    else {
        panic!("{refused:?}")
    };
    assert!(
        retry > hour / 2 && retry <= hour / 2 + hour / 60,
        "retry {retry}"
    );
    assert!(matches!(
        l.reserve(&ask("c", t0 + hour / 2 + retry, 10, b)),
        ReserveReply::Admitted { .. }
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Reserve { amount: u64, budgets: u8 },
    Settle { which: usize, actual: u64 },
    Advance { ms: u64 },
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..400, 1u8..8).prop_map(|(amount, budgets)| Op::Reserve { amount, budgets }),
        3 => (0usize..64, 0u64..600).prop_map(|(which, actual)| Op::Settle { which, actual }),
        2 => prop_oneof![1u64..5_000, 3_000_000u64..90_000_000].prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Expire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Whatever the interleaving, settled spend per hard budget and period never exceeds its limit.
    #[test]
    fn hard_budgets_hold_under_any_interleaving(ops in proptest::collection::vec(op(), 1..120)) {
        let all = [
            line("day", 1000, Period::Daily, Mode::Hard),
            line("month", 2500, Period::Monthly, Mode::Hard),
            line("hour", 700, Period::Rolling { window_ms: 3_600_000 }, Mode::Hard),
        ];
        let mut l = Budgets::default();
        let mut now = t("2026-01-31T22:00:00Z");
        let mut open: Vec<(String, u64, Vec<BudgetLine>)> = Vec::new();
        // Charges per (budget, calendar period at reserve time), and (settle time, amount) per rolling budget.
        let mut charged: HashMap<(String, u64), u64> = HashMap::new();
        let mut rolling: Vec<(u64, u64)> = Vec::new();
        let mut n = 0;
        for op in ops {
            match op {
                Op::Reserve { amount, budgets } => {
                    n += 1;
                    let id = format!("r{n}");
                    let lines: Vec<BudgetLine> = all.iter().enumerate().filter(|(i, _)| budgets & (1 << i) != 0).map(|(_, b)| b.clone()).collect();
                    let mut a = ask(&id, now, amount, lines.clone());
                    a.expires_ms = now + 600_000;
                    if let ReserveReply::Admitted { .. } = l.reserve(&a) {
                        open.push((id, now, lines));
                    }
                }
                Op::Settle { which, actual } if !open.is_empty() => {
                    let (id, at, lines) = open.remove(which % open.len());
                    if let SettleReply::Settled { charged_micros, .. } = l.settle(&settle(&id, now, actual)) {
                        record(&mut charged, &mut rolling, &lines, at, now, charged_micros);
                    }
                }
                Op::Settle { .. } => {}
                Op::Advance { ms } => now += ms,
                Op::Expire => {
                    for e in l.expire(now) {
                        if let Some(pos) = open.iter().position(|(id, ..)| *id == e.request_id) {
                            let (_, at, lines) = open.remove(pos);
                            record(&mut charged, &mut rolling, &lines, at, now, e.charged_micros);
                        }
                    }
                }
            }
            for ((key, _), total) in &charged {
                let limit = all.iter().find(|b| b.key == *key).map(|b| b.limit_micros).unwrap_or(0);
                prop_assert!(*total <= limit, "{key} charged {total} > {limit}");
            }
            // Any hour-long window of rolling charges stays within the limit.
            for (end, _) in &rolling {
                let in_window: u64 = rolling.iter().filter(|(at, _)| *at <= *end && *at + 3_600_000 > *end).map(|(_, a)| a).sum();
                prop_assert!(in_window <= 700, "rolling window ending {end} holds {in_window}");
            }
        }
    }
}

fn record(
    charged: &mut HashMap<(String, u64), u64>,
    rolling: &mut Vec<(u64, u64)>,
    lines: &[BudgetLine],
    reserved_at: u64,
    now: u64,
    amount: u64,
) {
    for line in lines {
        match line.period {
            Period::Rolling { .. } => rolling.push((now, amount)),
            p => {
                *charged
                    .entry((line.key.clone(), p.bounds(reserved_at).0))
                    .or_default() += amount
            }
        }
    }
}
