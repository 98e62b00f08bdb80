#![allow(clippy::print_stdout)] // A command-line tool: stdout is its interface.

//! `asc`: operator commands that need the core's rules but no gateway.
//!
//!   asc key new --tenant ID [--scopes chat,models,usage] [--tags bu:x,..] [--label TEXT] [--key-id ID]
//!       Mints an API key. Reads the deployment's hashing secret from $KEY_HASH_SECRET.
//!       Prints shell-friendly lines: ASC_API_KEY=..., KV_NAME=key:<hash>, and writes the KV
//!       record (JSON) to the file named by --record-out (or prints it as KV_VALUE=...).
//!   asc tenant check FILE [--region ID]
//!       Validates a tenant config; with --region, also checks every endpoint against that
//!       region's egress allowlist. Prints every problem with its path; exits 1 if any.

use std::process::ExitCode;

use asc_core::apikey::{new_key, record_name, ApiKey, KeyRecord, KeyStatus, Scope};
use asc_core::config::TenantConfig;
use asc_core::ids::{is_valid_id, KeyId, TenantId};
use asc_core::secret::Secret;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["key", "new", rest @ ..] => key_new(rest),
        ["tenant", "check", file, rest @ ..] => tenant_check(file, rest),
        _ => Err(usage()),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("asc: {msg}");
            ExitCode::from(2)
        }
    }
}

fn usage() -> String {
    "usage: asc key new --tenant ID [--scopes chat,models,usage] [--tags bu:x,..] [--label TEXT] [--key-id ID] [--record-out FILE]\n       asc tenant check FILE [--region ID]".into()
}

fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1])
}

fn key_new(args: &[&str]) -> Result<ExitCode, String> {
    let tenant = flag(args, "--tenant").ok_or("--tenant is required")?;
    if !is_valid_id(tenant) {
        return Err(format!("--tenant {tenant:?} must be 1-64 of [a-z0-9_-]"));
    }
    let secret = std::env::var("KEY_HASH_SECRET")
        .map_err(|_| "set KEY_HASH_SECRET to the deployment's key-hashing secret".to_string())?;
    if secret.len() < 32 {
        return Err("KEY_HASH_SECRET must be at least 32 characters".into());
    }
    let scopes = flag(args, "--scopes")
        .unwrap_or("chat,models,usage")
        .split(',')
        .map(|s| match s.trim() {
            "chat" => Ok(Scope::Chat),
            "models" => Ok(Scope::Models),
            "usage" => Ok(Scope::Usage),
            other => Err(format!("unknown scope {other:?} (chat, models, usage)")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut random = [0u8; 32];
    getrandom::getrandom(&mut random).map_err(|e| format!("no randomness: {e}"))?;
    let key = new_key(&random);
    let hash = ApiKey::parse(&key)
        .map_err(|e| e.message)?
        .hash(&Secret::new(secret));
    let key_id = flag(args, "--key-id")
        .map(str::to_string)
        .unwrap_or_else(|| format!("k_{}", &hash[..12]));
    let record = KeyRecord {
        schema_version: 1,
        key_id: KeyId(key_id.clone()),
        tenant_id: TenantId(tenant.into()),
        status: KeyStatus::Active,
        scopes,
        tags: flag(args, "--tags")
            .map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        key_hash: hash.clone(),
        label: flag(args, "--label").map(str::to_string),
        created_ms: None,
    };
    let json = serde_json::to_string(&record).map_err(|e| e.to_string())?;
    println!("ASC_API_KEY={key}");
    println!("KEY_ID={key_id}");
    println!("KV_NAME={}", record_name(&hash));
    match flag(args, "--record-out") {
        Some(path) => std::fs::write(path, json).map_err(|e| format!("{path}: {e}"))?,
        None => println!("KV_VALUE={json}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn tenant_check(file: &str, args: &[&str]) -> Result<ExitCode, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
    let config = match TenantConfig::parse(&bytes) {
        Ok(c) => c,
        Err(errs) => {
            for e in &errs.0 {
                println!("{file}: {e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let mut problems = 0;
    if let Some(region_id) = flag(args, "--region") {
        let regions = asc_core::builtin_regions()?;
        let region = regions
            .get(region_id)
            .ok_or_else(|| format!("no region {region_id:?}"))?;
        if config.residency != region.id {
            println!(
                "{file}: residency: is {:?}, not {region_id:?}",
                config.residency
            );
            problems += 1;
        }
        for (name, target) in &config.models {
            if let Err(e) = region.check_egress(&target.url_for("chat/completions")) {
                println!("{file}: models[{name:?}].endpoint: {}", e.message);
                problems += 1;
            }
        }
    }
    if problems > 0 {
        return Ok(ExitCode::from(1));
    }
    println!(
        "{file}: ok (tenant {}, {} model(s))",
        config.tenant_id,
        config.models.len()
    );
    Ok(ExitCode::SUCCESS)
}
