//! Request-rate windows, shared by every isolate of a region: the arithmetic lives here; the host
//! (a Durable Object on Workers) only stores the state and runs `admit` one request at a time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

pub const WINDOW_MS: u64 = 60_000;

/// One limit to check: e.g. scope `tenant` at 600 requests per minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub scope: String,
    pub per_minute: u64,
}

/// What the pipeline asks the host's counter to do, atomically across all limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateAsk {
    pub now_ms: u64,
    pub limits: Vec<RateLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RateDecision {
    Admitted,
    /// The first limit that is full, and when its window resets.
    Refused {
        scope: String,
        retry_after_ms: u64,
    },
}

/// Counts per scope in fixed windows aligned to UTC minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateWindows {
    windows: BTreeMap<String, Window>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    start_ms: u64,
    count: u64,
}

impl RateWindows {
    /// Admits the request only if every limit has room; then counts it against all of them.
    /// Nothing is counted for a refused request.
    pub fn admit(&mut self, ask: &RateAsk) -> RateDecision {
        let now = Timestamp(ask.now_ms);
        let start_ms = now.millis() - now.millis() % WINDOW_MS;
        for limit in &ask.limits {
            let used = match self.windows.get(&limit.scope) {
                Some(w) if w.start_ms == start_ms => w.count,
                _ => 0,
            };
            if used >= limit.per_minute {
                return RateDecision::Refused {
                    scope: limit.scope.clone(),
                    retry_after_ms: start_ms + WINDOW_MS - now.millis(),
                };
            }
        }
        for limit in &ask.limits {
            let w = self
                .windows
                .entry(limit.scope.clone())
                .or_insert(Window { start_ms, count: 0 });
            if w.start_ms != start_ms {
                *w = Window { start_ms, count: 0 };
            }
            w.count += 1;
        }
        // Old windows carry no information once their minute has passed.
        self.windows.retain(|_, w| w.start_ms == start_ms);
        RateDecision::Admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(now_ms: u64, limits: &[(&str, u64)]) -> RateAsk {
        RateAsk {
            now_ms,
            limits: limits
                .iter()
                .map(|(s, n)| RateLimit {
                    scope: s.to_string(),
                    per_minute: *n,
                })
                .collect(),
        }
    }

    #[test]
    fn refuses_past_the_limit_and_resets_at_the_minute() {
        let mut w = RateWindows::default();
        let t0 = 1_700_000_040_000 + 40_000; // 1_700_000_040_000 is a minute boundary
        assert_eq!(w.admit(&ask(t0, &[("tenant", 2)])), RateDecision::Admitted);
        assert_eq!(
            w.admit(&ask(t0 + 1, &[("tenant", 2)])),
            RateDecision::Admitted
        );
        assert_eq!(
            w.admit(&ask(t0 + 2, &[("tenant", 2)])),
            RateDecision::Refused {
                scope: "tenant".into(),
                retry_after_ms: 19_998
            }
        );
        // Exactly at the boundary the window is fresh.
        assert_eq!(
            w.admit(&ask(t0 + 20_000, &[("tenant", 2)])),
            RateDecision::Admitted
        );
    }

    #[test]
    fn a_refusal_by_one_limit_counts_against_none() {
        let mut w = RateWindows::default();
        let t = 1_700_000_000_000;
        assert_eq!(
            w.admit(&ask(t, &[("key:a", 1), ("tenant", 10)])),
            RateDecision::Admitted
        );
        assert!(matches!(
            w.admit(&ask(t, &[("key:a", 1), ("tenant", 10)])),
            RateDecision::Refused { ref scope, .. } if scope == "key:a"
        ));
        // The tenant window saw one request, not two: nine more fit.
        for _ in 0..9 {
            assert_eq!(w.admit(&ask(t, &[("tenant", 10)])), RateDecision::Admitted);
        }
        assert!(matches!(
            w.admit(&ask(t, &[("tenant", 10)])),
            RateDecision::Refused { .. }
        ));
    }
}
