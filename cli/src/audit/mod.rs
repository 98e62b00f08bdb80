//! `asc audit`: signing keys for the audit trail, and the verifier for compliance teams.

mod files;
mod table;
mod time;

use std::path::Path;
use std::process::ExitCode;

use asc_core::trail::keys::{key_pair, Validity};
use asc_core::trail::query::RecordFilter;
use asc_core::trail::verify::{verify, Report, VerifyOptions};
use asc_core::trail::{PublicKeyring, ShipPolicy};

use crate::args::{flag, number, switch};
use time::{format_ms, now_ms, parse_time};

pub const USAGE: &str = "\
       asc audit keygen --key-id ID [--not-before TIME] [--not-after TIME]
           Makes an Ed25519 digest-signing key. Prints AUDIT_SIGNING_KEY=<json> (secret: add it
           to the JSON list in the Worker secret AUDIT_SIGNING_KEYS, `wrangler secret put
           AUDIT_SIGNING_KEYS --env <region>`) and AUDIT_PUBLIC_KEY=<json> (add it to the
           auditors' key file, a JSON list). --not-before defaults to now; no --not-after means
           no end. TIME is milliseconds since the epoch or RFC 3339.
       asc audit verify DIR --keys FILE [--now TIME] [--heartbeat-ms N] [--grace-ms N] [--json]
           Checks every batch, digest, signature and chain under DIR/audit/ (DIR is a local copy
           of the audit bucket, e.g. from `rclone copy` or `aws s3 sync`; reading an
           S3-compatible bucket directly is not built yet). --heartbeat-ms must be the
           deployment's AUDIT_HEARTBEAT_MS (default 60000); --grace-ms allows for alarm delay
           (default 60000); --now defaults to the current time. Prints every problem with its
           object, line and sequence, expected and found. Exit 0: all verified; 1: problems.
       asc audit query DIR --keys FILE [--tenant T] [--key-id K] [--model M] [--from TIME]
                 [--to TIME] [--format table|json] [--allow-unverified] [verify options]
           Verifies first, then lists the matching records (--from inclusive, --to exclusive;
           --model matches the requested or the served model). Refuses if verification found
           problems, unless --allow-unverified, which marks every record verified or not.";

pub fn run(args: &[&str]) -> Result<ExitCode, String> {
    match args {
        ["keygen", rest @ ..] => keygen(rest),
        ["verify", dir, rest @ ..] if !dir.starts_with("--") => verify_cmd(dir, rest),
        ["query", dir, rest @ ..] if !dir.starts_with("--") => query(dir, rest),
        ["help"] | ["--help"] | [] => {
            println!("usage:\n{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(format!("usage:\n{USAGE}")),
    }
}

fn time_flag(args: &[&str], name: &str) -> Result<Option<u64>, String> {
    flag(args, name)
        .map(|v| parse_time(v).map_err(|e| format!("{name} {v:?}: {e}")))
        .transpose()
}

fn keygen(args: &[&str]) -> Result<ExitCode, String> {
    let key_id = flag(args, "--key-id").ok_or("--key-id is required")?;
    let not_before_ms = match time_flag(args, "--not-before")? {
        Some(t) => t,
        None => now_ms()?,
    };
    let validity = Validity {
        not_before_ms,
        not_after_ms: time_flag(args, "--not-after")?,
    };
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let (secret, public) = key_pair(key_id, &seed, validity).map_err(|e| e.0)?;
    seed.fill(0);
    println!(
        "# Secret: add to the JSON list in the Worker secret AUDIT_SIGNING_KEYS; never commit it."
    );
    println!(
        "AUDIT_SIGNING_KEY={}",
        serde_json::to_string(&secret).map_err(|e| e.to_string())?
    );
    println!(
        "# Public: add to the auditors' key file (a JSON list) and keep it there after rotation."
    );
    println!(
        "AUDIT_PUBLIC_KEY={}",
        serde_json::to_string(&public).map_err(|e| e.to_string())?
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads the keys and objects and runs the verifier with the command's options.
fn verified_report(dir: &str, args: &[&str]) -> Result<Report, String> {
    let keys_path =
        flag(args, "--keys").ok_or("--keys FILE (the auditors' public keys) is required")?;
    let key_bytes = std::fs::read(keys_path).map_err(|e| format!("{keys_path}: {e}"))?;
    let keys = PublicKeyring::from_json(&key_bytes).map_err(|e| format!("{keys_path}: {e}"))?;
    if keys.is_empty() {
        return Err(format!("{keys_path}: no keys"));
    }
    let objects = files::read_objects(Path::new(dir))?;
    let now_ms = match time_flag(args, "--now")? {
        Some(t) => t,
        None => now_ms()?,
    };
    let heartbeat_ms =
        number(args, "--heartbeat-ms")?.unwrap_or(ShipPolicy::default().heartbeat_ms);
    let mut options = VerifyOptions::new(now_ms, heartbeat_ms);
    if let Some(grace) = number(args, "--grace-ms")? {
        options.grace_ms = grace;
    }
    Ok(verify(&objects, &keys, &options))
}

fn verify_cmd(dir: &str, args: &[&str]) -> Result<ExitCode, String> {
    let report = verified_report(dir, args)?;
    let verified = report.verified().count();
    let unverified = report.records.len() - verified;
    if switch(args, "--json") {
        let out = serde_json::json!({
            "ok": report.is_ok(),
            "streams": report.streams,
            "problems": report.problems,
            "verified_records": verified,
            "unverified_records": unverified,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else {
        for p in &report.problems {
            println!("{p}");
        }
        for s in &report.streams {
            println!(
                "stream {}: {} digests ({} heartbeats), {} batches, {} records, records 1..={}, newest digest {}",
                s.stream,
                s.digests,
                s.heartbeats,
                s.batches,
                s.records,
                s.last_sequence,
                s.newest_digest_ms.map_or("none".into(), format_ms)
            );
        }
        if report.is_ok() {
            println!("OK: {verified} records verified");
        } else {
            println!(
                "FAILED: {} problem(s); {verified} records verified, {unverified} not",
                report.problems.len()
            );
        }
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn query(dir: &str, args: &[&str]) -> Result<ExitCode, String> {
    let format = flag(args, "--format").unwrap_or("table");
    if !matches!(format, "table" | "json") {
        return Err(format!("--format {format:?}: table or json"));
    }
    let filter = RecordFilter {
        tenant_id: flag(args, "--tenant").map(str::to_string),
        key_id: flag(args, "--key-id").map(str::to_string),
        model: flag(args, "--model").map(str::to_string),
        from_ms: time_flag(args, "--from")?,
        to_ms: time_flag(args, "--to")?,
    };
    let report = verified_report(dir, args)?;
    let allow_unverified = switch(args, "--allow-unverified");
    if !report.is_ok() {
        if !allow_unverified {
            for p in report.problems.iter().take(20) {
                eprintln!("{p}");
            }
            eprintln!(
                "asc: verification found {} problem(s) (`asc audit verify` lists them all); \
                 refusing to query. --allow-unverified queries anyway, marking each record.",
                report.problems.len()
            );
            return Ok(ExitCode::from(1));
        }
        eprintln!(
            "WARNING: verification found {} problem(s); these results include records that did \
             not verify (VERIFIED = NO, \"verified\": false).",
            report.problems.len()
        );
    }
    let selected = if allow_unverified {
        filter.select(&report.records)
    } else {
        filter.select(report.verified())
    };
    match format {
        "json" => {
            let rows: Vec<_> = selected
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "stream": r.stream, "sequence": r.sequence, "hash": r.hash,
                        "verified": r.verified, "record": r.record,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
            );
        }
        _ => print!("{}", table::render(&selected, allow_unverified)),
    }
    Ok(ExitCode::SUCCESS)
}
