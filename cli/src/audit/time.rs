//! Times on the command line: milliseconds since the Unix epoch, RFC 3339 (UTC or with an
//! offset), or a bare date (midnight UTC); and back to RFC 3339 for tables.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

const EXPECTED: &str =
    "expected milliseconds since the epoch, a date (2024-05-01) or RFC 3339 (2024-05-01T12:00:00Z)";

/// Parses `1700000000000`, `2024-02-29`, `2024-02-29T12:34:56Z`, `2024-02-29T12:34:56.789+02:00`
/// to milliseconds since the epoch (digits past the millisecond are dropped). Used as a clap
/// value parser, so the error names neither the flag nor the value: clap adds both.
pub fn parse_time(s: &str) -> Result<u64, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| "out of range".to_string());
    }
    let instant = if s.len() == 10 {
        // The length check keeps this as strict as RFC 3339's full-date: chrono's `%m` and `%d`
        // would also take one digit.
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|e| format!("{e}; {EXPECTED}"))?
            .and_hms_opt(0, 0, 0)
            .ok_or("out of range")?
            .and_utc()
    } else {
        DateTime::parse_from_rfc3339(s)
            .map_err(|e| format!("{e}; {EXPECTED}"))?
            .to_utc()
    };
    u64::try_from(instant.timestamp_millis()).map_err(|_| "before 1970".to_string())
}

/// `2024-02-29T10:34:56.789Z`; the bare number for a time chrono cannot represent (a hostile
/// or corrupt record may carry any u64).
pub fn format_ms(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or_else(
            || ms.to_string(),
            |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
        )
}

/// The current time in milliseconds since the epoch.
pub fn now_ms() -> Result<u64, String> {
    u64::try_from(Utc::now().timestamp_millis())
        .map_err(|_| "the system clock is before 1970".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from GNU date, e.g. `date -u -d "2024-02-29T12:34:56.789+02:00" +%s%3N`.
    #[test]
    fn parses_ms_dates_and_rfc3339() {
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("1709202896789"), Ok(1_709_202_896_789));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2000-03-01"), Ok(951_868_800_000));
        assert_eq!(
            parse_time("2024-02-29T12:34:56.789+02:00"),
            Ok(1_709_202_896_789)
        );
        assert_eq!(
            parse_time("2024-02-29T10:34:56.789Z"),
            Ok(1_709_202_896_789)
        );
        assert_eq!(parse_time("2024-02-29T10:34:56.7Z"), Ok(1_709_202_896_700));
        assert_eq!(
            parse_time("2024-02-29T10:34:56.789999Z"),
            Ok(1_709_202_896_789)
        );
        assert_eq!(
            parse_time("2024-02-29T05:04:56.789-05:30"),
            Ok(1_709_202_896_789)
        );
        // RFC 3339 allows a space (or lower-case t) between date and time.
        assert_eq!(
            parse_time("2024-02-29 10:34:56.789z"),
            Ok(1_709_202_896_789)
        );
        // date -u -d 2026-10-31T22:00:00Z +%s%3N: midnight at +02:00 is 22:00 UTC the day before.
        assert_eq!(
            parse_time("2026-11-01T00:00:00+02:00"),
            Ok(1_793_484_000_000)
        );
        assert_eq!(
            parse_time("2026-11-01T00:00:00-02:00"),
            Ok(1_793_498_400_000)
        );
        for bad in [
            "",
            "yesterday",
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "2024-01-1x",
            "2024-02-29T25:00:00Z",
            "2024-02-29T10:00Z",
            "2024-02-29T10:00:00",
            "2024-02-29T10:00:00+24:00",
            "1969-12-31T23:59:59Z",
            "99999999999999999999",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_709_202_896_789), "2024-02-29T10:34:56.789Z");
        assert_eq!(format_ms(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(format_ms(u64::MAX), u64::MAX.to_string());
        for ms in [
            0,
            1,
            86_399_999,
            951_868_800_000,
            1_709_202_896_789,
            4_102_444_800_000,
        ] {
            assert_eq!(parse_time(&format_ms(ms)), Ok(ms));
        }
    }
}
