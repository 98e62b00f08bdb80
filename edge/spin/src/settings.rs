//! The deployment's settings, from Spin variables (declared in `spin.toml`, given per region by
//! the runtime config's variables provider). Spin variable names are lowercase, so a secret the
//! core names `OPENAI_API_KEY` is the variable `openai_api_key`.

use std::collections::HashMap;

use asc_core::audit::SigningKeyring;
use asc_core::deployment::{
    Deployment, AUDIT_SHARDS_VAR, BATCH_MAX_AGE_VAR, BATCH_MAX_RECORDS_VAR, FORWARD_VAR,
    HEARTBEAT_VAR, OTLP_BATCH_VAR, OTLP_ENDPOINT_VAR, OTLP_FLUSH_VAR, REGION_VAR,
};
use asc_core::host::HostError;
use asc_core::secret::Secret;
use url::Url;

use crate::platform::Platform;
use crate::s3::{Bucket, Credentials};

/// The key-value store holding tenant configs and key records (a label in `spin.toml`).
pub const CONFIG_STORE: &str = "asc_config";
/// The SQLite database holding ledgers and the audit sequencer.
pub const STATE_DB: &str = "asc_state";
/// The variables the component reads besides secrets, in `spin.toml` order.
/// The admin plane's trusted issuers (JSON, as the Worker's `ADMIN_ISSUERS`); empty: none.
pub const ADMIN_ISSUERS: &str = "admin_issuers";

pub const SETTINGS: &[&str] = &[
    REGION,
    ADMIN_ISSUERS,
    CREDENTIALS,
    SIGNING_KEYS,
    BUCKET_ENDPOINT,
    BUCKET_NAME,
    BUCKET_REGION,
    BUCKET_ACCESS_KEY_ID,
    BUCKET_SECRET_ACCESS_KEY,
    FLUSH_TOKEN,
    "audit_shards",
    "audit_forward_ms",
    "audit_batch_max_records",
    "audit_batch_max_age_ms",
    "audit_heartbeat_ms",
    "otlp_endpoint",
    "otlp_flush_ms",
    "otlp_max_batch",
    OTLP_HEADERS,
    FAULT_AFTER_DELAY,
    FAULT_PUBLISH_REFUSED,
];

/// Extra headers for the OpenTelemetry collector (secret; `name=value,...`).
pub const OTLP_HEADERS: &str = "otlp_headers";

/// The region this deployment serves (a file in `regions/`).
pub const REGION: &str = "asc_region";
/// Comma-separated secret names tenant configs may use as `credential` (`OPENAI_API_KEY,...`).
/// Spin's variables interface cannot be read synchronously, and the core asks for secrets
/// synchronously, so the host reads the named ones when a request starts.
pub const CREDENTIALS: &str = "asc_credentials";
pub const KEY_HASH_SECRET: &str = "KEY_HASH_SECRET";
pub const SIGNING_KEYS: &str = "audit_signing_keys";
pub const FLUSH_TOKEN: &str = "audit_flush_token";
pub const BUCKET_ENDPOINT: &str = "audit_bucket_endpoint";
pub const BUCKET_NAME: &str = "audit_bucket_name";
pub const BUCKET_REGION: &str = "audit_bucket_region";
pub const BUCKET_ACCESS_KEY_ID: &str = "audit_bucket_access_key_id";
pub const BUCKET_SECRET_ACCESS_KEY: &str = "audit_bucket_secret_access_key";
/// Fault injection for the end-to-end tests, honoured only by the loopback development region
/// (the Worker's `ASC_FAULT_AFTER_DELAY_MS`): holds back the work after each response, so a test
/// can kill `spin up` between a response and its commit.
pub const FAULT_AFTER_DELAY: &str = "asc_fault_after_delay_ms";
/// Fault injection as above (the Worker's `ASC_FAULT_PUBLISH_REFUSED`): `1` makes every write of
/// the admin stores to the key-value store fail, as a store that is down.
pub const FAULT_PUBLISH_REFUSED: &str = "asc_fault_publish_refused";

/// The Spin variable holding secret `name`.
pub fn variable_name(secret: &str) -> String {
    secret.to_ascii_lowercase()
}

/// A variable's value; an undefined or empty variable is `None`.
pub async fn optional<P: Platform>(p: &P, name: &str) -> Result<Option<String>, HostError> {
    Ok(p.variable(name).await?.filter(|v| !v.trim().is_empty()))
}

async fn required<P: Platform>(p: &P, name: &str) -> Result<String, String> {
    optional(p, name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("variable {name} is not set"))
}

/// `KEY_HASH_SECRET`, `OTLP_HEADERS` and every secret listed in `asc_credentials` (upstream
/// credentials, alert webhook secrets) that has a value.
pub async fn secrets<P: Platform>(p: &P) -> Result<HashMap<String, Secret>, HostError> {
    let listed = optional(p, CREDENTIALS).await?.unwrap_or_default();
    let names = [KEY_HASH_SECRET, asc_core::telemetry::HEADERS_SECRET]
        .into_iter()
        .chain(listed.split(',').map(str::trim))
        .filter(|n| !n.is_empty());
    let mut out = HashMap::new();
    for name in names {
        if let Some(value) = optional(p, &variable_name(name)).await? {
            out.insert(name.to_string(), Secret::new(value));
        }
    }
    Ok(out)
}

/// The deployment's settings, read strictly (see `asc_core::deployment`): the Worker's vars,
/// named in lowercase (`ASC_REGION` is `asc_region`). A set but invalid value fails closed.
pub async fn deployment<P: Platform>(p: &P) -> Result<Deployment, String> {
    let mut vars = HashMap::new();
    for name in [
        REGION_VAR,
        AUDIT_SHARDS_VAR,
        FORWARD_VAR,
        BATCH_MAX_RECORDS_VAR,
        BATCH_MAX_AGE_VAR,
        HEARTBEAT_VAR,
        OTLP_ENDPOINT_VAR,
        OTLP_FLUSH_VAR,
        OTLP_BATCH_VAR,
    ] {
        let var = variable_name(name);
        if let Some(value) = optional(p, &var).await.map_err(|e| e.to_string())? {
            vars.insert(name, value);
        }
    }
    Deployment::from_vars(|name| vars.get(name).cloned()).map_err(|errs| {
        errs.iter()
            .map(|e| {
                // Name the Spin variable the operator sets.
                let var = e.split(['=', ' ', ':']).next().unwrap_or("");
                e.replacen(var, &variable_name(var), 1)
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}

pub async fn keyring<P: Platform>(p: &P) -> Result<SigningKeyring, String> {
    let text = required(p, SIGNING_KEYS).await?;
    SigningKeyring::from_secret(&Secret::new(text)).map_err(|e| e.to_string())
}

pub async fn bucket<P: Platform>(p: &P) -> Result<Bucket, String> {
    let endpoint = required(p, BUCKET_ENDPOINT).await?;
    let endpoint = Url::parse(&endpoint).map_err(|e| format!("{BUCKET_ENDPOINT}: {e}"))?;
    Ok(Bucket {
        endpoint,
        name: required(p, BUCKET_NAME).await?,
        region: optional(p, BUCKET_REGION)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| "us-east-1".into()),
        credentials: Credentials {
            access_key_id: required(p, BUCKET_ACCESS_KEY_ID).await?,
            secret_access_key: Secret::new(required(p, BUCKET_SECRET_ACCESS_KEY).await?),
        },
    })
}
