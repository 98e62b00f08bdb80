//! The tenant's alert log: events raised once (by id), claimed by admitting isolates for
//! delivery, retried with backoff; budget events from budget statuses, error-rate spikes from a
//! window of finished requests.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::alerts::{AlertEvent, AlertKind, MAX_DELIVERY_ATTEMPTS};
use crate::budget::{BudgetStatus, Mode};
use crate::config::ErrorRateRule;

/// Alerts listed by the API (newest kept).
pub const ALERT_LOG_LEN: usize = 100;
/// Alert ids remembered to raise each event once.
pub const RAISED_MEMORY: usize = 1000;
/// An isolate has this long to deliver the alerts it claimed before another may.
pub const CLAIM_MS: u64 = 60_000;
/// Alerts handed out per admission.
pub const CLAIM_MAX: usize = 8;
/// An alert left claimable this long (its tenant has no traffic to carry it, or the isolate
/// that claimed it died) is the deployment's to deliver, from its scheduled sweep: isolates
/// deliver first, right after the request that raised or claimed it.
pub const SWEEP_AFTER_MS: u64 = 10_000;
/// A ledger still holding sweep-due alerts this long after it marked itself marks itself again
/// (a marker that was lost, or one a listing did not show yet).
pub const REMARK_MS: u64 = 300_000;
/// After a failed mark (the store down, or a plan's daily writes used up), the next try.
pub const MARK_RETRY_MS: u64 = 60_000;

/// When a host whose deployment finds sweep-due ledgers by markers (a Durable Object's alarm
/// puts one in KV for the Worker's cron) should put its marker: when an alert becomes due for
/// the sweep ([`AlertState::sweep_due_ms`]), but never sooner than `REMARK_MS` after the last put
/// or `MARK_RETRY_MS` after a failed one, so an alarm set from it never fires again at once. The
/// sweep's claim ([`crate::ledger::LedgerOp::ClaimAlerts`]) lets it mark at the next due time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepMark {
    not_before_ms: Option<u64>,
}

impl SweepMark {
    /// When to put the marker, given when the ledger's alerts are sweep-due (`None`: never).
    pub fn at(&self, sweep_due_ms: Option<u64>) -> Option<u64> {
        sweep_due_ms.map(|due| due.max(self.not_before_ms.unwrap_or(0)))
    }

    pub fn put(&mut self, now_ms: u64) {
        self.not_before_ms = Some(now_ms + REMARK_MS);
    }

    pub fn failed(&mut self, now_ms: u64) {
        self.not_before_ms = Some(now_ms + MARK_RETRY_MS);
    }

    /// The sweep claimed from the ledger.
    pub fn swept(&mut self) {
        self.not_before_ms = None;
    }
}

/// Where an alert's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Every attempt failed (or a receiver refused it for good).
    Failed,
    /// No webhook subscribes to this kind of event.
    Unsubscribed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedAlert {
    pub event: AlertEvent,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_at_ms: u64,
    #[serde(default)]
    pub claimed_until_ms: u64,
}

/// One delivery's result, as an isolate reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Delivered,
    /// Worth retrying (network error, 429, 5xx).
    Retry,
    /// Not worth retrying (the receiver answered 4xx).
    Refused,
    Unsubscribed,
}

/// The finished requests of the error-rate rule's trailing window, in [`ERROR_SLOTS`] slots of
/// its width: a spike that straddles a clock boundary is seen whole (a window that started over
/// at each boundary missed a failure just before it and one just after), and a record that
/// arrives out of order (commits land after their responses, in any order) counts in its own
/// slot instead of starting the window over. (A state stored in the earlier shape, one fixed
/// window, reads as empty: its fields are not these.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorWindow {
    /// Oldest first; none older than the window that ends with the newest.
    #[serde(default)]
    pub slots: Vec<ErrorSlot>,
    /// When the last spike was raised: at most one per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_spike_ms: Option<u64>,
}

/// Requests that finished in one slot of the error-rate window, and how many of them failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSlot {
    pub start_ms: u64,
    pub requests: u64,
    pub errors: u64,
}

