//! Query results as a plain-text table.

use asc_core::trail::verify::CheckedRecord;
use serde_json::Value;

use super::time::format_ms;

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
    let mut row = vec![
        time,
        r.stream.clone(),
        r.sequence.to_string(),
        text(rec, "tenant_id"),
        text(rec, "key_id"),
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
    let mut header: Vec<String> = [
        "TIME",
        "STREAM",
        "SEQ",
        "TENANT",
        "KEY",
        "OPERATION",
        "MODEL",
        "OUTCOME",
        "STATUS",
        "TOKENS_IN/OUT",
        "LATENCY_MS",
    ]
    .map(String::from)
    .to_vec();
    if with_verified {
        header.push("VERIFIED".into());
    }
    let rows: Vec<Vec<String>> = std::iter::once(header)
        .chain(records.iter().map(|r| cells(r, with_verified)))
        .collect();
    let mut widths = vec![0; rows[0].len()];
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
}
