//! `asc audit`: signing keys for the audit trail, and the verifier for compliance teams.

mod files;
mod table;
mod time;

use std::path::PathBuf;
use std::process::ExitCode;

use asc_core::audit::keys::{key_pair, Validity};
use asc_core::audit::query::RecordFilter;
use asc_core::audit::verify::{verify, Report, VerifyOptions};
use asc_core::audit::{PublicKeyring, ShipPolicy};
use clap::{Args, Subcommand, ValueEnum};
pub use time::{format_ms, now_ms, parse_time};

pub const TIME_HELP: &str = "TIME is milliseconds since the epoch (1793484000000), a date \
    (2026-11-01, midnight UTC) or RFC 3339 with Z or an offset (2026-11-01T00:00:00Z, \
    2026-11-01T00:00:00+02:00).";

#[derive(Subcommand)]
pub enum Command {
    Keygen(KeygenArgs),
    Verify(VerifyArgs),
    Query(QueryArgs),
}

/// Makes an Ed25519 digest-signing key.
///
/// Prints AUDIT_SIGNING_KEY=<json> (secret: add it to the JSON list in the control plane
/// Worker's secret AUDIT_SIGNING_KEYS, `wrangler secret put AUDIT_SIGNING_KEYS -c
/// wrangler.control.toml --env <region>`) and AUDIT_PUBLIC_KEY=<json> (add it to the
/// auditors' key file, a JSON list).
#[derive(Args)]
#[command(after_help = TIME_HELP)]
pub struct KeygenArgs {
    /// The key's id, named in every digest it signs.
    #[arg(long, value_name = "ID")]
    key_id: String,
    /// When the key becomes valid [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    not_before: Option<u64>,
    /// When it stops being valid [default: never].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    not_after: Option<u64>,
}

/// What verification needs; shared by `verify` and `query`.
#[derive(Args)]
pub struct Verification {
    /// A local copy of the audit bucket: the folder that holds audit/ (e.g. from `rclone copy`
    /// or `aws s3 sync`; the verifier reads files, never the bucket itself).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The auditors' public keys (a JSON list of AUDIT_PUBLIC_KEY values).
    #[arg(long, value_name = "FILE")]
    pub keys: PathBuf,
    /// Verify as of this time [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<u64>,
    /// The deployment's AUDIT_HEARTBEAT_MS.
    #[arg(long, value_name = "N", default_value_t = ShipPolicy::default().heartbeat_ms)]
    heartbeat_ms: u64,
    /// Allowance for alarm delay, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = VerifyOptions::new(0, 0).grace_ms)]
    grace_ms: u64,
}

/// Checks every batch, digest, signature and chain under DIR/audit/.
///
/// Prints every problem with its object, line and sequence, expected and found.
/// Exit 0: all verified; 1: problems found.
#[derive(Args)]
#[command(after_help = TIME_HELP)]
pub struct VerifyArgs {
    #[command(flatten)]
    verification: Verification,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Verifies, then lists the matching records.
///
/// Refuses if verification found problems, unless --allow-unverified, which marks every record
/// verified or not. Table cells too long to read are cut with "…"; --format json has them whole.
#[derive(Args)]
#[command(after_help = TIME_HELP)]
pub struct QueryArgs {
    #[command(flatten)]
    verification: Verification,
    /// Only this tenant's records.
    #[arg(long, value_name = "T")]
    tenant: Option<String>,
    /// Only this key's records.
    #[arg(long, value_name = "K")]
    key_id: Option<String>,
    /// Only records whose requested or served model is M.
    #[arg(long, value_name = "M")]
    model: Option<String>,
    /// Only records of operation OP (chat.completions, admin.tenant.put); a trailing * matches
    /// a prefix (admin.* is every admin action).
    #[arg(long, value_name = "OP")]
    operation: Option<String>,
    /// Only records at or after TIME (inclusive).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    from: Option<u64>,
    /// Only records before TIME (exclusive).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to: Option<u64>,
    /// How to print the records.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Query even if verification found problems, marking each record verified or not.
    #[arg(long)]
    allow_unverified: bool,
}

pub fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Keygen(args) => keygen(&args),
        Command::Verify(args) => verify_cmd(&args),
        Command::Query(args) => query(&args),
    }
}

fn keygen(args: &KeygenArgs) -> Result<ExitCode, String> {
    let validity = Validity {
        not_before_ms: match args.not_before {
            Some(t) => t,
            None => now_ms()?,
        },
        not_after_ms: args.not_after,
    };
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let (secret, public) = key_pair(&args.key_id, &seed, validity).map_err(|e| e.0)?;
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
pub fn verified_report(args: &Verification) -> Result<Report, String> {
    let keys_path = args.keys.display();
    let key_bytes = std::fs::read(&args.keys).map_err(|e| format!("{keys_path}: {e}"))?;
    let keys = PublicKeyring::from_json(&key_bytes).map_err(|e| format!("{keys_path}: {e}"))?;
    if keys.is_empty() {
        return Err(format!("{keys_path}: no keys"));
    }
    let objects = files::read_objects(&args.dir)?;
    let now_ms = match args.now {
        Some(t) => t,
        None => now_ms()?,
    };
    let mut options = VerifyOptions::new(now_ms, args.heartbeat_ms);
    options.grace_ms = args.grace_ms;
    Ok(verify(&objects, &keys, &options))
}

fn verify_cmd(args: &VerifyArgs) -> Result<ExitCode, String> {
    let report = verified_report(&args.verification)?;
    let verified = report.verified().count();
    let unverified = report.records.len() - verified;
    if args.json {
        let out = serde_json::json!({
            "ok": report.is_ok(),
            "streams": report.streams,
            "problems": report.problems,
            "lease_gaps": report.lease_gaps,
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
        for g in &report.lease_gaps {
            println!(
                "lease {} (tenant {}, key {}), granted {}: {} requests may be unrecorded: its isolate {} and {} reported; charged what it held",
                g.lease_id,
                g.tenant_id.as_deref().unwrap_or("-"),
                g.key_id.as_deref().unwrap_or("-"),
                format_ms(g.timestamp_ms),
                g.admitted.map_or_else(
                    || format!("up to {}", g.granted.saturating_sub(g.reported)),
                    |a| a.saturating_sub(g.reported).to_string()
                ),
                g.admitted
                    .map_or_else(|| "never closed it".to_string(), |a| format!("admitted {a}")),
                g.reported
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

fn query(args: &QueryArgs) -> Result<ExitCode, String> {
    let filter = RecordFilter {
        tenant_id: args.tenant.clone(),
        key_id: args.key_id.clone(),
        model: args.model.clone(),
        from_ms: args.from,
        to_ms: args.to,
        operation: args.operation.clone(),
    };
    let report = verified_report(&args.verification)?;
    let allow_unverified = args.allow_unverified;
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
    match args.format {
        Format::Json => {
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
        Format::Table => print!("{}", table::render(&selected, allow_unverified)),
    }
    Ok(ExitCode::SUCCESS)
}
