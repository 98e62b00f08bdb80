//! `asc key new`: mints an API key and its KV record.

use std::process::ExitCode;

use asc_core::apikey::{new_key, record_name, ApiKey, KeyRecord, KeyStatus, Scope};
use asc_core::ids::{is_valid_id, KeyId, TenantId};
use asc_core::secret::Secret;
use clap::Args;

/// Mints an API key.
///
/// Reads the deployment's hashing secret from $KEY_HASH_SECRET. Prints shell-friendly lines:
/// ASC_API_KEY=..., KEY_ID=..., KV_NAME=key:<hash>, and writes the KV record (JSON) to the file
/// named by --record-out (or prints it as KV_VALUE=...).
#[derive(Args)]
pub struct NewArgs {
    /// The tenant the key belongs to.
    #[arg(long, value_name = "ID", value_parser = tenant_id)]
    tenant: String,
    /// What the key may do, comma-separated: chat, models, usage.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "chat,models,usage",
        value_parser = scope
    )]
    scopes: Vec<Scope>,
    /// Budget tags, comma-separated (e.g. bu:research).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    tags: Vec<String>,
    /// A note for people, stored in the record.
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,
    /// The key's id [default: k_ and the first 12 hex digits of its hash].
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,
    /// Write the KV record (JSON) to FILE instead of printing a KV_VALUE= line.
    #[arg(long, value_name = "FILE")]
    record_out: Option<String>,
}

fn tenant_id(s: &str) -> Result<String, String> {
    if is_valid_id(s) {
        Ok(s.to_string())
    } else {
        Err("must be 1-64 of [a-z0-9_-]".into())
    }
}

fn scope(s: &str) -> Result<Scope, String> {
    match s.trim() {
        "chat" => Ok(Scope::Chat),
        "models" => Ok(Scope::Models),
        "usage" => Ok(Scope::Usage),
        other => Err(format!("unknown scope {other:?} (chat, models, usage)")),
    }
}

pub fn key_new(args: NewArgs) -> Result<ExitCode, String> {
    let secret = std::env::var("KEY_HASH_SECRET")
        .map_err(|_| "set KEY_HASH_SECRET to the deployment's key-hashing secret".to_string())?;
    if secret.len() < 32 {
        return Err("KEY_HASH_SECRET must be at least 32 characters".into());
    }
    let mut random = [0u8; 32];
    getrandom::getrandom(&mut random).map_err(|e| format!("no randomness: {e}"))?;
    let key = new_key(&random);
    let hash = ApiKey::parse(&key)
        .map_err(|e| e.message)?
        .hash(&Secret::new(secret));
    let key_id = args.key_id.unwrap_or_else(|| format!("k_{}", &hash[..12]));
    let record = KeyRecord {
        schema_version: 1,
        key_id: KeyId(key_id.clone()),
        tenant_id: TenantId(args.tenant),
        status: KeyStatus::Active,
        scopes: args.scopes,
        tags: args
            .tags
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        key_hash: hash.clone(),
        label: args.label,
        created_ms: None,
        expires_ms: None,
    };
    let json = serde_json::to_string(&record).map_err(|e| e.to_string())?;
    println!("ASC_API_KEY={key}");
    println!("KEY_ID={key_id}");
    println!("KV_NAME={}", record_name(&hash));
    match args.record_out {
        Some(path) => std::fs::write(&path, json).map_err(|e| format!("{path}: {e}"))?,
        None => println!("KV_VALUE={json}"),
    }
    Ok(ExitCode::SUCCESS)
}
