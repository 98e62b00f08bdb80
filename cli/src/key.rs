//! `asc key new`: mints an API key and its KV record.

use std::process::ExitCode;

use asc_core::apikey::{new_key, record_name, ApiKey, KeyRecord, KeyStatus, Scope};
use asc_core::ids::{is_valid_id, KeyId, TenantId};
use asc_core::secret::Secret;

use crate::args::flag;

pub fn key_new(args: &[&str]) -> Result<ExitCode, String> {
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
