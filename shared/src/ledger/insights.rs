//! What a ledger learns from the records it keeps, for the people who run the tenant: usage
//! rollups (spend, tokens, errors, latency by hour and day, per key, model, provider and tags:
//! the analytics API and the dashboard read them) and the tenant's alerts (raised once, handed to
//! isolates for delivery, retried with backoff until delivered).
//!
//! Both live in the ledger because it already sees every final record of its tenant (or shard)
//! exactly once, in order, durably: no second store, no log scraping, and an alert's "once" is a
//! fact of one object's state.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::alerts::{AlertEvent, AlertKind, MAX_DELIVERY_ATTEMPTS};
use crate::audit::{AuditEvent, CacheOutcome, Outcome};
use crate::budget::{BudgetStatus, Mode};
use crate::config::ErrorRateRule;

pub const HOUR_MS: u64 = 3_600_000;
pub const DAY_MS: u64 = 24 * HOUR_MS;
/// Hourly buckets are kept this long, then folded into days.
pub const HOURLY_KEEP_MS: u64 = 48 * HOUR_MS;
/// Daily buckets are kept this long (a year of month-over-month comparisons).
pub const DAILY_KEEP_MS: u64 = 400 * DAY_MS;
/// Alerts listed by the API (newest kept).
pub const ALERT_LOG_LEN: usize = 100;
/// Alert ids remembered to raise each event once.
pub const RAISED_MEMORY: usize = 1000;
/// An isolate has this long to deliver the alerts it claimed before another may.
pub const CLAIM_MS: u64 = 60_000;
/// Alerts handed out per admission.
pub const CLAIM_MAX: usize = 8;

/// Latency histogram bounds in milliseconds (OpenTelemetry-style explicit buckets; the last
/// bucket is everything above the last bound).
pub const LATENCY_BOUNDS_MS: [u64; 15] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];

/// Counts per explicit bucket (`LATENCY_BOUNDS_MS.len() + 1` of them), and the sum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    pub counts: Vec<u64>,
    pub sum: u64,
}

impl Histogram {
    pub fn record(&mut self, value_ms: u64) {
        if self.counts.len() != LATENCY_BOUNDS_MS.len() + 1 {
            self.counts.resize(LATENCY_BOUNDS_MS.len() + 1, 0);
        }
        let i = LATENCY_BOUNDS_MS
            .iter()
            .position(|b| value_ms <= *b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum = self.sum.saturating_add(value_ms);
    }

    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum = self.sum.saturating_add(other.sum);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0 < q <= 1), interpolated linearly inside its bucket (the open last
    /// bucket reports its lower bound). `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            if (seen + c) as f64 >= rank {
                let lower = if i == 0 {
                    0.0
                } else {
                    LATENCY_BOUNDS_MS.get(i - 1).copied().unwrap_or(0) as f64
                };
                let Some(upper) = LATENCY_BOUNDS_MS.get(i) else {
                    return Some(lower);
                };
                let within = (rank - seen as f64) / *c as f64;
                return Some(lower + (*upper as f64 - lower) * within);
            }
            seen += c;
        }
        None
    }
}

/// One group's figures in one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    pub model: String,
    pub provider: String,
    pub tags: Vec<String>,
    pub requests: u64,
    /// Requests that did not end `ok`, by error code.
    pub errors: BTreeMap<String, u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd_micros: u64,
    pub cache_hits: u64,
    /// Requests served by another target than the first one tried.
    pub fallbacks: u64,
    /// Upstream attempts beyond each request's first.
    pub retries: u64,
    /// `detector:action` -> matches.
    pub guardrail_hits: BTreeMap<String, u64>,
    pub latency_ms: Histogram,
    /// Streams only: time to the first byte relayed.
    pub ttft_ms: Histogram,
}

