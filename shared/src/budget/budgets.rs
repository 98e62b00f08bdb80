//! A tenant's budgets: dollar budgets, request and token rate limits, and the reservations that tie
//! them together. Reserve the worst case before the upstream call, settle the actual cost after
//! it, expire what is never settled. [`crate::ledger::TenantLedger`] holds one [`Budgets`] per
//! ledger object and applies one operation at a time; all the arithmetic is here.
//!
//! Invariant, per hard budget and period: `spent + reserved <= limit`. A reservation is admitted
//! only if it fits; a settle moves at most the reserved amount from `reserved` to `spent`; an
//! expiry charges the reserved amount. So settled spend never exceeds a hard budget.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::period::{bucket_ms, Period};
use crate::ratelimit::{RateLimit, WINDOW_MS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Refuse what would exceed the limit.
    Hard,
    /// Allow, and flag in headers and audit.
    Soft,
}

/// One budget as it applies to a request: a configured budget instantiated for its scope
/// (the tenant, one key, or one tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetLine {
    /// Ledger key, e.g. `monthly`, `per-key-daily/k_abc`.
    pub key: String,
    /// The configured budget's id.
    pub budget_id: String,
    pub limit_micros: u64,
    pub period: Period,
    pub mode: Mode,
    pub alert_percents: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveAsk {
    pub request_id: String,
    pub now_ms: u64,
    /// Worst-case cost in micro-USD.
    pub amount_micros: u64,
    /// Worst-case tokens (input bound + output limit), for tokens-per-minute limits.
    pub tokens: u64,
    /// Requests counted against requests-per-minute limits: 1, or a lease's allowance.
    #[serde(default = "one")]
    pub requests: u64,
    pub budgets: Vec<BudgetLine>,
    pub requests_per_minute: Vec<RateLimit>,
    pub tokens_per_minute: Vec<RateLimit>,
    /// When an unsettled reservation is charged and released.
    pub expires_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    Budget { budget_id: String },
    Requests { scope: String },
    Tokens { scope: String },
}

