//! `asc audit` end to end: a log written by the core's sequencer into a folder, verified and
//! queried through the real binary; tampering makes it exit 1 and say where.

mod common;

use asc_core::audit::batch::{gunzip, gzip};
use asc_core::audit::{batch_key, SigningKeyring};
use common::*;

#[test]
fn verify_accepts_an_untouched_log_and_pinpoints_a_deleted_record() {
    let dir = fixture("verify");
    let mut args = vec!["audit", "verify"];
    args.extend(VERIFY_FIXTURE);
    let ok = asc(&dir, &args);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(
        stdout(&ok).contains("OK: 5 records verified"),
        "{}",
        stdout(&ok)
    );

    // Delete the second record of the first batch and re-compress.
    let path = dir.join("bucket").join(batch_key("eu", 1, 3));
    let text = gunzip(&std::fs::read(&path).expect("read"), 1 << 20).expect("gunzip");
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    std::fs::write(&path, gzip(&[lines[0], lines[2]].concat()).expect("gzip")).expect("write");

    let bad = asc(&dir, &args);
    assert_eq!(bad.status.code(), Some(1));
    let out = stdout(&bad);
    let key = batch_key("eu", 1, 3);
    assert!(
        out.contains(&format!(
            "{key}:2: sequence 3: sequence_mismatch: not the next sequence (expected 2, found 3)"
        )),
        "{out}"
    );
    assert!(out.contains("batch_hash_mismatch"), "{out}");
    assert!(out.contains("FAILED"), "{out}");

    let json = asc(&dir, &[&args[..], &["--json"]].concat());
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["ok"], false);
    assert!(v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .any(|p| p["kind"] == "chain_broken" && p["line"] == 2 && p["object"] == key.as_str()));

    // A verification long after the newest digest reports a stale tail.
    let stale = asc(
        &dir,
        &[
            "audit",
            "verify",
            "bucket",
            "--keys",
            "keys.json",
            "--heartbeat-ms",
            "10000",
        ],
    );
    assert!(stdout(&stale).contains("tail_stale"), "{}", stdout(&stale));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn query_filters_verified_records_and_refuses_unverified_logs() {
    let dir = fixture("query");
    let base = [
        "audit",
        "query",
        "bucket",
        "--keys",
        "keys.json",
        "--now",
        NOW,
        "--heartbeat-ms",
        "10000",
    ];
    let q = asc(
        &dir,
        &[&base[..], &["--tenant", "acme", "--format", "json"]].concat(),
    );
    assert_eq!(
        q.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&q.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&q.stdout).expect("json");
    let seqs: Vec<u64> = rows
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["sequence"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [2, 4]);

    // Model matches the requested model; --from is inclusive, --to exclusive (RFC 3339 or ms).
    let q = asc(
        &dir,
        &[
            &base[..],
            &[
                "--model",
                "gpt-4o-mini",
                "--from",
                "2023-11-14T22:13:23Z",
                "--to",
                "1700000005000",
            ],
        ]
        .concat(),
    );
    let table = stdout(&q);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{table}");
    let seq_col: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(2).expect("SEQ"))
        .collect();
    assert_eq!(seq_col, ["3", "4"], "{table}");

    // An offset names the same instant: 00:13:23+02:00 is 22:13:23Z the day before.
    let q = asc(
        &dir,
        &[
            &base[..],
            &["--from", "2023-11-15T00:13:23+02:00", "--format", "json"],
        ]
        .concat(),
    );
    let rows: serde_json::Value = serde_json::from_slice(&q.stdout).expect("json");
    let seqs: Vec<u64> = rows
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["sequence"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [3, 4, 5]);

    // Rewrite who made request 1 (globex -> acme): the query refuses unless told otherwise, and
    // then marks the batch's records as not verified.
    let path = dir.join("bucket").join(batch_key("eu", 1, 3));
    let text = gunzip(&std::fs::read(&path).expect("read"), 1 << 20).expect("gunzip");
    let edited = String::from_utf8(text).expect("utf-8").replacen(
        "\"tenant_id\":\"globex\"",
        "\"tenant_id\":\"acme\"",
        1,
    );
    std::fs::write(&path, gzip(edited.as_bytes()).expect("gzip")).expect("write");
    let refused = asc(&dir, &base);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refusing to query"));
    let allowed = asc(&dir, &[&base[..], &["--allow-unverified"]].concat());
    assert_eq!(allowed.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&allowed.stderr).contains("WARNING"));
    let table = stdout(&allowed);
    assert!(table.lines().next().expect("header").ends_with("VERIFIED"));
    assert!(table.lines().any(|l| l.ends_with("NO")), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keygen_prints_a_working_key_pair() {
    let dir = std::env::temp_dir();
    let out = asc(
        &dir,
        &[
            "audit",
            "keygen",
            "--key-id",
            "k2027",
            "--not-before",
            "2027-01-01T00:00:00Z",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .expect("line")
            .to_string()
    };
    let secret = value("AUDIT_SIGNING_KEY=");
    let public: serde_json::Value =
        serde_json::from_str(&value("AUDIT_PUBLIC_KEY=")).expect("json");
    assert_eq!(public["not_before_ms"], 1_798_761_600_000u64); // date -u -d 2027-01-01 +%s
    assert_eq!(public["not_after_ms"], serde_json::Value::Null);

    let ring = SigningKeyring::from_secret(&asc_core::secret::Secret::new(secret)).expect("ring");
    let keys =
        asc_core::audit::PublicKeyring::from_json(format!("[{public}]").as_bytes()).expect("keys");
    let sig = ring.sign("k2027", b"digest").expect("signs");
    assert_eq!(
        keys.check("k2027", 1_798_761_600_000, b"digest", &sig),
        Ok(())
    );

    let bad = asc(&dir, &["audit", "keygen", "--key-id", "Bad Id"]);
    assert_eq!(bad.status.code(), Some(2));

    // RFC 3339 with an offset: midnight at +02:00 is 22:00 UTC the day before
    // (date -u -d 2026-10-31T22:00:00Z +%s).
    let out = asc(
        &dir,
        &[
            "audit",
            "keygen",
            "--key-id",
            "k2026",
            "--not-before",
            "2026-11-01T00:00:00+02:00",
            "--not-after",
            "2026-11-01T00:00:00-02:00",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let public: serde_json::Value = serde_json::from_str(
        text.lines()
            .find_map(|l| l.strip_prefix("AUDIT_PUBLIC_KEY="))
            .expect("line"),
    )
    .expect("json");
    assert_eq!(public["not_before_ms"], 1_793_484_000_000u64);
    assert_eq!(public["not_after_ms"], 1_793_498_400_000u64);
}

#[test]
fn query_table_cuts_a_huge_model_name_and_json_keeps_it() {
    let huge = "m".repeat(10_000);
    let dir = fixture_with("huge", |n| {
        let mut e = event(n);
        if n == 2 {
            e.record.requested_model = Some(huge.clone());
        }
        e
    });
    let base = [
        "audit",
        "query",
        "bucket",
        "--keys",
        "keys.json",
        "--now",
        NOW,
        "--heartbeat-ms",
        "10000",
    ];
    let q = asc(&dir, &base);
    assert_eq!(
        q.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&q.stderr)
    );
    let table = stdout(&q);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    assert!(lines.iter().all(|l| l.chars().count() < 300), "{table}");
    let row = lines[2];
    assert!(row.contains("mmm…"), "{row}");
    assert!(!row.contains(&"m".repeat(100)), "{row}");
    // The columns after MODEL still line up with the header.
    let col = lines[0].find("OUTCOME").expect("header");
    for line in &lines[1..] {
        assert_eq!(
            line.chars().skip(col).take(2).collect::<String>(),
            "ok",
            "{table}"
        );
    }

    let q = asc(&dir, &[&base[..], &["--format", "json"]].concat());
    let rows: serde_json::Value = serde_json::from_slice(&q.stdout).expect("json");
    assert_eq!(rows[1]["record"]["requested_model"], huge.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}