/// Slots per error-rate window: the trailing window is measured to a sixth of its width.
pub const ERROR_SLOTS: u64 = 6;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    /// The tenant's error-rate rule as of its last admission.
    pub rule: Option<ErrorRateRule>,
    pub log: VecDeque<LoggedAlert>,
    /// Ids raised (and when), to raise each event once; the oldest are forgotten past
    /// [`RAISED_MEMORY`].
    pub raised: BTreeMap<String, u64>,
    /// Alert thresholds by budget key, as of the last admission that named the budget.
    pub percents: BTreeMap<String, Vec<u8>>,
}

impl AlertState {
    /// Queues events not raised before; returns whether anything changed.
    pub(in crate::ledger) fn raise(&mut self, events: Vec<AlertEvent>) -> bool {
        let mut changed = false;
        for event in events {
            if self.raised.contains_key(&event.id) {
                continue;
            }
            self.raised.insert(event.id.clone(), event.at_ms);
            if self.raised.len() > RAISED_MEMORY {
                let oldest = self
                    .raised
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(id, _)| id.clone());
                if let Some(id) = oldest {
                    self.raised.remove(&id);
                }
            }
            let at = event.at_ms;
            self.log.push_back(LoggedAlert {
                event,
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_at_ms: at,
                claimed_until_ms: 0,
            });
            changed = true;
        }
        // Oldest settled entries go first; pending ones are kept until they settle.
        while self.log.len() > ALERT_LOG_LEN {
            match self
                .log
                .iter()
                .position(|a| a.status != DeliveryStatus::Pending)
            {
                Some(i) => {
                    self.log.remove(i);
                }
                None => break,
            }
        }
        changed
    }

    /// Hands out due alerts for delivery, each to one isolate at a time.
    pub(in crate::ledger) fn claim(&mut self, now_ms: u64) -> Vec<AlertEvent> {
        let mut out = Vec::new();
        for a in self.log.iter_mut() {
            if out.len() >= CLAIM_MAX {
                break;
            }
            if a.status == DeliveryStatus::Pending
                && a.next_at_ms <= now_ms
                && a.claimed_until_ms <= now_ms
            {
                a.claimed_until_ms = now_ms + CLAIM_MS;
                out.push(a.event.clone());
            }
        }
        out
    }

    /// When an alert will have been claimable for [`SWEEP_AFTER_MS`] without being claimed: the
    /// earliest of the pending alerts' (due again, or claim run out, whichever is later).
    pub(in crate::ledger) fn sweep_due_ms(&self) -> Option<u64> {
        self.log
            .iter()
            .filter(|a| a.status == DeliveryStatus::Pending)
            .map(|a| {
                a.next_at_ms
                    .max(a.claimed_until_ms)
                    .saturating_add(SWEEP_AFTER_MS)
            })
            .min()
    }

    pub(in crate::ledger) fn delivered(
        &mut self,
        results: &[(String, Delivery)],
        now_ms: u64,
    ) -> bool {
        let mut changed = false;
        for (id, result) in results {
            let Some(a) = self.log.iter_mut().find(|a| &a.event.id == id) else {
                continue;
            };
            if a.status != DeliveryStatus::Pending {
                continue;
            }
            changed = true;
            a.claimed_until_ms = 0;
            match result {
                Delivery::Delivered => {
                    a.attempts += 1;
                    a.status = DeliveryStatus::Delivered;
                }
                Delivery::Unsubscribed => a.status = DeliveryStatus::Unsubscribed,
                Delivery::Refused => {
                    a.attempts += 1;
                    a.status = DeliveryStatus::Failed;
                }
                Delivery::Retry => {
                    a.attempts += 1;
                    if a.attempts >= MAX_DELIVERY_ATTEMPTS {
                        a.status = DeliveryStatus::Failed;
                    } else {
                        a.next_at_ms = now_ms + crate::alerts::retry_delay_ms(a.attempts);
                    }
                }
            }
        }
        changed
    }
}

