//! `asc evidence`: what a compliance team hands an auditor. `pack` writes, for a period, the
//! verification result of the audit trail, the signing keys in force, config versions and who
//! changed them, the keys and their use, the region files and allowlists, the price-table
//! versions, a summary and a residency report, each file listed with its SHA-256 in a signed
//! manifest; `verify` checks a pack; `residency` prints the residency report alone.

mod facts;
mod manifest;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use asc_core::apikey::KeyRecord;
use asc_core::audit::keys::{PublicKeyEntry, SigningKeySpec};
use asc_core::audit::{AuditEvent, PublicKeyring, SigningKeyring};
use asc_core::budget::PriceTable;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::audit::{now_ms, parse_time, verified_report, Format, Verification, TIME_HELP};

#[derive(Subcommand)]
pub enum Command {
    Pack(PackArgs),
    Verify(VerifyArgs),
    Residency(ResidencyArgs),
}

/// Writes an evidence pack for a period into a new folder.
///
/// Exit 0: the pack is written and the audit trail verified; 1: the pack is written but
/// verification found problems (they are in verification.json); 2: nothing written.
#[derive(Args)]
#[command(after_help = TIME_HELP)]
pub struct PackArgs {
    #[command(flatten)]
    verification: Verification,
    /// Start of the period (inclusive).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    from: u64,
    /// End of the period (exclusive).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to: u64,
    /// The folder to create (it must not exist).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The key that signs the manifest: an AUDIT_SIGNING_KEY value from `asc audit keygen`
    /// (one JSON object, or a list), kept by the compliance team.
    #[arg(long, value_name = "FILE")]
    signing_key: PathBuf,
    /// The deployment's key records (a JSON list of the KV values under `key:<hash>`), for the
    /// keys' scopes and status; without it keys are listed from their use alone.
    #[arg(long, value_name = "FILE")]
    key_records: Option<PathBuf>,
}

/// Checks an evidence pack: the manifest's signature, then every file against it.
///
/// Exit 0: intact; 1: something was changed, added or removed (each is printed).
#[derive(Args)]
pub struct VerifyArgs {
    /// The pack's folder.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Public keys that may have signed it (a JSON list, as `asc audit keygen` prints them).
    #[arg(long, value_name = "FILE")]
    keys: PathBuf,
}

/// Every upstream host contacted per region in a period, checked against the region's allowlist.
///
/// Exit 0: every host was in its region's allowlist; 1: some were not (flagged).
#[derive(Args)]
#[command(after_help = TIME_HELP)]
pub struct ResidencyArgs {
    #[command(flatten)]
    verification: Verification,
    /// Start of the period (inclusive) [default: the beginning].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    from: Option<u64>,
    /// End of the period (exclusive) [default: no end].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to: Option<u64>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Pack(args) => pack(&args),
        Command::Verify(args) => verify(&args),
        Command::Residency(args) => residency(&args),
    }
}

