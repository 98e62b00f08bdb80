//! Per-target circuit breakers and the retry budget, as the state one region-wide store (a
//! Durable Object, a Spin SQLite row) keeps per tenant. Pure: the store applies ops to it with
//! the time the op carries.
//!
//! A circuit opens after `failure_threshold` consecutive failures and refuses traffic for
//! `cooldown_ms`; after that, exactly one caller is granted a probe (half-open) and the others
//! still see it open until the probe reports (or its grant lapses). A success closes it; a
//! failure reopens it for another cooldown.
//!
//! The retry budget: extra attempts (retries and fallbacks) in the last `WINDOW_MS` may not exceed
//! `percent`% of the requests counted in that window, with a floor of `MIN_RETRIES_PER_WINDOW`
//! so a quiet tenant still gets a retry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::routes::BreakerSettings;

pub const WINDOW_MS: u64 = 10_000;
const BUCKET_MS: u64 = 1_000;
pub const MIN_RETRIES_PER_WINDOW: u64 = 3;
/// How long a probe grant lasts if its holder never reports (it crashed, or the client left).
pub const PROBE_GRANT_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CircuitState {
    Closed {
        failures: u32,
    },
    Open {
        until_ms: u64,
    },
    /// This caller holds the one probe of a half-open circuit.
    Probe,
}