/// Budget events that `statuses` (after an admission or a settle) show: a threshold of settled
/// spend reached, a soft budget's spend past its limit. Ids name the budget, its period and the
/// threshold, so each is raised once per period.
pub fn budget_events(
    tenant: &str,
    statuses: &[BudgetStatus],
    percents: &BTreeMap<String, Vec<u8>>,
    raised: &BTreeMap<String, u64>,
    now_ms: u64,
) -> Vec<AlertEvent> {
    let mut out = Vec::new();
    for s in statuses {
        if s.limit_micros == 0 {
            continue;
        }
        // The common case, on every admission and settle: nothing reached. Decide with numbers
        // before building any name.
        let spent = u128::from(s.spent_micros);
        let reached: Vec<u8> = percents
            .get(&s.key)
            .into_iter()
            .flatten()
            .copied()
            .filter(|pct| spent * 100 >= u128::from(*pct) * u128::from(s.limit_micros))
            .collect();
        let soft_over = s.mode == Mode::Soft && s.spent_micros > s.limit_micros;
        if reached.is_empty() && !soft_over {
            continue;
        }
        // Rolling windows have no fixed start: a window's worth of time names the period.
        let period = match s.period_end_ms {
            Some(_) => s.period_start_ms.to_string(),
            None => {
                let width = now_ms.saturating_sub(s.period_start_ms).max(1);
                format!("r{}", now_ms / width)
            }
        };
        let detail = |pct: Option<u8>| {
            serde_json::json!({
                "budget_id": s.budget_id,
                "budget_key": s.key,
                "period": s.period,
                "period_start_ms": s.period_start_ms,
                "period_end_ms": s.period_end_ms,
                "mode": s.mode,
                "limit_usd_micros": s.limit_micros,
                "spent_usd_micros": s.spent_micros,
                "percent": pct,
            })
        };
        for pct in reached {
            let id = format!("budget.threshold:{}:{period}:{pct}", s.key);
            if !raised.contains_key(&id) {
                out.push(AlertEvent {
                    id,
                    kind: AlertKind::BudgetThreshold,
                    tenant_id: tenant.to_string(),
                    at_ms: now_ms,
                    detail: detail(Some(pct)),
                });
            }
        }
        let id = format!("budget.soft_exceeded:{}:{period}", s.key);
        if soft_over && !raised.contains_key(&id) {
            out.push(AlertEvent {
                id,
                kind: AlertKind::BudgetSoftExceeded,
                tenant_id: tenant.to_string(),
                at_ms: now_ms,
                detail: detail(None),
            });
        }
    }
    out
}

impl ErrorWindow {
    /// Counts a request that finished at `now_ms`; returns the spike event when it made the
    /// trailing window reach the rule (then none for a window's width).
    pub fn count(
        &mut self,
        rule: &ErrorRateRule,
        tenant: &str,
        failed: bool,
        now_ms: u64,
    ) -> Option<AlertEvent> {
        let width = (rule.window_ms / ERROR_SLOTS).max(1);
        let start = now_ms - now_ms % width;
        let newest = self.slots.last().map_or(start, |s| s.start_ms.max(start));
        // The window is the slots from `from` to the newest one's end.
        let from = (newest + width).saturating_sub(rule.window_ms.max(width));
        if start < from {
            // Finished before the window that later requests have moved to.
            return None;
        }
        self.slots.retain(|s| s.start_ms >= from);
        let was = self.reached(rule);
        let at = self.slots.partition_point(|s| s.start_ms < start);
        if self.slots.get(at).is_none_or(|s| s.start_ms != start) {
            self.slots.insert(
                at,
                ErrorSlot {
                    start_ms: start,
                    ..ErrorSlot::default()
                },
            );
        }
        if let Some(slot) = self.slots.get_mut(at) {
            slot.requests += 1;
            slot.errors += u64::from(failed);
        }
        let quiet = self
            .last_spike_ms
            .is_none_or(|last| now_ms >= last.saturating_add(rule.window_ms));
        if was || !self.reached(rule) || !quiet {
            return None;
        }
        self.last_spike_ms = Some(now_ms);
        let (requests, errors) = self.totals();
        Some(AlertEvent {
            id: format!("error_rate.spike:{start}"),
            kind: AlertKind::ErrorRateSpike,
            tenant_id: tenant.to_string(),
            at_ms: now_ms,
            detail: serde_json::json!({
                "window_start_ms": from,
                "window_ms": rule.window_ms,
                "requests": requests,
                "errors": errors,
                "threshold_percent": rule.percent,
            }),
        })
    }

