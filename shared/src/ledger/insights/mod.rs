//! What a ledger learns from the records it keeps, for the people who run the tenant: usage
//! rollups (spend, tokens, errors, latency by hour and day, per key, model, provider and tags:
//! the analytics API and the dashboard read them) and the tenant's alerts (raised once, handed to
//! isolates for delivery, retried with backoff, up to 8 attempts, then marked failed).
//!
//! Both live in the ledger because it already sees every final record of its tenant (or shard)
//! exactly once, in order, durably: no second store, no log scraping, and an alert's "once" is a
//! fact of one object's state.

mod alert_log;
mod rollups;

pub use alert_log::*;
pub use rollups::*;
