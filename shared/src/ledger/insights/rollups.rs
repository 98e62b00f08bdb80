//! Usage rollups: per key and hour (folded into days after 48 h), by model, provider and tags,
//! with counts, tokens, cost, errors by code, guardrail hits and latency histograms; the
//! analytics query over them.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, CacheOutcome, Outcome};

pub const HOUR_MS: u64 = 3_600_000;
pub const DAY_MS: u64 = 24 * HOUR_MS;
/// Hourly buckets are kept this long, then folded into days.
pub const HOURLY_KEEP_MS: u64 = 48 * HOUR_MS;
/// Daily buckets are kept this long (a year of month-over-month comparisons).
pub const DAILY_KEEP_MS: u64 = 400 * DAY_MS;

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
    /// Charged for lease allowances given up on (`lease_unreconciled`: the isolate holding them
    /// never reported back): part of `cost_usd_micros`, with no request counted. Kept in a group
    /// of its own (no model, no provider) under the lease's key and tags.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unreturned_usd_micros: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
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
        self.unreturned_usd_micros = self
            .unreturned_usd_micros
            .saturating_add(o.unreturned_usd_micros);
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
    pub(in crate::ledger) buckets: BTreeMap<String, Vec<Rollup>>,
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

    /// The groups of the buckets `names`, by bucket (what a compare-and-swap host adds into its
    /// rollup table).
    pub(in crate::ledger) fn take(
        mut self,
        names: std::collections::BTreeSet<String>,
    ) -> Vec<(String, Vec<Rollup>)> {
        names
            .into_iter()
            .filter_map(|name| self.buckets.remove(&name).map(|groups| (name, groups)))
            .collect()
    }

    /// Adds a final record; returns the bucket it changed.
    pub(in crate::ledger) fn add(&mut self, event: &AuditEvent) -> Option<String> {
        if !is_model_traffic(&event.record.operation) {
            return None;
        }
        let r = &event.record;
        let model = r
            .served_model
            .clone()
            .or_else(|| r.requested_model.clone())
            .unwrap_or_default();
        let provider = r.provider.clone().unwrap_or_default();
        let (name, group) = self.group(event, model, provider);
        if let Some(g) = group {
            g.add(event);
        }
        Some(name)
    }

    /// Adds what a lease given up on was charged for its unreturned allowance (`lease`: its own
    /// record, which is not model traffic): cost without a request, so a tenant's analytics add
    /// up to what its budgets were charged. Returns the bucket it changed.
    pub(in crate::ledger) fn add_unreturned(&mut self, lease: &AuditEvent, micros: u64) -> String {
        let (name, group) = self.group(lease, String::new(), String::new());
        if let Some(g) = group {
            g.cost_usd_micros = g.cost_usd_micros.saturating_add(micros);
            g.unreturned_usd_micros = g.unreturned_usd_micros.saturating_add(micros);
        }
        name
    }

    /// The hour bucket of `event` (by its key) and its group for `model`, `provider` and its
    /// tags, made if it is new.
    fn group(
        &mut self,
        event: &AuditEvent,
        model: String,
        provider: String,
    ) -> (String, Option<&mut Rollup>) {
        let r = &event.record;
        let start = r.timestamp_ms - r.timestamp_ms % HOUR_MS;
        let name = bucket_name('h', start, r.key_id.as_deref().unwrap_or("-"));
        let list = self.buckets.entry(name.clone()).or_default();
        let tags = &event.detail.tags;
        let i = match list
            .iter()
            .position(|g| g.model == model && g.provider == provider && &g.tags == tags)
        {
            Some(i) => i,
            None => {
                list.push(Rollup {
                    model,
                    provider,
                    tags: tags.clone(),
                    ..Rollup::default()
                });
                list.len() - 1
            }
        };
        (name, list.get_mut(i))
    }

    /// Folds hours older than [`HOURLY_KEEP_MS`] into days and drops days older than
    /// [`DAILY_KEEP_MS`]; returns every bucket name written or removed.
    pub(in crate::ledger) fn compact(&mut self, now_ms: u64) -> Vec<String> {
        let mut touched = Vec::new();
        let hour_cutoff = now_ms.saturating_sub(HOURLY_KEEP_MS);
        let day_cutoff = now_ms.saturating_sub(DAILY_KEEP_MS);
        // Names sort by width, then start: only the old ones at the front of each width are
        // visited (this runs on every admission).
        let old_of = |width: &'static str, next: &'static str, keep: u64, cutoff: u64| {
            self.buckets
                .range::<str, _>((Bound::Included(width), Bound::Excluded(next)))
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
}