    fn totals(&self) -> (u64, u64) {
        self.slots
            .iter()
            .fold((0, 0), |(r, e), s| (r + s.requests, e + s.errors))
    }

    fn reached(&self, rule: &ErrorRateRule) -> bool {
        let (requests, errors) = self.totals();
        requests >= rule.min_requests
            && u128::from(errors) * 100 >= u128::from(rule.percent) * u128::from(requests)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_events_name_the_budget_period_and_threshold_and_skip_raised_ones() {
        let status = |spent: u64, mode: Mode| BudgetStatus {
            budget_id: "monthly".into(),
            key: "monthly".into(),
            period: "monthly".into(),
            period_start_ms: 1_000,
            period_end_ms: Some(2_000),
            mode,
            limit_micros: 1_000,
            spent_micros: spent,
            reserved_micros: 0,
            remaining_micros: 1_000u64.saturating_sub(spent),
            alerts_reached: Vec::new(),
            exceeded: spent > 1_000,
        };
        let percents = BTreeMap::from([("monthly".to_string(), vec![50, 80])]);
        let mut raised = BTreeMap::new();
        assert!(budget_events("t", &[status(499, Mode::Hard)], &percents, &raised, 5).is_empty());
        let e = budget_events("t", &[status(800, Mode::Hard)], &percents, &raised, 5);
        let ids: Vec<&str> = e.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "budget.threshold:monthly:1000:50",
                "budget.threshold:monthly:1000:80"
            ]
        );
        raised.insert(e[0].id.clone(), 5);
        let again = budget_events("t", &[status(900, Mode::Hard)], &percents, &raised, 6);
        assert_eq!(again.len(), 1, "50% was raised already");
        let soft = budget_events(
            "t",
            &[status(1_001, Mode::Soft)],
            &BTreeMap::new(),
            &raised,
            7,
        );
        assert_eq!(soft.len(), 1);
        assert_eq!(soft[0].id, "budget.soft_exceeded:monthly:1000");
        assert_eq!(soft[0].kind, AlertKind::BudgetSoftExceeded);
    }

    #[test]
    fn an_error_window_raises_once_when_it_reaches_the_rule() {
        let rule = ErrorRateRule {
            percent: 50,
            min_requests: 4,
            window_ms: 60_000,
        };
        let mut w = ErrorWindow::default();
        let t = 120_000;
        assert!(w.count(&rule, "t", true, t).is_none());
        assert!(w.count(&rule, "t", true, t + 1).is_none());
        assert!(w.count(&rule, "t", false, t + 2).is_none());
        // 4 requests, 3 failed: 75% >= 50%, min reached.
        let e = w.count(&rule, "t", true, t + 3).expect("spike");
        assert_eq!(e.id, "error_rate.spike:120000");
        assert_eq!(e.detail["requests"], 4);
        assert_eq!(e.detail["errors"], 3);
        assert!(
            w.count(&rule, "t", true, t + 4).is_none(),
            "once while it stays over"
        );
        // A window later the old requests have left it: four new failures are a new spike.
        for i in 0..3 {
            assert!(w.count(&rule, "t", true, t + 60_000 + i).is_none(), "{i}");
        }
        let again = w.count(&rule, "t", true, 180_003).expect("a new spike");
        assert_eq!(again.detail["requests"], 4, "only this window's requests");
        assert_ne!(again.id, e.id);
    }

    #[test]
    fn a_spike_across_a_clock_minute_is_seen_whole() {
        // Three requests served, then two failures either side of 60_000 (the end-to-end
        // telemetry scenario when it ran across a minute): 2 of 5 failed is 40%.
        let rule = ErrorRateRule {
            percent: 30,
            min_requests: 2,
            window_ms: 60_000,
        };
        let mut w = ErrorWindow::default();
        for t in [59_700, 59_800, 59_900, 59_990] {
            assert!(w.count(&rule, "t", t == 59_990, t).is_none(), "{t}");
        }
        assert!(w.count(&rule, "t", true, 60_010).is_some());
    }

    #[test]
    fn records_arriving_out_of_order_count_where_they_finished() {
        let rule = ErrorRateRule {
            percent: 50,
            min_requests: 3,
            window_ms: 60_000,
        };
        let mut w = ErrorWindow::default();
        // Commits land in any order: a later failure, then an earlier one, then an earlier
        // success. None of them starts the window over.
        assert!(w.count(&rule, "t", true, 75_000).is_none());
        assert!(w.count(&rule, "t", true, 55_000).is_none());
        let spike = w.count(&rule, "t", false, 45_000).expect("2 of 3 failed");
        assert_eq!(spike.detail["requests"], 3);
        // One that finished before the window that ends with the newest is not counted.
        let mut w = ErrorWindow::default();
        assert!(w.count(&rule, "t", true, 200_000).is_none());
        assert!(w.count(&rule, "t", true, 100_000).is_none());
        assert!(w.count(&rule, "t", true, 100_001).is_none());
        assert_eq!(w.totals(), (1, 1));
    }

    #[test]
    fn a_window_stored_in_the_earlier_shape_reads_as_empty() {
        let w: ErrorWindow =
            serde_json::from_str(r#"{"start_ms":60000,"requests":7,"errors":3}"#).expect("reads");
        assert_eq!(w, ErrorWindow::default());
    }

    #[test]
    fn claimed_alerts_are_not_handed_out_twice_until_the_claim_lapses() {
        let mut s = AlertState::default();
        let ev = |id: &str| AlertEvent {
            id: id.into(),
            kind: AlertKind::CircuitOpened,
            tenant_id: "t".into(),
            at_ms: 10,
            detail: serde_json::Value::Null,
        };
        assert!(s.raise(vec![ev("a"), ev("b")]));
        assert!(!s.raise(vec![ev("a")]), "raised once");
        assert_eq!(s.claim(10).len(), 2);
        assert!(s.claim(11).is_empty());
        s.delivered(
            &[
                ("a".into(), Delivery::Delivered),
                ("b".into(), Delivery::Retry),
            ],
            20,
        );
        // b waits for its backoff (2 s), then is handed out again.
        assert!(s.claim(21).is_empty());
        let again = s.claim(20 + 2_000);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, "b");
        assert_eq!(s.log[0].status, DeliveryStatus::Delivered);
    }
}