impl Rollup {
    fn add(&mut self, event: &AuditEvent) {
        let r = &event.record;
        let d = &event.detail;
        self.requests += 1;
        if r.outcome != Outcome::Ok {
            let code = r.error_code.clone().unwrap_or_else(|| {
                match r.outcome {
                    Outcome::Refused => "refused",
                    Outcome::Partial => "partial",
                    _ => "error",
                }
                .to_string()
            });
            *self.errors.entry(code).or_insert(0) += 1;
        }
        if let Some(u) = r.usage {
            self.input_tokens = self.input_tokens.saturating_add(u.input_tokens);
            self.output_tokens = self.output_tokens.saturating_add(u.output_tokens);
        }
        self.cost_usd_micros = self
            .cost_usd_micros
            .saturating_add(d.settled_usd_micros.unwrap_or(0));
        if d.cache
            .as_ref()
            .is_some_and(|c| c.outcome == CacheOutcome::Hit)
        {
            self.cache_hits += 1;
        }
        self.retries += d.attempts.len().saturating_sub(1) as u64;
        if let (Some(first), Some(last)) = (d.attempts.first(), d.attempts.last()) {
            if first.provider != last.provider || first.model != last.model {
                self.fallbacks += 1;
            }
        }
        for g in &d.guardrails {
            let name = format!("{}:{}", g.detector, g.action.as_str());
            *self.guardrail_hits.entry(name).or_insert(0) += u64::from(g.count.max(1));
        }
        self.latency_ms.record(r.latency_ms);
        if let Some(t) = d.ttft_ms {
            self.ttft_ms.record(t);
        }
    }

    fn merge(&mut self, o: &Rollup) {
        self.requests += o.requests;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cost_usd_micros = self.cost_usd_micros.saturating_add(o.cost_usd_micros);
        self.cache_hits += o.cache_hits;
        self.fallbacks += o.fallbacks;
        self.retries += o.retries;
        for (k, v) in &o.guardrail_hits {
            *self.guardrail_hits.entry(k.clone()).or_insert(0) += v;
        }
        self.latency_ms.merge(&o.latency_ms);
        self.ttft_ms.merge(&o.ttft_ms);
    }
}

/// The operations that are model traffic (what analytics counts).
pub fn is_model_traffic(operation: &str) -> bool {
    matches!(operation, "chat.completions" | "messages" | "embeddings")
}

/// The bucket a record falls in, as a storage-ordered name: `h<start>:<key>` (hour) or
/// `d<start>:<key>` (day), the start zero-padded so names sort by time.
fn bucket_name(width: char, start_ms: u64, key_id: &str) -> String {
    format!("{width}{start_ms:013}:{key_id}")
}

fn parse_bucket(name: &str) -> Option<(char, u64, &str)> {
    let width = name.chars().next()?;
    let rest = name.get(1..)?;
    let (start, key) = rest.split_once(':')?;
    Some((width, start.parse().ok()?, key))
}

/// Adds `from`'s groups into `into` (same model, provider and tags add up).
pub fn merge_groups(into: &mut Vec<Rollup>, from: Vec<Rollup>) {
    for g in from {
        match into
            .iter_mut()
            .find(|o| o.model == g.model && o.provider == g.provider && o.tags == g.tags)
        {
            Some(o) => o.merge(&g),
            None => into.push(g),
        }
    }
}

/// The storage name of the first hourly bucket at or after `ms` (names sort by time).
pub fn hour_bucket_floor(ms: u64) -> String {
    format!("h{:013}", ms - ms % HOUR_MS)
}

/// Rollups by bucket name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollups {
    pub(super) buckets: BTreeMap<String, Vec<Rollup>>,
}

impl Rollups {
    /// Rollups from stored buckets (`name`, JSON of its groups).
    pub fn from_pieces<'a>(
        pieces: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Rollups, serde_json::Error> {
        let mut buckets = BTreeMap::new();
        for (name, json) in pieces {
            buckets.insert(name.to_string(), serde_json::from_str(json)?);
        }
        Ok(Rollups { buckets })
    }

    /// Adds a final record; returns the bucket it changed.
    pub(super) fn add(&mut self, event: &AuditEvent) -> Option<String> {
        if !is_model_traffic(&event.record.operation) {
            return None;
        }
        let r = &event.record;
        let start = r.timestamp_ms - r.timestamp_ms % HOUR_MS;
        let name = bucket_name('h', start, r.key_id.as_deref().unwrap_or("-"));
        let model = r
            .served_model
            .clone()
            .or_else(|| r.requested_model.clone())
            .unwrap_or_default();
        let provider = r.provider.clone().unwrap_or_default();
        let list = self.buckets.entry(name.clone()).or_default();
        let i = match list
            .iter()
            .position(|g| g.model == model && g.provider == provider && g.tags == event.detail.tags)
        {
            Some(i) => i,
            None => {
                list.push(Rollup {
                    model,
                    provider,
                    tags: event.detail.tags.clone(),
                    ..Rollup::default()
                });
                list.len() - 1
            }
        };
        if let Some(g) = list.get_mut(i) {
            g.add(event);
        }
        Some(name)
    }

