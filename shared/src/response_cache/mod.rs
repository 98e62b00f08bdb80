//! The response cache, as pure decisions: whether a request may use it, the key of its entry,
//! what an entry holds, and how a stored completion is replayed (whole or as a stream). The
//! pipeline reads and writes entries through [`crate::host::Host::cache_get`] and `cache_put`,
//! which keep them in the deployment's own region.
//!
//! A key is the SHA-256 of the tenant, the region, the target that would serve and the request
//! as it leaves the guardrails (so a redacted prompt and its original share an entry only when
//! the redaction makes them equal). Fields that do not change the answer (`stream`, `model`,
//! which the target stands for, `user`, `metadata`, `store`) are left out, so a streamed and a
//! whole request share an entry. The storage name starts with the tenant id: no key of one
//! tenant can name another's entry, and a tenant's entries can be listed or purged by prefix.

mod capture;
mod entry;

pub use capture::StreamCapture;
pub use entry::{replay_chunks, Entry, EntryKind, ENTRY_VERSION};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::audit::canonical::canonical_value;
use crate::config::{CachePolicy, CachedOperation, ModelTarget};
use crate::ids::TenantId;

/// Request fields that do not change what an upstream answers.
const IGNORED_FIELDS: &[&str] = &[
    "stream",
    "stream_options",
    "model",
    "user",
    "metadata",
    "store",
];

/// An entry's name in the region's cache store: `<tenant>/<sha256 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    tenant: String,
    digest: String,
}

impl CacheKey {
    /// The key of `request` (after guardrails) sent to `target` for `tenant` in `region`.
    pub fn derive(
        tenant: &TenantId,
        region: &str,
        target: &ModelTarget,
        kind: EntryKind,
        request: &Map<String, Value>,
    ) -> Option<CacheKey> {
        Self::derive_with(tenant, region, target, kind, request, |bytes| {
            Sha256::digest(bytes).into()
        })
    }

    /// As [`CacheKey::derive`], hashing with `sha256` (the host's digest: the canonical request
    /// is as long as the prompt).
    pub fn derive_with(
        tenant: &TenantId,
        region: &str,
        target: &ModelTarget,
        kind: EntryKind,
        request: &Map<String, Value>,
        sha256: impl FnOnce(&[u8]) -> [u8; 32],
    ) -> Option<CacheKey> {
        let mut normalized = request.clone();
        for field in IGNORED_FIELDS {
            normalized.remove(*field);
        }
        let canonical = canonical_value(&Value::Object(normalized)).ok()?;
        // Length-prefixed parts: no two different tuples hash the same bytes.
        let parts = [
            "asc-response-cache-v1".as_bytes(),
            tenant.as_str().as_bytes(),
            region.as_bytes(),
            target.provider.as_str().as_bytes(),
            target.endpoint.as_str().as_bytes(),
            target.upstream_model.as_bytes(),
            kind.as_str().as_bytes(),
            &canonical,
        ];
        let mut hashed = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
        for part in parts {
            hashed.extend_from_slice(&(part.len() as u64).to_be_bytes());
            hashed.extend_from_slice(part);
        }
        Some(CacheKey {
            tenant: tenant.as_str().to_string(),
            digest: crate::hexstr::encode(&sha256(&hashed)),
        })
    }

    /// The SHA-256 (hex) that names the entry; what audit records carry.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// `<tenant>/<digest>`: the object or row name in the region's store.
    pub fn storage_name(&self) -> String {
        format!("{}/{}", self.tenant, self.digest)
    }
}

/// What a request may do with the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Use {
    /// Look for a stored answer.
    pub read: bool,
    /// Store the answer the upstream gives.
    pub write: bool,
}

/// Why a covered request skips the cache, for the audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// `Cache-Control: no-store`: neither read nor written.
    NoStore,
    /// `Cache-Control: no-cache`: not read; the fresh answer is stored.
    NoCache,
    /// Sampling is not deterministic and the tenant did not opt such requests in.
    Nondeterministic,
}

impl Bypass {
    pub fn as_str(self) -> &'static str {
        match self {
            Bypass::NoStore => "no_store",
            Bypass::NoCache => "no_cache",
            Bypass::Nondeterministic => "nondeterministic",
        }
    }
}

/// Decides how a request uses the cache. `None`: the tenant's policy does not cover it (no
/// cache, another operation or model), and nothing about the cache is recorded.
pub fn decide(
    policy: Option<&CachePolicy>,
    operation: CachedOperation,
    model: &str,
    request: &Map<String, Value>,
    cache_control: Option<&str>,
) -> Option<Result<Use, Bypass>> {
    let policy = policy.filter(|p| p.covers(operation, model))?;
    let directives: Vec<String> = cache_control
        .unwrap_or("")
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives.iter().any(|d| d == "no-store") {
        return Some(Err(Bypass::NoStore));
    }
    if operation != CachedOperation::Embeddings
        && !policy.nondeterministic
        && !deterministic(request)
    {
        return Some(Err(Bypass::Nondeterministic));
    }
    if directives.iter().any(|d| d == "no-cache") {
        return Some(Ok(Use {
            read: false,
            write: true,
        }));
    }
    Some(Ok(Use {
        read: true,
        write: true,
    }))
}

/// Whether a completion ends asking for tool calls (its answer depends on the tools' results).
pub fn asks_for_tools(completion: &Value) -> bool {
    completion
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|choices| {
            choices
                .iter()
                .any(|c| c.get("finish_reason").and_then(Value::as_str) == Some("tool_calls"))
        })
}

/// `temperature` set to 0. Absent means the provider's default, which is above 0 for OpenAI,
/// Anthropic and Mistral alike.
fn deterministic(request: &Map<String, Value>) -> bool {
    request
        .get("temperature")
        .and_then(Value::as_f64)
        .is_some_and(|t| t == 0.0)
}

#[cfg(test)]
mod tests;
