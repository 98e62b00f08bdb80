//! Query results as a plain-text table.

use asc_core::audit::verify::CheckedRecord;
use serde_json::Value;

use super::time::format_ms;

/// The columns and the most characters a cell may take in each. A record's fields are
/// client-supplied or, in a tampered log, anything at all: one 10,000-character model name must
/// not push every other column off the screen. Ids are up to 64 characters, so a valid tenant or
/// key id is never cut; `--format json` always has every field whole.
const COLUMNS: [(&str, usize); 11] = [
    ("TIME", 24),
    ("STREAM", 32),
    ("SEQ", 20),
    ("TENANT", 64),
    ("KEY", 64),
    ("OPERATION", 32),
    ("MODEL", 48),
    ("OUTCOME", 24),
    ("STATUS", 8),
    ("TOKENS_IN/OUT", 41),
    ("LATENCY_MS", 20),
];
const VERIFIED: (&str, usize) = ("VERIFIED", 8);

/// The cell as it will be shown: control characters (which could move the cursor or clear the
/// screen) and bidirectional overrides (which could reorder what is shown) escaped, and cut to
/// `max` characters with an ellipsis.
fn fit(cell: &str, max: usize) -> String {
    let mut shown = String::with_capacity(cell.len());
    for c in cell.chars() {
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    if shown.chars().count() <= max {
        return shown;
    }
    let mut cut: String = shown.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn text(record: &Value, field: &str) -> String {
    match record.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

fn cells(r: &CheckedRecord, with_verified: bool) -> Vec<String> {
    let rec = &r.record;
    let time = rec
        .get("timestamp_ms")
        .and_then(Value::as_u64)
        .map_or("-".into(), format_ms);
    let model = match text(rec, "served_model").as_str() {
        "-" => text(rec, "requested_model"),
        served => served.to_string(),
    };
    let tokens = match rec.get("usage") {
        Some(u) if u.is_object() => format!(
            "{}/{}",
            u.get("input_tokens").and_then(Value::as_u64).unwrap_or(0),
            u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0)
        ),
        _ => "-".into(),
    };
    // Admin actions have no key: their actor (`operator:<subject>`) stands in.
    let key = match text(rec, "key_id").as_str() {
        "-" => text(rec, "actor"),
        k => k.to_string(),
    };
    let mut row = vec![
        time,
        r.stream.clone(),
        r.sequence.to_string(),
        text(rec, "tenant_id"),
        key,
        text(rec, "operation"),
        model,
        text(rec, "outcome"),
        text(rec, "status"),
        tokens,
        text(rec, "latency_ms"),
    ];
    if with_verified {
        row.push(if r.verified { "yes" } else { "NO" }.into());
    }
    row
}

/// The records as aligned columns, one per line, with a header.
pub fn render(records: &[&CheckedRecord], with_verified: bool) -> String {
    let columns: Vec<(&str, usize)> = COLUMNS
        .into_iter()
        .chain(with_verified.then_some(VERIFIED))
        .collect();
    let header = columns.iter().map(|(name, _)| name.to_string()).collect();
    let rows: Vec<Vec<String>> = std::iter::once(header)
        .chain(records.iter().map(|r| {
            cells(r, with_verified)
                .iter()
                .zip(&columns)
                .map(|(cell, (_, max))| fit(cell, *max))
                .collect()
        }))
        .collect();
    let mut widths = vec![0; columns.len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aligns_columns_and_marks_unverified_rows() {
        let rec = |seq, verified| CheckedRecord {
            stream: "eu".into(),
            sequence: seq,
            hash: "h".into(),
            object: "o".into(),
            line: 1,
            verified,
            record: json!({"timestamp_ms": 0, "tenant_id": "acme", "key_id": null,
                           "operation": "chat.completions", "requested_model": "gpt-4o",
                           "served_model": null, "outcome": "ok", "status": 200,
                           "usage": {"input_tokens": 3, "output_tokens": 4}, "latency_ms": 12}),
        };
        let (a, b) = (rec(9, true), rec(10, false));
        let table = render(&[&a, &b], true);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("TIME                      STREAM  SEQ  TENANT"));
        assert!(lines[1].starts_with("1970-01-01T00:00:00.000Z  eu      9    acme    -"));
        assert!(
            lines[1].contains("gpt-4o") && lines[1].contains("3/4") && lines[1].ends_with("yes")
        );
        assert!(lines[2].ends_with("NO"));
        // Columns line up: SEQ starts at the same offset in every line.
        let col = lines[0].find("SEQ").expect("header");
        assert_eq!(&lines[1][col..col + 1], "9");
        assert_eq!(&lines[2][col..col + 2], "10");
    }

    #[test]
    fn cuts_huge_cells_and_escapes_control_characters() {
        let long_model = "m".repeat(10_000);
        let rec = |model: &str| CheckedRecord {
            stream: "eu".into(),
            sequence: 1,
            hash: "h".into(),
            object: "o".into(),
            line: 1,
            verified: true,
            record: json!({"timestamp_ms": 0, "tenant_id": "acme", "requested_model": model,
                           "operation": "x".repeat(5_000), "status": 200}),
        };
        let (a, b) = (rec(&long_model), rec("evil\u{1b}[2J\nmodel\u{202e}"));
        let table = render(&[&a, &b], false);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let widest: usize = COLUMNS.iter().map(|(_, max)| max + 2).sum();
        assert!(lines.iter().all(|l| l.chars().count() <= widest), "{table}");
        assert!(
            lines[1].contains(&format!("{}…", "m".repeat(47))),
            "{table}"
        );
        assert!(
            lines[1].contains(&format!("{}…", "x".repeat(31))),
            "{table}"
        );
        assert!(!lines[1].contains(&"m".repeat(48)), "{table}");
        assert!(
            lines[2].contains(r"evil\u{1b}[2J\u{a}model\u{202e}"),
            "{table}"
        );
        // Columns still line up after the cut.
        let col = lines[0].find("OUTCOME").expect("header");
        assert_eq!(lines[1].chars().nth(col), Some('-'));
        assert_eq!(lines[2].chars().nth(col), Some('-'));
    }
}