    /// Folds hours older than [`HOURLY_KEEP_MS`] into days and drops days older than
    /// [`DAILY_KEEP_MS`]; returns every bucket name written or removed.
    pub(super) fn compact(&mut self, now_ms: u64) -> Vec<String> {
        let mut touched = Vec::new();
        let hour_cutoff = now_ms.saturating_sub(HOURLY_KEEP_MS);
        let day_cutoff = now_ms.saturating_sub(DAILY_KEEP_MS);
        // Names sort by width, then start: only the old ones at the front of each width are
        // visited (this runs on every admission).
        let old_of = |width: &'static str, next: &'static str, keep: u64, cutoff: u64| {
            self.buckets
                .range(width.to_string()..next.to_string())
                .map(|(n, _)| n)
                .take_while(move |n| {
                    parse_bucket(n).is_some_and(|(_, start, _)| start + keep <= cutoff)
                })
                .cloned()
                .collect::<Vec<String>>()
        };
        let mut old = old_of("h", "i", HOUR_MS, hour_cutoff);
        old.extend(old_of("d", "e", DAY_MS, day_cutoff));
        for name in old {
            let Some(groups) = self.buckets.remove(&name) else {
                continue;
            };
            touched.push(name.clone());
            let Some(('h', start, key)) = parse_bucket(&name) else {
                continue;
            };
            let day = bucket_name('d', start - start % DAY_MS, key);
            if start - start % DAY_MS + DAY_MS <= day_cutoff {
                continue;
            }
            let into = self.buckets.entry(day.clone()).or_default();
            for g in groups {
                match into
                    .iter_mut()
                    .find(|o| o.model == g.model && o.provider == g.provider && o.tags == g.tags)
                {
                    Some(o) => o.merge(&g),
                    None => into.push(g),
                }
            }
            touched.push(day);
        }
        touched.sort();
        touched.dedup();
        touched
    }

    /// Rows for `[from_ms, to_ms)` in `bucket_ms` buckets, grouped by `group_by` (fields not
    /// grouped by are summed over). Buckets already folded into days report at day width.
    pub fn query(&self, ask: &AnalyticsAsk) -> Vec<AnalyticsRow> {
        let mut rows: BTreeMap<(u64, String, String, String, String), AnalyticsRow> =
            BTreeMap::new();
        let by = |d: Dimension| ask.group_by.contains(&d);
        for (name, groups) in &self.buckets {
            let Some((width, start, key)) = parse_bucket(name) else {
                continue;
            };
            let width_ms = if width == 'd' { DAY_MS } else { HOUR_MS };
            if start + width_ms <= ask.from_ms || start >= ask.to_ms {
                continue;
            }
            let bucket_ms = ask.bucket_ms.max(width_ms);
            let row_start = start - start % bucket_ms;
            for g in groups {
                let tags = g.tags.join(",");
                let id = (
                    row_start,
                    if by(Dimension::Model) {
                        g.model.clone()
                    } else {
                        String::new()
                    },
                    if by(Dimension::Provider) {
                        g.provider.clone()
                    } else {
                        String::new()
                    },
                    if by(Dimension::Key) {
                        key.to_string()
                    } else {
                        String::new()
                    },
                    if by(Dimension::Tag) {
                        tags
                    } else {
                        String::new()
                    },
                );
                let row = rows.entry(id).or_insert_with(|| AnalyticsRow {
                    start_ms: row_start,
                    width_ms: bucket_ms,
                    model: by(Dimension::Model).then(|| g.model.clone()),
                    provider: by(Dimension::Provider).then(|| g.provider.clone()),
                    key_id: by(Dimension::Key).then(|| key.to_string()),
                    tags: by(Dimension::Tag).then(|| g.tags.clone()),
                    figures: Rollup::default(),
                });
                row.figures.merge(g);
            }
        }
        rows.into_values().collect()
    }
}

/// What analytics groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Model,
    Provider,
    Key,
    Tag,
}