impl Refusal {
    /// The error code the client gets (and the audit record holds); always with status 429.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Budget { .. } => "budget_exceeded",
            Refusal::Requests { .. } => "rate_limit_exceeded",
            Refusal::Tokens { .. } => "token_rate_limit_exceeded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ReserveReply {
    Admitted {
        budgets: Vec<BudgetStatus>,
    },
    Refused {
        refusal: Refusal,
        retry_after_ms: Option<u64>,
        budgets: Vec<BudgetStatus>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleAsk {
    pub request_id: String,
    pub now_ms: u64,
    pub actual_micros: u64,
    pub actual_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum SettleReply {
    /// `charged_micros` is the actual cost, capped at what was reserved.
    Settled {
        charged_micros: u64,
        budgets: Vec<BudgetStatus>,
    },
    /// No open reservation: already settled, expired, or never made. Nothing changed.
    NotReserved,
}

/// A budget's state as reported in headers and the usage API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub budget_id: String,
    pub key: String,
    pub period: String,
    pub period_start_ms: u64,
    pub period_end_ms: Option<u64>,
    pub mode: Mode,
    pub limit_micros: u64,
    pub spent_micros: u64,
    pub reserved_micros: u64,
    pub remaining_micros: u64,
    pub alerts_reached: Vec<u8>,
    pub exceeded: bool,
}

/// A reservation that expired without a settle, charged at its reserved amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expired {
    pub request_id: String,
    pub charged_micros: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PeriodTotals {
    start_ms: u64,
    spent: u64,
    reserved: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct BudgetState {
    current: PeriodTotals,
    /// The period before, so a late settle of a reservation made in it is charged there.
    previous: Option<PeriodTotals>,
    /// Rolling windows: settled spend per bucket start.
    buckets: BTreeMap<u64, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Held {
    line: BudgetLine,
    /// The calendar period (or rolling bucket) the amount was reserved in.
    period_start_ms: u64,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Still held: a lease's draws lower it.
    amount: u64,
    tokens: u64,
    token_window_start_ms: u64,
    token_scopes: Vec<String>,
    #[serde(default = "one")]
    requests: u64,
    #[serde(default)]
    request_scopes: Vec<String>,
    expires_ms: u64,
    held: Vec<Held>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    start_ms: u64,
    used: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    totals: Totals,
    reservations: BTreeMap<String, Reservation>,
}

/// Everything but the open reservations: small, and rewritten by every operation. A host that
/// stores the ledger in pieces keeps it under one key and each reservation under its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    budgets: BTreeMap<String, BudgetState>,
    request_windows: BTreeMap<String, Window>,
    token_windows: BTreeMap<String, Window>,
    /// The latest time an operation brought (see [`Budgets::advance`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    clock_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn minute_start(now_ms: u64) -> u64 {
    now_ms - now_ms % WINDOW_MS
}

fn window_used(windows: &BTreeMap<String, Window>, scope: &str, now_ms: u64) -> u64 {
    match windows.get(scope) {
        Some(w) if w.start_ms == minute_start(now_ms) => w.used,
        _ => 0,
    }
}

fn window_add(windows: &mut BTreeMap<String, Window>, scope: &str, now_ms: u64, amount: u64) {
    let start_ms = minute_start(now_ms);
    let w = windows.entry(scope.to_string()).or_default();
    if w.start_ms != start_ms {
        *w = Window { start_ms, used: 0 };
    }
    w.used = w.used.saturating_add(amount);
}

impl Budgets {
    /// The time an operation stamped `now_ms` is counted at: never before the latest time an
    /// operation brought. Operations reach a ledger out of their stamps' order (isolates at
    /// different distances, a queue of pipelined operations): one stamped just before a minute
    /// or a period ended, applied after one stamped just after, would otherwise count in the
    /// minute or period gone by, and move the windows back to it, wiping what the new one held.
    /// Counted in the current one instead, it can only make a limit stricter.
    pub fn advance(&mut self, now_ms: u64) -> u64 {
        self.totals.clock_ms = self.totals.clock_ms.max(now_ms);
        self.totals.clock_ms
    }

    /// Admits the request only if every hard budget and every rate limit has room for its worst
    /// case; then holds that amount against all of them at once. A refusal changes nothing.
    pub fn reserve(&mut self, ask: &ReserveAsk) -> ReserveReply {
        let now = self.advance(ask.now_ms);
        if self.reservations.contains_key(&ask.request_id) {
            // A retried reserve for the same request holds nothing twice.
            return ReserveReply::Admitted {
                budgets: self.statuses(&ask.budgets, now),
            };
        }
        for line in &ask.budgets {
            self.roll(line, now);
        }
        for limit in &ask.requests_per_minute {
            let used = window_used(&self.totals.request_windows, &limit.scope, now);
            if used.saturating_add(ask.requests) > limit.per_minute {
                return self.refuse(
                    Refusal::Requests {
                        scope: limit.scope.clone(),
                    },
                    Some(minute_start(now) + WINDOW_MS - now),
                    ask,
                );
            }
        }
        for limit in &ask.tokens_per_minute {
            let used = window_used(&self.totals.token_windows, &limit.scope, now);
            if used.saturating_add(ask.tokens) > limit.per_minute {
                // A request larger than the whole limit can never fit: no Retry-After.
                let retry =
                    (ask.tokens <= limit.per_minute).then(|| minute_start(now) + WINDOW_MS - now);
                return self.refuse(
                    Refusal::Tokens {
                        scope: limit.scope.clone(),
                    },
                    retry,
                    ask,
                );
            }
        }
        for line in ask.budgets.iter().filter(|l| l.mode == Mode::Hard) {
            let used = self.used(line, now);
            if used.saturating_add(ask.amount_micros) > line.limit_micros {
                let retry = self.retry_after(line, now, ask.amount_micros);
                return self.refuse(
                    Refusal::Budget {
                        budget_id: line.budget_id.clone(),
                    },
                    retry,
                    ask,
                );
            }
        }

        let mut held = Vec::with_capacity(ask.budgets.len());
        for line in &ask.budgets {
            let state = self.totals.budgets.entry(line.key.clone()).or_default();
            state.current.reserved = state.current.reserved.saturating_add(ask.amount_micros);
            held.push(Held {
                line: line.clone(),
                period_start_ms: state.current.start_ms,
            });
        }
        for limit in &ask.requests_per_minute {
            window_add(
                &mut self.totals.request_windows,
                &limit.scope,
                now,
                ask.requests,
            );
        }
        for limit in &ask.tokens_per_minute {
            window_add(
                &mut self.totals.token_windows,
                &limit.scope,
                now,
                ask.tokens,
            );
        }
        self.reservations.insert(
            ask.request_id.clone(),
            Reservation {
                amount: ask.amount_micros,
                tokens: ask.tokens,
                token_window_start_ms: minute_start(now),
                token_scopes: ask
                    .tokens_per_minute
                    .iter()
                    .map(|l| l.scope.clone())
                    .collect(),
                requests: ask.requests,
                request_scopes: ask
                    .requests_per_minute
                    .iter()
                    .map(|l| l.scope.clone())
                    .collect(),
                expires_ms: ask.expires_ms,
                held,
            },
        );
        self.prune_windows(now);
        ReserveReply::Admitted {
            budgets: self.statuses(&ask.budgets, now),
        }
    }

    /// Charges the actual cost (at most what was reserved) and releases the rest. Idempotent: a
    /// second settle of the same request finds no reservation and changes nothing.
    pub fn settle(&mut self, ask: &SettleAsk) -> SettleReply {
        let Some(res) = self.reservations.remove(&ask.request_id) else {
            return SettleReply::NotReserved;
        };
        let now = self.advance(ask.now_ms);
        let charged = ask.actual_micros.min(res.amount);
        self.release(&res, charged, now);
        self.give_back(&res, res.requests.saturating_sub(1), ask.actual_tokens, now);
        let lines: Vec<BudgetLine> = res.held.iter().map(|h| h.line.clone()).collect();
        SettleReply::Settled {
            charged_micros: charged,
            budgets: self.statuses(&lines, now),
        }
    }

    /// How many requests of `ask`'s worst case a lease may hold: at most `want`, and at most half
    /// the room left in every hard budget and rate limit, so that leases shrink as a limit nears
    /// and the isolates sharing a ledger each get some; 1 when only the request itself may fit
    /// ([`Budgets::reserve`] then admits or refuses it with the reason).
    pub fn lease_size(&mut self, ask: &ReserveAsk, want: u64) -> u64 {
        let now = self.advance(ask.now_ms);
        for line in &ask.budgets {
            self.roll(line, now);
        }
        let mut n = want.max(1);
        for limit in &ask.requests_per_minute {
            let room = limit.per_minute.saturating_sub(window_used(
                &self.totals.request_windows,
                &limit.scope,
                now,
            ));
            n = n.min(room / 2);
        }
        for limit in &ask.tokens_per_minute {
            let room = limit.per_minute.saturating_sub(window_used(
                &self.totals.token_windows,
                &limit.scope,
                now,
            ));
            if let Some(fit) = room.checked_div(ask.tokens) {
                n = n.min(fit / 2);
            }
        }
        for line in ask.budgets.iter().filter(|l| l.mode == Mode::Hard) {
            let room = line.limit_micros.saturating_sub(self.used(line, now));
            if let Some(fit) = room.checked_div(ask.amount_micros) {
                n = n.min(fit / 2);
            }
        }
        // Soft budgets only: keep the held amount a sane number.
        if let Some(most) = (1u64 << 53).checked_div(ask.amount_micros) {
            n = n.min(most);
        }
        n.max(1)
    }

    /// Charges `charged` (at most what is still held) of reservation `id` now, keeping the rest
    /// held: one request served under a lease. `None` when `id` holds nothing (expired).
    pub fn draw(
        &mut self,
        id: &str,
        charged: u64,
        now_ms: u64,
    ) -> Option<(u64, Vec<BudgetStatus>)> {
        let now_ms = self.totals.clock_ms.max(now_ms);
        let res = self.reservations.get_mut(id)?;
        let charged = charged.min(res.amount);
        res.amount -= charged;
        let held = res.held.clone();
        self.release_held(&held, charged, charged, now_ms);
        let lines: Vec<BudgetLine> = held.iter().map(|h| h.line.clone()).collect();
        Some((charged, self.statuses(&lines, now_ms)))
    }

    /// Ends reservation `id` (a lease whose every request has been drawn) without charging what
    /// is left, and gives back the requests and tokens it did not use while their minute lasts.
    pub fn finish(&mut self, id: &str, used_requests: u64, used_tokens: u64, now_ms: u64) -> bool {
        let Some(res) = self.reservations.remove(id) else {
            return false;
        };
        let now_ms = self.advance(now_ms);
        self.release(&res, 0, now_ms);
        self.give_back(
            &res,
            res.requests.saturating_sub(used_requests),
            used_tokens,
            now_ms,
        );
        true
    }

    /// Gives back `unused_requests` and the tokens beyond `used_tokens` if the minute they were
    /// counted in is still the current one.
    fn give_back(
        &mut self,
        res: &Reservation,
        unused_requests: u64,
        used_tokens: u64,
        now_ms: u64,
    ) {
        if res.token_window_start_ms != minute_start(now_ms) {
            return;
        }
        let unused_tokens = res.tokens.saturating_sub(used_tokens);
        for (windows, scopes, unused) in [
            (
                &mut self.totals.token_windows,
                &res.token_scopes,
                unused_tokens,
            ),
            (
                &mut self.totals.request_windows,
                &res.request_scopes,
                unused_requests,
            ),
        ] {
            for scope in scopes {
                if let Some(w) = windows.get_mut(scope) {
                    if w.start_ms == res.token_window_start_ms {
                        w.used = w.used.saturating_sub(unused);
                    }
                }
            }
        }
    }

    /// Charges every reservation whose time is up at its reserved amount, and releases it.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Expired> {
        self.expire_where(now_ms, |_, expires_ms| expires_ms <= now_ms)
    }

    /// As [`Budgets::expire`], for the reservations `due(request_id, expires_ms)` picks.
    pub fn expire_where(&mut self, now_ms: u64, due: impl Fn(&str, u64) -> bool) -> Vec<Expired> {
        let now_ms = self.totals.clock_ms.max(now_ms);
        let due: Vec<String> = self
            .reservations
            .iter()
            .filter(|(id, r)| due(id, r.expires_ms))
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for id in due {
            if let Some(res) = self.reservations.remove(&id) {
                self.release(&res, res.amount, now_ms);
                out.push(Expired {
                    request_id: id,
                    charged_micros: res.amount,
                });
            }
        }
        out
    }

    /// When the host should next call `expire`.
    pub fn next_expiry(&self) -> Option<u64> {
        self.reservations.values().map(|r| r.expires_ms).min()
    }

    pub fn open_reservations(&self) -> usize {
        self.reservations.len()
    }

    /// The reservation held for `request_id`, if any (for a host that stores it on its own).
    pub fn reservation(&self, request_id: &str) -> Option<&Reservation> {
        self.reservations.get(request_id)
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Rebuilds budgets stored in pieces: the totals and each open reservation.
    pub fn from_parts(totals: Totals, reservations: BTreeMap<String, Reservation>) -> Self {
        Budgets {
            totals,
            reservations,
        }
    }

    /// The state of the given budgets and limits now, for the usage API.
    pub fn usage(
        &mut self,
        budgets: &[BudgetLine],
        rates: &[RateLimit],
        tokens: &[RateLimit],
        now_ms: u64,
    ) -> UsageReport {
        // Read only: counted at the ledger's clock, which it does not move.
        let now_ms = self.totals.clock_ms.max(now_ms);
        for line in budgets {
            self.roll(line, now_ms);
        }
        let limit_status = |windows: &BTreeMap<String, Window>, l: &RateLimit| RateStatus {
            scope: l.scope.clone(),
            per_minute: l.per_minute,
            used: window_used(windows, &l.scope, now_ms),
            resets_ms: minute_start(now_ms) + WINDOW_MS,
        };
        UsageReport {
            budgets: self.statuses(budgets, now_ms),
            requests_per_minute: rates
                .iter()
                .map(|l| limit_status(&self.totals.request_windows, l))
                .collect(),
            tokens_per_minute: tokens
                .iter()
                .map(|l| limit_status(&self.totals.token_windows, l))
                .collect(),
        }
    }

    fn refuse(
        &self,
        refusal: Refusal,
        retry_after_ms: Option<u64>,
        ask: &ReserveAsk,
    ) -> ReserveReply {
        ReserveReply::Refused {
            refusal,
            retry_after_ms,
            budgets: self.statuses(&ask.budgets, ask.now_ms.max(self.totals.clock_ms)),
        }
    }

    /// Moves `charged` of a reservation to spent and releases the whole reservation.
    fn release(&mut self, res: &Reservation, charged: u64, now_ms: u64) {
        self.release_held(&res.held, res.amount, charged, now_ms);
    }

    /// Stops holding `unreserve` against each line and charges `charged` (<= `unreserve`) to it.
    fn release_held(&mut self, held: &[Held], unreserve: u64, charged: u64, now_ms: u64) {
        for held in held {
            let state = self
                .totals
                .budgets
                .entry(held.line.key.clone())
                .or_default();
            let totals = if state.current.start_ms == held.period_start_ms {
                Some(&mut state.current)
            } else {
                state
                    .previous
                    .as_mut()
                    .filter(|p| p.start_ms == held.period_start_ms)
            };
            if let Some(t) = totals {
                t.reserved = t.reserved.saturating_sub(unreserve);
                if !matches!(held.line.period, Period::Rolling { .. }) {
                    t.spent = t.spent.saturating_add(charged);
                }
            }
            if let Period::Rolling { window_ms } = held.line.period {
                let (bucket, _) = held.line.period.bounds(now_ms);
                *state.buckets.entry(bucket).or_default() += charged;
                let oldest = now_ms.saturating_sub(window_ms + bucket_ms(window_ms));
                state.buckets.retain(|start, _| *start >= oldest);
            }
        }
    }

    /// Starts a new calendar period when `now` has passed the current one's end.
    fn roll(&mut self, line: &BudgetLine, now_ms: u64) {
        let state = self.totals.budgets.entry(line.key.clone()).or_default();
        match line.period {
            Period::Rolling { .. } => {
                // Reservations stay in one pot; spend lives in buckets.
            }
            period => {
                let (start, _) = period.bounds(now_ms);
                if state.current.start_ms != start {
                    let finished = std::mem::replace(
                        &mut state.current,
                        PeriodTotals {
                            start_ms: start,
                            spent: 0,
                            reserved: 0,
                        },
                    );
                    // Keep the previous period only if it is the one just before: older ones
                    // can have no open reservation left worth tracking.
                    let (prev_start, _) = period.bounds(start.saturating_sub(1));
                    state.previous = (finished.start_ms == prev_start).then_some(finished);
                }
            }
        }
    }

    /// Spent plus reserved in the line's current period (or window).
    fn used(&self, line: &BudgetLine, now_ms: u64) -> u64 {
        let Some(state) = self.totals.budgets.get(&line.key) else {
            return 0;
        };
        match line.period {
            Period::Rolling { window_ms } => {
                let from = now_ms.saturating_sub(window_ms);
                let spent: u64 = state
                    .buckets
                    .range(from.saturating_add(1).saturating_sub(bucket_ms(window_ms))..)
                    .map(|(_, v)| *v)
                    .sum();
                spent.saturating_add(state.current.reserved)
            }
            _ => state.current.spent.saturating_add(state.current.reserved),
        }
    }

    fn retry_after(&self, line: &BudgetLine, now_ms: u64, amount: u64) -> Option<u64> {
        if amount > line.limit_micros {
            return None;
        }
        match line.period {
            Period::Rolling { window_ms } => {
                // Wait for the oldest buckets to leave the window until the amount fits.
                let state = self.totals.budgets.get(&line.key)?;
                let mut used = self.used(line, now_ms);
                let bucket = bucket_ms(window_ms);
                // The buckets `used` counts: older ones (not yet pruned) no longer hold any room.
                let from = now_ms
                    .saturating_sub(window_ms)
                    .saturating_add(1)
                    .saturating_sub(bucket);
                for (start, spent) in state.buckets.range(from..) {
                    used = used.saturating_sub(*spent);
                    if used.saturating_add(amount) <= line.limit_micros {
                        return Some((start + window_ms + bucket).saturating_sub(now_ms).max(1));
                    }
                }
                None
            }
            period => Some(period.bounds(now_ms).1 - now_ms),
        }
    }

    fn statuses(&self, lines: &[BudgetLine], now_ms: u64) -> Vec<BudgetStatus> {
        lines
            .iter()
            .map(|line| {
                let state = self
                    .totals
                    .budgets
                    .get(&line.key)
                    .cloned()
                    .unwrap_or_default();
                let used = self.used(line, now_ms);
                let reserved = state.current.reserved;
                let (start, end) = match line.period {
                    Period::Rolling { window_ms } => (now_ms.saturating_sub(window_ms), None),
                    p => {
                        let (s, e) = p.bounds(now_ms);
                        (s, Some(e))
                    }
                };
                let alerts_reached = line
                    .alert_percents
                    .iter()
                    .copied()
                    .filter(|pct| {
                        u128::from(used) * 100 >= u128::from(*pct) * u128::from(line.limit_micros)
                    })
                    .collect();
                BudgetStatus {
                    budget_id: line.budget_id.clone(),
                    key: line.key.clone(),
                    period: line.period.label(),
                    period_start_ms: start,
                    period_end_ms: end,
                    mode: line.mode,
                    limit_micros: line.limit_micros,
                    spent_micros: used - reserved.min(used),
                    reserved_micros: reserved,
                    remaining_micros: line.limit_micros.saturating_sub(used),
                    alerts_reached,
                    exceeded: used > line.limit_micros,
                }
            })
            .collect()
    }

    fn prune_windows(&mut self, now_ms: u64) {
        let start = minute_start(now_ms);
        self.totals
            .request_windows
            .retain(|_, w| w.start_ms == start);
        self.totals.token_windows.retain(|_, w| w.start_ms == start);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateStatus {
    pub scope: String,
    pub per_minute: u64,
    pub used: u64,
    pub resets_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub budgets: Vec<BudgetStatus>,
    pub requests_per_minute: Vec<RateStatus>,
    pub tokens_per_minute: Vec<RateStatus>,
}
