//! Request- and token-rate limits: per-minute windows aligned to UTC minutes, counted region-wide
//! by the tenant ledger (`ledger::TenantLedger`), not per isolate.

use serde::{Deserialize, Serialize};

pub const WINDOW_MS: u64 = 60_000;

/// One limit to check: e.g. scope `tenant` at 600 per minute, or `key:k_1` at 100.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub scope: String,
    pub per_minute: u64,
}
