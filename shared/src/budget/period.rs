//! Budget periods: UTC calendar days, ISO weeks (Monday 00:00 UTC) and months, or a rolling window.
//! A period is a half-open interval `[start, end)` in milliseconds: rollover is exact at `end`.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
    /// The last `window_ms`, counted in 60 buckets so memory stays bounded. A charge leaves the
    /// window only when its whole bucket has, so the limit is never exceeded (it may refuse up to
    /// one bucket early).
    Rolling {
        window_ms: u64,
    },
}

/// Number of buckets a rolling window is split into.
pub const ROLLING_BUCKETS: u64 = 60;

impl Period {
    /// The calendar period containing `now_ms`, as `[start, end)`. For rolling windows this is the
    /// current bucket.
    pub fn bounds(self, now_ms: u64) -> (u64, u64) {
        match self {
            Period::Daily => {
                let day = date_of(now_ms);
                (ms_of(day), ms_of(day + Duration::days(1)))
            }
            Period::Weekly => {
                let day = date_of(now_ms);
                let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
                (ms_of(monday), ms_of(monday + Duration::days(7)))
            }
            Period::Monthly => {
                let day = date_of(now_ms);
                let first = day.with_day(1).unwrap_or(day);
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                }
                .unwrap_or(first);
                (ms_of(first), ms_of(next))
            }
            Period::Rolling { window_ms } => {
                let bucket = bucket_ms(window_ms);
                let start = now_ms - now_ms % bucket;
                (start, start + bucket)
            }
        }
    }

    pub fn label(self) -> String {
        match self {
            Period::Daily => "daily".into(),
            Period::Weekly => "weekly".into(),
            Period::Monthly => "monthly".into(),
            Period::Rolling { window_ms } => format!("rolling_{window_ms}ms"),
        }
    }
}

pub fn bucket_ms(window_ms: u64) -> u64 {
    (window_ms / ROLLING_BUCKETS).max(1)
}

fn date_of(ms: u64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

fn ms_of(day: NaiveDate) -> u64 {
    let t = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default());
    t.timestamp_millis().max(0) as u64
}

/// Parses an RFC 3339 timestamp (`2026-01-01T00:00:00Z`) or a date (`2026-01-01`, midnight UTC).
pub fn parse_instant(s: &str) -> Option<u64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return u64::try_from(t.timestamp_millis()).ok();
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(ms_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> u64 {
        parse_instant(s).expect("instant")
    }

    #[test]
    fn calendar_periods_are_utc_and_half_open() {
        // 2026-03-15 was a Sunday.
        let t = at("2026-03-15T23:59:59.999Z");
        assert_eq!(
            Period::Daily.bounds(t),
            (at("2026-03-15"), at("2026-03-16"))
        );
        assert_eq!(
            Period::Weekly.bounds(t),
            (at("2026-03-09"), at("2026-03-16"))
        );
        assert_eq!(
            Period::Monthly.bounds(t),
            (at("2026-03-01"), at("2026-04-01"))
        );
        // One millisecond later every period has rolled over.
        let next = t + 1;
        assert_eq!(Period::Daily.bounds(next).0, at("2026-03-16"));
        assert_eq!(Period::Weekly.bounds(next).0, at("2026-03-16"));
        assert_eq!(Period::Monthly.bounds(next).0, at("2026-03-01"));
    }

    #[test]
    fn month_ends_and_leap_years() {
        assert_eq!(
            Period::Monthly.bounds(at("2024-02-29T12:00:00Z")),
            (at("2024-02-01"), at("2024-03-01"))
        );
        assert_eq!(
            Period::Monthly.bounds(at("2026-12-31T23:00:00Z")),
            (at("2026-12-01"), at("2027-01-01"))
        );
        assert_eq!(at("2027-01-01") - at("2026-12-01"), 31 * 86_400_000);
    }

    #[test]
    fn rolling_buckets() {
        let p = Period::Rolling {
            window_ms: 3_600_000,
        };
        assert_eq!(p.bounds(3_600_000 + 59_999), (3_600_000, 3_660_000));
    }

    #[test]
    fn instants_parse() {
        assert_eq!(at("1970-01-02"), 86_400_000);
        assert_eq!(at("1970-01-01T00:00:01+00:00"), 1000);
        assert_eq!(parse_instant("yesterday"), None);
    }
}