#[cfg(test)]
mod sweep_mark_tests {
    use super::*;

    const NOW: u64 = 1_767_225_600_000;

    #[test]
    fn a_mark_is_due_with_the_alert_and_never_again_at_once() {
        let mut mark = SweepMark::default();
        assert_eq!(mark.at(None), None, "nothing due, no mark");
        assert_eq!(
            mark.at(Some(NOW + 5)),
            Some(NOW + 5),
            "first: when the alert is due"
        );
        // Put: a due alert (in the past) is marked again only after REMARK_MS.
        mark.put(NOW);
        assert_eq!(mark.at(Some(NOW - 1)), Some(NOW + REMARK_MS));
        assert_eq!(
            mark.at(Some(NOW + REMARK_MS + 7)),
            Some(NOW + REMARK_MS + 7)
        );
        // A failed put: the next try is MARK_RETRY_MS on, not now (an alarm set to a time past
        // fires at once, and would fail again and again).
        mark.failed(NOW + 10);
        let next = mark.at(Some(NOW - 1)).expect("due");
        assert!(next > NOW + 10, "{next}");
        assert_eq!(next, NOW + 10 + MARK_RETRY_MS);
        // The sweep came: the next due alert is marked when due.
        mark.swept();
        assert_eq!(mark.at(Some(NOW + 20)), Some(NOW + 20));
    }
}
