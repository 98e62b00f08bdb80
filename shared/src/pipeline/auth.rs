//! Who is calling: the API key, its record, its tenant's config, and the tenant's residency.

use std::rc::Rc;

use futures_util::future::join;

use super::{Caller, Gateway, TenantEntry};
use crate::apikey::{presented_key, record_name, ApiKey, KeyHasher, KeyRecord};
use crate::config::{tenant_record_name, TenantConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::guard::{CompiledGuard, GuardSources};
use crate::host::{ByteSource, Host};
use crate::ids::TenantId;
use crate::pipeline::http::Inbound;

/// The host's text goes to the operator's log only: it can name bindings and internal state.
fn store_error(what: &str, e: crate::host::HostError) -> GatewayError {
    GatewayError::internal(
        ErrorKind::StoreUnavailable,
        format!("The {what} store is unavailable; retry shortly."),
        &e,
    )
}

/// Why a request was not authenticated, and whose key it presented when that is known: a key
/// that exists but may not be used (revoked, expired) names its tenant, whose trail records the
/// attempt.
pub(super) struct Unauthenticated {
    pub err: GatewayError,
    pub key: Option<Rc<KeyRecord>>,
    /// The prefix of a well-formed key's lookup hash (`refusals::hash_prefix`), for the record
    /// of a refusal before a tenant was known.
    pub key_hash_prefix: Option<String>,
}

impl From<GatewayError> for Unauthenticated {
    fn from(err: GatewayError) -> Self {
        Unauthenticated {
            err,
            key: None,
            key_hash_prefix: None,
        }
    }
}

impl Gateway {
    /// `prices`: the route prices its request, so a stale price table is read alongside the key
    /// record rather than after the config, one KV read fewer in series on a new isolate (and
    /// on the request that finds the table expired).
    pub(super) async fn authenticate<H: Host, B: ByteSource>(
        &self,
        host: &H,
        req: &Inbound<B>,
        prices: bool,
    ) -> Result<Caller, Unauthenticated> {
        let raw = presented_key(req.header("authorization"), req.header("x-api-key"))?;
        let key = ApiKey::parse(raw)?;
        let secret = host.secret(&self.settings.key_hash_secret).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Internal,
                "The deployment has no key-hashing secret configured.",
            )
        })?;
        let hash = {
            let mut hasher = self.key_hasher.borrow_mut();
            match hasher.as_ref() {
                Some(keyed) if keyed.is_for(&secret) => keyed.hash(&key),
                _ => hasher.insert(KeyHasher::new(&secret)).hash(&key),
            }
        };
        let stale_prices = prices
            && self
                .prices
                .borrow()
                .get(super::admission::PRICE_TABLE_RECORD, host.now())
                .is_none();
        let with_hash = |err| Unauthenticated {
            err,
            key: None,
            key_hash_prefix: Some(super::refusals::hash_prefix(&hash)),
        };
        let found = if stale_prices {
            // The table's own errors surface where it is used; here it only warms the cache.
            join(self.key_record(host, &hash), self.prices(host))
                .await
                .0
        } else {
            self.key_record(host, &hash).await
        };
        let record = found.map_err(with_hash)?;
        if let Err(err) = record.admit(&hash, host.now().millis()) {
            // A hash that does not match its own record names nobody.
            let known = err.kind != ErrorKind::InvalidApiKey;
            return Err(Unauthenticated {
                key: known.then_some(record),
                ..with_hash(err)
            });
        }
        let tenant = self
            .tenant(host, &record.tenant_id)
            .await
            .map_err(with_hash)?;
        if tenant.residency != self.region.id {
            let message = match self.regions.get(&tenant.residency) {
                Some(home) => format!(
                    "Tenant {} is pinned to region {}; send its requests to https://{}.",
                    tenant.tenant_id,
                    home.id,
                    home.hostnames.first().map(String::as_str).unwrap_or("its regional hostname"),
                ),
                None => format!(
                    "Tenant {} is pinned to region {:?}, which this deployment ({}) does not serve.",
                    tenant.tenant_id, tenant.residency, self.region.id
                ),
            };
            // A live key of a tenant kept elsewhere: counted here by its id, not in its trail.
            return Err(Unauthenticated {
                key: Some(record),
                ..with_hash(GatewayError::new(ErrorKind::WrongRegion, message))
            });
        }
        Ok(Caller {
            key: record,
            tenant,
        })
    }

    async fn key_record<H: Host>(
        &self,
        host: &H,
        hash: &str,
    ) -> Result<Rc<KeyRecord>, GatewayError> {
        let now = host.now();
        if let Some(found) = self.keys.borrow().get(hash, now) {
            return Ok(found);
        }
        let bytes = host
            .kv_get(&record_name(hash))
            .await
            .map_err(|e| store_error("key", e))?
            .ok_or_else(|| {
                GatewayError::new(ErrorKind::InvalidApiKey, "Incorrect API key provided.")
            })?;
        let record: KeyRecord = serde_json::from_slice(&bytes).map_err(|_| {
            GatewayError::new(
                ErrorKind::Internal,
                "The stored record for this API key is unreadable; ask the platform team to reissue it.",
            )
        })?;
        let record = Rc::new(record);
        self.keys
            .borrow_mut()
            .put(hash.to_string(), record.clone(), now);
        Ok(record)
    }

    pub(crate) async fn tenant<H: Host>(
        &self,
        host: &H,
        id: &TenantId,
    ) -> Result<Rc<TenantConfig>, GatewayError> {
        let now = host.now();
        let cached = self.tenants.borrow().get(id.as_str(), now);
        let entry: TenantEntry = match cached {
            Some(entry) => entry,
            None => {
                let bytes = host
                    .kv_get(&tenant_record_name(id))
                    .await
                    .map_err(|e| store_error("tenant config", e))?
                    .ok_or_else(|| {
                        GatewayError::new(
                            ErrorKind::TenantNotConfigured,
                            format!("Tenant {id} has no configuration in this deployment."),
                        )
                    })?;
                let version = crate::hexstr::encode(&host.sha256(&bytes));
                let stale = self.tenants.borrow().get_stale(id.as_str());
                let compiled = match &stale {
                    Some(Ok(config)) if config.version == version => CompiledGuard::local(),
                    _ => compiled_guard(host, &bytes).await?,
                };
                let entry = validated(stale, &bytes, &version, &compiled)
                    .map_err(Rc::new)
                    .and_then(|config| {
                        if config.tenant_id == *id {
                            Ok(config)
                        } else {
                            let mut errs = crate::config::ConfigErrors::default();
                            errs.push("tenant_id", "does not match the record's name");
                            Err(Rc::new(errs))
                        }
                    });
                self.tenants.borrow_mut().put_weighing(
                    id.to_string(),
                    entry.clone(),
                    resident_bytes(&bytes, &entry),
                    now,
                );
                entry
            }
        };
        entry.map_err(|errs| {
            GatewayError::new(
                ErrorKind::TenantConfigInvalid,
                format!(
                    "Tenant {id}'s configuration is invalid ({} problem(s), first: {}); ask the platform team to fix it.",
                    errs.0.len(),
                    errs.0.first().map(|e| e.to_string()).unwrap_or_default()
                ),
            )
        })
    }
}