/// The verified records whose time falls in `[from, to)`.
fn events_in(report: &asc_core::audit::verify::Report, from: u64, to: u64) -> Vec<AuditEvent> {
    report
        .verified()
        .filter_map(|r| serde_json::from_value::<AuditEvent>(r.record.clone()).ok())
        .filter(|e| e.record.timestamp_ms >= from && e.record.timestamp_ms < to)
        .collect()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn signing_ring(path: &Path) -> Result<SigningKeyring, String> {
    let value: Value = read_json(path)?;
    let specs: Vec<SigningKeySpec> = match value {
        Value::Array(_) => serde_json::from_value(value),
        other => serde_json::from_value(other).map(|s| vec![s]),
    }
    .map_err(|e| format!("{}: not a signing key: {e}", path.display()))?;
    SigningKeyring::from_specs(&specs).map_err(|e| format!("{}: {e}", path.display()))
}

fn pretty(value: &Value) -> Result<Vec<u8>, String> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn pack(args: &PackArgs) -> Result<ExitCode, String> {
    if args.from >= args.to {
        return Err("--from must be before --to".into());
    }
    if args.out.exists() {
        return Err(format!(
            "{}: exists; a pack goes into a new folder",
            args.out.display()
        ));
    }
    let ring = signing_ring(&args.signing_key)?;
    let key_records: Vec<KeyRecord> = match &args.key_records {
        Some(path) => read_json(path)?,
        None => Vec::new(),
    };
    let public: Vec<PublicKeyEntry> = read_json(&args.verification.keys)?;
    let report = verified_report(&args.verification)?;
    let events = events_in(&report, args.from, args.to);
    let regions = asc_core::builtin_regions()?;
    let generated_ms = now_ms()?;

    let in_force: Vec<&PublicKeyEntry> = public
        .iter()
        .filter(|k| k.not_before_ms < args.to && k.not_after_ms.is_none_or(|end| end > args.from))
        .collect();
    let region_files: Vec<Value> = asc_core::REGION_FILES
        .iter()
        .map(|(id, text)| {
            let region = regions.get(id);
            json!({
                "id": id,
                "file": format!("regions/{id}.toml"),
                "sha256": asc_core::audit::canonical::sha256_hex(text.as_bytes()),
                "text": text,
                "allowed_upstream_hosts": region.map(|r| r.allowed_upstream_hosts.clone()),
                "hostnames": region.map(|r| r.hostnames.clone()),
                "storage_jurisdiction": region.and_then(|r| r.storage_jurisdiction.clone()),
            })
        })
        .collect();
    let verification = json!({
        "ok": report.is_ok(),
        "as_of_ms": args.verification.now.unwrap_or(generated_ms),
        "streams": report.streams,
        "problems": report.problems,
        "verified_records": report.verified().count(),
        "unverified_records": report.records.len() - report.verified().count(),
        "records_in_period": events.len(),
    });
    let residency = facts::residency(&events, &regions);
    let files: Vec<(&str, Value)> = vec![
        ("verification.json", verification),
        (
            "signing-keys.json",
            json!({"in_force_during_period": in_force}),
        ),
        ("config-versions.json", facts::config_versions(&events)),
        ("keys.json", facts::key_use(&events, &key_records)),
        ("regions.json", json!({"regions": region_files})),
        (
            "price-tables.json",
            facts::price_versions(&events, &PriceTable::builtin().version),
        ),
        ("summary.json", facts::summary(&events)),
        ("residency.json", residency.clone()),
    ];

    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut manifest = manifest::Manifest::new(args.from, args.to, generated_ms);
    for (name, value) in &files {
        let bytes = pretty(value)?;
        manifest.add(name, &bytes);
        write(&args.out, name, &bytes)?;
    }
    let (manifest_bytes, signature) = manifest.sign(&ring)?;
    write(&args.out, manifest::MANIFEST, &manifest_bytes)?;
    write(&args.out, manifest::SIGNATURE, &signature)?;
    println!(
        "Wrote {}: {} records in the period, audit trail {}, residency {}.",
        args.out.display(),
        events.len(),
        if report.is_ok() {
            "verified"
        } else {
            "NOT verified (see verification.json)"
        },
        if residency["ok"] == true {
            "ok"
        } else {
            "FLAGGED (see residency.json)"
        },
    );
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn verify(args: &VerifyArgs) -> Result<ExitCode, String> {
    let keys_path = args.keys.display();
    let bytes = std::fs::read(&args.keys).map_err(|e| format!("{keys_path}: {e}"))?;
    let keys = PublicKeyring::from_json(&bytes).map_err(|e| format!("{keys_path}: {e}"))?;
    match manifest::verify(&args.dir, &keys) {
        Ok(m) => {
            println!(
                "OK: {} files intact, signed; period {} to {}",
                m.files.len(),
                crate::audit::format_ms(m.from_ms),
                crate::audit::format_ms(m.to_ms)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            println!("FAILED: {} problem(s)", problems.len());
            Ok(ExitCode::from(1))
        }
    }
}

fn residency(args: &ResidencyArgs) -> Result<ExitCode, String> {
    let report = verified_report(&args.verification)?;
    if !report.is_ok() {
        return Err(format!(
            "the audit trail did not verify ({} problem(s)); run `asc audit verify` first",
            report.problems.len()
        ));
    }
    let events = events_in(&report, args.from.unwrap_or(0), args.to.unwrap_or(u64::MAX));
    let out = facts::residency(&events, &asc_core::builtin_regions()?);
    match args.format {
        Format::Json => println!("{}", String::from_utf8_lossy(&pretty(&out)?).trim_end()),
        Format::Table => {
            println!("REGION  HOST  ATTEMPTS  ALLOWED");
            for region in out["regions"].as_array().into_iter().flatten() {
                for h in region["hosts_contacted"].as_array().into_iter().flatten() {
                    println!(
                        "{}  {}  {}  {}",
                        region["region"].as_str().unwrap_or(""),
                        h["host"].as_str().unwrap_or(""),
                        h["attempts"],
                        if h["allowed"] == true { "yes" } else { "NO" }
                    );
                }
            }
        }
    }
    Ok(if out["ok"] == true {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