impl CircuitState {
    pub fn admits(&self, now_ms: u64) -> bool {
        match self {
            CircuitState::Closed { .. } | CircuitState::Probe => true,
            CircuitState::Open { until_ms } => now_ms >= *until_ms,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Circuit {
    failures: u32,
    open_until_ms: Option<u64>,
    probe_until_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CircuitOp {
    /// The states of these targets (a probe is granted where one is due).
    Check {
        targets: Vec<String>,
        now_ms: u64,
        breaker: BreakerSettings,
    },
    /// The states of these targets, changing nothing (no probe is granted): for explanations.
    Peek { targets: Vec<String>, now_ms: u64 },
    /// An attempt's outcome. `ok: false` for a failure that counts (5xx, 429, timeout).
    Report {
        target: String,
        ok: bool,
        now_ms: u64,
        breaker: BreakerSettings,
    },
    /// May this request make one more attempt? `requests` counts the requests the caller served
    /// since its last permit ask (they join the window first).
    RetryPermit {
        now_ms: u64,
        requests: u64,
        percent: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CircuitReply {
    States(Vec<CircuitState>),
    State(CircuitState),
    Permit(bool),
    /// A report's answer: the state, and whether this report opened or closed the circuit
    /// (exactly one report does each, so the alert it raises is raised once).
    Reported {
        state: CircuitState,
        change: Option<CircuitChange>,
    },
}

/// A circuit opening (`until_ms`: when it half-opens) or closing again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitChange {
    pub opened: bool,
    pub at_ms: u64,
    /// The opening's cool-down end (for a close: the opening it ends).
    pub until_ms: u64,
    pub failures: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket {
    start_ms: u64,
    requests: u64,
    retries: u64,
}

/// One tenant's circuits and retry window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitBoard {
    circuits: BTreeMap<String, Circuit>,
    buckets: Vec<Bucket>,
}

impl CircuitBoard {
    pub fn apply(&mut self, op: &CircuitOp) -> CircuitReply {
        match op {
            CircuitOp::Check {
                targets,
                now_ms,
                breaker: _,
            } => CircuitReply::States(targets.iter().map(|t| self.check(t, *now_ms)).collect()),
            CircuitOp::Peek { targets, now_ms } => {
                CircuitReply::States(targets.iter().map(|t| self.peek(t, *now_ms)).collect())
            }
            CircuitOp::Report {
                target,
                ok,
                now_ms,
                breaker,
            } => {
                let before = self
                    .circuits
                    .get(target.as_str())
                    .and_then(|c| c.open_until_ms);
                let failures = self.circuits.get(target.as_str()).map_or(0, |c| c.failures);
                let state = self.report(target, *ok, *now_ms, breaker);
                let change = match (&state, before) {
                    (CircuitState::Open { until_ms }, b) if b != Some(*until_ms) => {
                        Some(CircuitChange {
                            opened: true,
                            at_ms: *now_ms,
                            until_ms: *until_ms,
                            failures: failures.saturating_add(1),
                        })
                    }
                    (CircuitState::Closed { .. }, Some(until)) if *ok => Some(CircuitChange {
                        opened: false,
                        at_ms: *now_ms,
                        until_ms: until,
                        failures,
                    }),
                    _ => None,
                };
                CircuitReply::Reported { state, change }
            }
            CircuitOp::RetryPermit {
                now_ms,
                requests,
                percent,
            } => CircuitReply::Permit(self.permit(*now_ms, *requests, *percent)),
        }
    }

    /// What `check` would answer, without granting the probe.
    fn peek(&self, target: &str, now_ms: u64) -> CircuitState {
        let Some(c) = self.circuits.get(target) else {
            return CircuitState::Closed { failures: 0 };
        };
        match (c.open_until_ms, c.probe_until_ms) {
            (None, _) => CircuitState::Closed {
                failures: c.failures,
            },
            (Some(until), _) if now_ms < until => CircuitState::Open { until_ms: until },
            (Some(_), Some(p)) if now_ms < p => CircuitState::Open { until_ms: p },
            (Some(_), _) => CircuitState::Probe,
        }
    }

    fn check(&mut self, target: &str, now_ms: u64) -> CircuitState {
        let Some(c) = self.circuits.get_mut(target) else {
            return CircuitState::Closed { failures: 0 };
        };
        match c.open_until_ms {
            None => CircuitState::Closed {
                failures: c.failures,
            },
            Some(until) if now_ms < until => CircuitState::Open { until_ms: until },
            Some(_) => match c.probe_until_ms {
                // Someone holds the probe: the others wait for its report.
                Some(p) if now_ms < p => CircuitState::Open { until_ms: p },
                _ => {
                    c.probe_until_ms = Some(now_ms + PROBE_GRANT_MS);
                    CircuitState::Probe
                }
            },
        }
    }

    fn report(
        &mut self,
        target: &str,
        ok: bool,
        now_ms: u64,
        breaker: &BreakerSettings,
    ) -> CircuitState {
        if ok {
            // Closed, and forgotten: a healthy target costs no state.
            self.circuits.remove(target);
            return CircuitState::Closed { failures: 0 };
        }
        let c = self.circuits.entry(target.to_string()).or_default();
        c.failures = c.failures.saturating_add(1);
        let half_open = c.open_until_ms.is_some_and(|u| now_ms >= u);
        if half_open || c.failures >= breaker.failure_threshold {
            let until = now_ms + breaker.cooldown_ms;
            c.open_until_ms = Some(until);
            c.probe_until_ms = None;
            return CircuitState::Open { until_ms: until };
        }
        match c.open_until_ms {
            // A late failure from before the circuit opened: it stays open.
            Some(until) => CircuitState::Open { until_ms: until },
            None => CircuitState::Closed {
                failures: c.failures,
            },
        }
    }

    fn permit(&mut self, now_ms: u64, requests: u64, percent: u32) -> bool {
        let start = now_ms - now_ms % BUCKET_MS;
        self.buckets
            .retain(|b| b.start_ms + WINDOW_MS > now_ms && b.start_ms <= now_ms);
        if self.buckets.last().map(|b| b.start_ms) != Some(start) {
            self.buckets.push(Bucket {
                start_ms: start,
                ..Bucket::default()
            });
        }
        if let Some(b) = self.buckets.last_mut() {
            b.requests += requests;
        }
        let (reqs, retries) = self
            .buckets
            .iter()
            .fold((0, 0), |(r, t), b| (r + b.requests, t + b.retries));
        let allowed = (reqs * percent as u64 / 100).max(MIN_RETRIES_PER_WINDOW);
        if retries < allowed {
            if let Some(b) = self.buckets.last_mut() {
                b.retries += 1;
            }
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: BreakerSettings = BreakerSettings {
        failure_threshold: 3,
        cooldown_ms: 1_000,
    };

    fn report(board: &mut CircuitBoard, ok: bool, now_ms: u64) -> CircuitState {
        match board.apply(&CircuitOp::Report {
            target: "t".into(),
            ok,
            now_ms,
            breaker: B,
        }) {
            CircuitReply::State(s) | CircuitReply::Reported { state: s, .. } => s,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn check(board: &mut CircuitBoard, now_ms: u64) -> CircuitState {
        match board.apply(&CircuitOp::Check {
            targets: vec!["t".into()],
            now_ms,
            breaker: B,
        }) {
            CircuitReply::States(s) => s[0],
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn opens_after_the_threshold_then_half_opens_one_probe_then_closes() {
        let mut b = CircuitBoard::default();
        assert_eq!(
            report(&mut b, false, 0),
            CircuitState::Closed { failures: 1 }
        );
        assert_eq!(
            report(&mut b, false, 1),
            CircuitState::Closed { failures: 2 }
        );
        assert_eq!(
            report(&mut b, false, 2),
            CircuitState::Open { until_ms: 1_002 }
        );
        assert_eq!(check(&mut b, 500), CircuitState::Open { until_ms: 1_002 });
        assert!(!check(&mut b, 1_001).admits(1_001));
        // Cooldown over: one probe, the others still see it open.
        assert_eq!(check(&mut b, 1_002), CircuitState::Probe);
        assert!(matches!(check(&mut b, 1_003), CircuitState::Open { .. }));
        assert!(!check(&mut b, 1_003).admits(1_003));
        assert_eq!(
            report(&mut b, true, 1_100),
            CircuitState::Closed { failures: 0 }
        );
        assert_eq!(check(&mut b, 1_101), CircuitState::Closed { failures: 0 });
    }

    #[test]
    fn a_failed_probe_reopens_for_a_full_cooldown() {
        let mut b = CircuitBoard::default();
        for t in 0..3 {
            report(&mut b, false, t);
        }
        assert_eq!(check(&mut b, 2_000), CircuitState::Probe);
        assert_eq!(
            report(&mut b, false, 2_010),
            CircuitState::Open { until_ms: 3_010 }
        );
        assert!(matches!(check(&mut b, 3_000), CircuitState::Open { .. }));
    }

    #[test]
    fn peeking_grants_no_probe() {
        let mut b = CircuitBoard::default();
        for t in 0..3 {
            report(&mut b, false, t);
        }
        let peek = b.apply(&CircuitOp::Peek {
            targets: vec!["t".into()],
            now_ms: 1_002,
        });
        assert_eq!(peek, CircuitReply::States(vec![CircuitState::Probe]));
        // The probe is still there for the next real request.
        assert_eq!(check(&mut b, 1_002), CircuitState::Probe);
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let mut b = CircuitBoard::default();
        report(&mut b, false, 0);
        report(&mut b, false, 1);
        report(&mut b, true, 2);
        assert_eq!(
            report(&mut b, false, 3),
            CircuitState::Closed { failures: 1 }
        );
    }

    #[test]
    fn a_lapsed_probe_grant_is_given_again() {
        let mut b = CircuitBoard::default();
        for t in 0..3 {
            report(&mut b, false, t);
        }
        assert_eq!(check(&mut b, 1_002), CircuitState::Probe);
        assert_eq!(check(&mut b, 1_002 + PROBE_GRANT_MS), CircuitState::Probe);
    }

    #[test]
    fn the_retry_budget_holds_its_share_with_a_floor() {
        let mut b = CircuitBoard::default();
        let permit = |b: &mut CircuitBoard, now, requests| {
            b.apply(&CircuitOp::RetryPermit {
                now_ms: now,
                requests,
                percent: 20,
            }) == CircuitReply::Permit(true)
        };
        // Quiet: the floor of 3.
        assert!(permit(&mut b, 0, 1));
        assert!(permit(&mut b, 0, 0));
        assert!(permit(&mut b, 0, 0));
        assert!(!permit(&mut b, 0, 0));
        // 100 requests in the window: 20 retries in all.
        let granted = (0..100).filter(|_| permit(&mut b, 10, 1)).count() as u64;
        assert_eq!(granted + 3, 20);
        // The window slides: ten seconds later the old requests and retries are gone.
        assert!(permit(&mut b, WINDOW_MS + 10, 1));
    }
}