impl Dimension {
    pub fn parse(name: &str) -> Option<Dimension> {
        match name {
            "model" => Some(Dimension::Model),
            "provider" => Some(Dimension::Provider),
            "key" => Some(Dimension::Key),
            "tag" => Some(Dimension::Tag),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyticsAsk {
    pub from_ms: u64,
    pub to_ms: u64,
    /// Row width: an hour or a day.
    pub bucket_ms: u64,
    pub group_by: Vec<Dimension>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyticsRow {
    pub start_ms: u64,
    pub width_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    pub figures: Rollup,
}

impl AnalyticsRow {
    /// Whether two rows (from two shards) describe the same bucket and group.
    pub fn same_group(&self, o: &AnalyticsRow) -> bool {
        self.start_ms == o.start_ms
            && self.model == o.model
            && self.provider == o.provider
            && self.key_id == o.key_id
            && self.tags == o.tags
    }

    pub fn merge(&mut self, o: &AnalyticsRow) {
        self.figures.merge(&o.figures);
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

/// A window of finished requests for the error-rate rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorWindow {
    pub start_ms: u64,
    pub requests: u64,
    pub errors: u64,
}

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
    pub(super) fn raise(&mut self, events: Vec<AlertEvent>) -> bool {
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
    pub(super) fn claim(&mut self, now_ms: u64) -> Vec<AlertEvent> {
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

    pub(super) fn delivered(&mut self, results: &[(String, Delivery)], now_ms: u64) -> bool {
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
    /// Counts a finished request; returns the spike event when this request made the window
    /// reach the rule (once per window).
    pub fn count(
        &mut self,
        rule: &ErrorRateRule,
        tenant: &str,
        failed: bool,
        now_ms: u64,
    ) -> Option<AlertEvent> {
        let start = now_ms - now_ms % rule.window_ms.max(1);
        if self.start_ms != start {
            *self = ErrorWindow {
                start_ms: start,
                requests: 0,
                errors: 0,
            };
        }
        let was = self.reached(rule);
        self.requests += 1;
        self.errors += u64::from(failed);
        (!was && self.reached(rule)).then(|| AlertEvent {
            id: format!("error_rate.spike:{start}"),
            kind: AlertKind::ErrorRateSpike,
            tenant_id: tenant.to_string(),
            at_ms: now_ms,
            detail: serde_json::json!({
                "window_start_ms": start,
                "window_ms": rule.window_ms,
                "requests": self.requests,
                "errors": self.errors,
                "threshold_percent": rule.percent,
            }),
        })
    }

    fn reached(&self, rule: &ErrorRateRule) -> bool {
        self.requests >= rule.min_requests
            && u128::from(self.errors) * 100 >= u128::from(rule.percent) * u128::from(self.requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_hours_fold_into_days_and_old_days_go() {
        let group = |n: u64| Rollup {
            model: "m".into(),
            requests: n,
            ..Rollup::default()
        };
        let now = 1_000 * DAY_MS;
        let mut r = Rollups::default();
        // Two old hours of one day, one recent hour, one day past the retention.
        r.buckets
            .insert(bucket_name('h', now - 3 * DAY_MS, "k"), vec![group(2)]);
        r.buckets.insert(
            bucket_name('h', now - 3 * DAY_MS + HOUR_MS, "k"),
            vec![group(3)],
        );
        r.buckets
            .insert(bucket_name('h', now - HOUR_MS, "k"), vec![group(5)]);
        r.buckets
            .insert(bucket_name('d', now - 500 * DAY_MS, "k"), vec![group(7)]);
        let touched = r.compact(now);
        assert_eq!(touched.len(), 4, "{touched:?}");
        let names: Vec<&String> = r.buckets.keys().collect();
        assert_eq!(
            names,
            [
                &bucket_name('d', now - 3 * DAY_MS, "k"),
                &bucket_name('h', now - HOUR_MS, "k")
            ]
        );
        assert_eq!(
            r.buckets[&bucket_name('d', now - 3 * DAY_MS, "k")][0].requests,
            5
        );
        assert!(r.compact(now).is_empty(), "nothing left to do");
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let mut h = Histogram::default();
        for v in [3, 4, 4, 5] {
            h.record(v); // all in (2, 5]
        }
        h.record(80); // (50, 100]
        assert_eq!(h.count(), 5);
        // p50: rank 3 of 5, the third of four in (2, 5]: 2 + 3 * 3/4.
        assert_eq!(h.quantile(0.5), Some(4.25));
        // p95: rank 5: the one in (50, 100], at its upper bound.
        assert_eq!(h.quantile(0.95), Some(100.0));
        assert_eq!(Histogram::default().quantile(0.5), None);
        let mut big = Histogram::default();
        big.record(120_000);
        assert_eq!(big.quantile(0.5), Some(60_000.0));
    }

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
        assert!(
            w.count(&rule, "t", true, t + 4).is_none(),
            "once per window"
        );
        // The next window starts over.
        assert!(w.count(&rule, "t", true, 180_000).is_none());
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
