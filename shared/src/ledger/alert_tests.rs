//! Alerts in the ledger: handed over by the call that raised them, and marked for the sweep
//! and claimed once when no request carries them.

use super::tests::{admit, commit, T0};
use super::*;

/// An admission that reserves against a budget with an alert at `percent`.
fn admit_alerting(id: &str, at: u64, amount: u64, percent: u8) -> LedgerOp {
    let mut op = admit(id, at, Some(amount));
    if let LedgerOp::Admit(a) = &mut op {
        if let Some(r) = a.reserve.as_mut() {
            for line in &mut r.budgets {
                line.alert_percents = vec![percent];
            }
        }
    }
    op
}

fn alert_ids(reply: &LedgerReply) -> Vec<String> {
    reply
        .clone()
        .into_alerts()
        .into_iter()
        .map(|a| a.id)
        .collect()
}

#[test]
fn a_call_that_ends_with_the_commit_crossing_a_threshold_hands_its_alert_over() {
    // The budget is 1,000; 10% is crossed by the settled 120, not by the reservation.
    let mut l = TenantLedger::default();
    let admitted = l.apply_call(&[admit_alerting("r1", T0, 300, 10)]);
    assert!(alert_ids(&admitted[0]).is_empty(), "nothing spent yet");
    let committed = l.apply_call(&[commit("r1", T0 + 50, 120)]);
    let ids = alert_ids(&committed[0]);
    assert_eq!(ids.len(), 1, "{committed:?}");
    assert!(ids[0].starts_with("budget.threshold"), "{ids:?}");
    // Claimed once: the next admission does not get it again.
    let next = l.apply_call(&[admit_alerting("r2", T0 + 60, 300, 10)]);
    assert!(alert_ids(&next[0]).is_empty(), "{next:?}");
}

#[test]
fn only_a_calls_last_operation_hands_alerts_over() {
    let mut l = TenantLedger::default();
    l.apply_call(&[admit_alerting("r1", T0, 300, 10)]);
    // The commit rides ahead of an admission: the admission's reply carries the alert.
    let replies = l.apply_call(&[
        commit("r1", T0 + 50, 120),
        admit_alerting("r2", T0 + 51, 300, 10),
    ]);
    assert!(alert_ids(&replies[0]).is_empty(), "{replies:?}");
    assert_eq!(alert_ids(&replies[1]).len(), 1, "{replies:?}");

    // Two commits in one call: the last reply carries what the first one raised.
    let mut l = TenantLedger::default();
    l.apply_call(&[
        admit_alerting("a", T0, 300, 10),
        admit_alerting("b", T0, 300, 10),
    ]);
    let replies = l.apply_call(&[commit("a", T0 + 50, 120), commit("b", T0 + 50, 10)]);
    assert!(alert_ids(&replies[0]).is_empty(), "{replies:?}");
    assert_eq!(alert_ids(&replies[1]).len(), 1, "{replies:?}");

    // A commit applied alone (not as a call) hands nothing over: its host may not read it.
    let mut l = TenantLedger::default();
    l.apply(admit_alerting("r1", T0, 300, 10));
    let reply = l.apply(commit("r1", T0 + 50, 120));
    assert!(alert_ids(&reply).is_empty(), "{reply:?}");
}

#[test]
fn an_alert_no_request_carries_is_marked_for_the_sweep_and_claimed_once() {
    use crate::ledger::insights::{CLAIM_MS, SWEEP_AFTER_MS};
    use crate::ledger::Delivery;
    let mut l = TenantLedger::default();
    assert_eq!(l.alerts_sweep_due_ms(), None, "no alerts, no sweep");
    l.apply_call(&[admit_alerting("r1", T0, 300, 10)]);
    // The commit raises the threshold alert and hands it to the isolate that sent the call.
    let committed = l.apply_call(&[commit("r1", T0 + 50, 120)]);
    let ids = alert_ids(&committed[0]);
    assert_eq!(ids.len(), 1, "{committed:?}");
    // Claimed at T0 + 50: the sweep may take it once the claim has run out unanswered.
    assert_eq!(
        l.alerts_sweep_due_ms(),
        Some(T0 + 50 + CLAIM_MS + SWEEP_AFTER_MS)
    );
    // The isolate's delivery failed: due again after the first backoff (2 s), swept 10 s later.
    l.apply(LedgerOp::Delivered {
        now_ms: T0 + 100,
        results: vec![(ids[0].clone(), Delivery::Retry)],
    });
    let due = T0 + 100 + crate::alerts::retry_delay_ms(1);
    assert_eq!(l.alerts_sweep_due_ms(), Some(due + SWEEP_AFTER_MS));
    // Before its backoff is over, the sweep's claim gets nothing.
    let early = l.apply(LedgerOp::ClaimAlerts { now_ms: due - 1 });
    assert_eq!(early, LedgerReply::Claimed { alerts: vec![] });
    // Then it gets the alert, once.
    let swept = l.apply(LedgerOp::ClaimAlerts {
        now_ms: due + SWEEP_AFTER_MS,
    });
    assert_eq!(alert_ids(&swept), ids);
    let text = serde_json::to_string(&swept).expect("serializes");
    assert_eq!(
        serde_json::from_str::<LedgerReply>(&text).expect("parses"),
        swept
    );
    let again = l.apply(LedgerOp::ClaimAlerts {
        now_ms: due + SWEEP_AFTER_MS + 1,
    });
    assert!(alert_ids(&again).is_empty(), "claimed: {again:?}");
    // Delivered: nothing is left for a sweep.
    l.apply(LedgerOp::Delivered {
        now_ms: due + SWEEP_AFTER_MS + 2,
        results: vec![(ids[0].clone(), Delivery::Delivered)],
    });
    assert_eq!(l.alerts_sweep_due_ms(), None);
}