/// About what a cached tenant entry holds in memory (a config that failed validation keeps
/// only its errors).
fn resident_bytes(document: &[u8], entry: &TenantEntry) -> usize {
    match entry {
        Ok(config) => config.resident_bytes(document.len()),
        Err(errors) => errors.0.iter().map(|e| e.to_string().len()).sum(),
    }
}

/// What the config's guardrails need compiled, compiled by the host (nothing asked for when
/// it needs nothing). A host that cannot compile it now fails the request with a 503, and
/// nothing is cached.
async fn compiled_guard<H: Host>(host: &H, config: &[u8]) -> Result<CompiledGuard, GatewayError> {
    let sources = GuardSources::of_config(config);
    if sources.is_empty() {
        return Ok(CompiledGuard::local());
    }
    host.compile_guard(&sources).await.map_err(|e| {
        GatewayError::internal(
            ErrorKind::StoreUnavailable,
            "The tenant's guardrails could not be compiled now; retry shortly.",
            &e,
        )
    })
}

/// The config stored as `bytes` (whose SHA-256 is `version`), validated with what its guardrails
/// need compiled (`compiled`). Read again after its time-to-live, a config is usually the same
/// document: `stale`, the one validated before (its guardrails compiled), is kept when its
/// version matches, not parsed again.
fn validated(
    stale: Option<TenantEntry>,
    bytes: &[u8],
    version: &str,
    compiled: &CompiledGuard,
) -> Result<Rc<TenantConfig>, crate::config::ConfigErrors> {
    match stale {
        Some(Ok(config)) if config.version == version => Ok(config),
        _ => TenantConfig::parse_with(bytes, compiled).map(Rc::new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(guard: serde_json::Value) -> Vec<u8> {
        serde_json::json!({
            "schema_version": 1, "tenant_id": "acme", "residency": "local",
            "models": {"m": {"provider": "openai", "endpoint": "http://127.0.0.1:9100/v1", "credential": "K"}},
            "guardrails": guard,
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_config_read_again_unchanged_is_kept_and_a_changed_one_parsed() {
        let a = config(serde_json::json!({"detectors": {"email": {"mode": "redact"}}}));
        let b = config(serde_json::json!({"detectors": {"email": {"mode": "block"}}}));
        let version = |bytes: &[u8]| TenantConfig::version_of(bytes);
        let first = validated(None, &a, &version(&a), &CompiledGuard::local()).expect("valid");
        assert_eq!(first.version, version(&a));

        let again = validated(
            Some(Ok(first.clone())),
            &a,
            &version(&a),
            &CompiledGuard::local(),
        )
        .expect("valid");
        assert!(
            Rc::ptr_eq(&first, &again),
            "the same document keeps the validated config"
        );

        let changed = validated(
            Some(Ok(first.clone())),
            &b,
            &version(&b),
            &CompiledGuard::local(),
        )
        .expect("valid");
        assert!(!Rc::ptr_eq(&first, &changed));
        assert_eq!(changed.version, version(&b));
        assert_eq!(
            changed
                .guardrails
                .scanner()
                .rules()
                .detectors
                .get(&crate::guard::Detector::Email),
            Some(&crate::guard::Action::Block),
            "the changed document's policy applies"
        );

        // A config that was invalid is parsed again whatever its version.
        let errs = Rc::new(TenantConfig::parse(b"{}").expect_err("invalid"));
        let fixed =
            validated(Some(Err(errs)), &a, &version(&a), &CompiledGuard::local()).expect("valid");
        assert_eq!(fixed.version, version(&a));
    }
}
