//! Times on the command line: milliseconds since the Unix epoch, or RFC 3339 (UTC or with an
//! offset), or a bare date (midnight UTC); and back to RFC 3339 for tables.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn digits(s: &str, what: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {s:?} is not a number"));
    }
    s.parse()
        .map_err(|_| format!("{what} {s:?} is out of range"))
}

/// Parses `1700000000000`, `2024-02-29`, `2024-02-29T12:34:56Z`, `2024-02-29T12:34:56.789+02:00`.
pub fn parse_time(s: &str) -> Result<u64, String> {
    if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        return s.parse().map_err(|_| format!("{s:?} is out of range"));
    }
    let bad = || {
        format!("{s:?}: expected milliseconds since the epoch or RFC 3339 (2024-05-01T12:00:00Z)")
    };
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut ymd = date.splitn(3, '-');
    let (Some(y), Some(mo), Some(d)) = (ymd.next(), ymd.next(), ymd.next()) else {
        return Err(bad());
    };
    let (y, mo, d) = (digits(y, "year")?, digits(mo, "month")?, digits(d, "day")?);
    let month_days = [
        31,
        28 + i64::from(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] || date.len() != 10 {
        return Err(bad());
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if let Some(rest) = rest {
        let (clock, offset_ms) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else {
            let i = rest.rfind(['+', '-']).ok_or_else(bad)?;
            let (h, m) = rest[i + 1..].split_once(':').ok_or_else(bad)?;
            let (h, m) = (digits(h, "offset hours")?, digits(m, "offset minutes")?);
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let sign = if rest.as_bytes()[i] == b'+' { 1 } else { -1 };
            (&rest[..i], sign * (h * 3_600_000 + m * 60_000))
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut parts = hms.split(':');
        let (Some(h), Some(mi), Some(sec), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let (h, mi, sec) = (
            digits(h, "hour")?,
            digits(mi, "minute")?,
            digits(sec, "second")?,
        );
        if h > 23 || mi > 59 || sec > 60 {
            return Err(bad());
        }
        let millis = if frac.is_empty() {
            0
        } else {
            let f = digits(frac, "fraction")?;
            let scale = 10i64.pow(3u32.saturating_sub(frac.len() as u32));
            if frac.len() > 3 {
                digits(&frac[..3], "fraction")?
            } else {
                f * scale
            }
        };
        ms += h * 3_600_000 + mi * 60_000 + sec * 1000 + millis - offset_ms;
    }
    u64::try_from(ms).map_err(|_| format!("{s:?} is before 1970"))
}

/// `2024-02-29T10:34:56.789Z`.
pub fn format_ms(ms: u64) -> String {
    let ms = ms as i64;
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
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
            parse_time("2024-02-29T05:04:56.789-05:30"),
            Ok(1_709_202_896_789)
        );
        for bad in [
            "",
            "yesterday",
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "2024-02-29T25:00:00Z",
            "2024-02-29T10:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_709_202_896_789), "2024-02-29T10:34:56.789Z");
        assert_eq!(format_ms(951_868_799_999), "2000-02-29T23:59:59.999Z");
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
