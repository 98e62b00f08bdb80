//! Config documents, validated into typed config. Each problem carries its path.

pub mod alerts;
pub mod budgets;
pub mod cache;
pub mod routes;
mod tenant;

pub use crate::validate::{ConfigError, ConfigErrors};
pub use alerts::{AlertPolicy, ErrorRateRule, TelemetryPolicy, Webhook};
pub use budgets::{AppliesTo, Budget, BUDGET_FIELDS};
pub use cache::{CachePolicy, CachedOperation, CACHE_FIELDS};
pub use tenant::{
    Admission, Limits, ModelTarget, TenantConfig, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIMEOUT_MS,
    LIMIT_FIELDS, MODEL_FIELDS, SCHEMA_VERSION, TENANT_FIELDS,
};

/// The KV name of a tenant's config document.
pub fn tenant_record_name(tenant: &crate::ids::TenantId) -> String {
    format!("tenant:{tenant}")
}
pub use crate::providers::Provider;
