//! ASC on Fermyon Spin. Like the Worker, this crate only gives the core its I/O: Spin key-value
//! for tenant config and key records, Spin SQLite for ledgers (budgets, rate limits) and the
//! audit sequencer, Spin variables for the region and secrets, outbound HTTP for upstreams and
//! the S3-compatible audit bucket. Every decision lives in `asc-core`.
//!
//! Everything but `component` compiles natively: the tests implement `Platform` with rusqlite
//! and maps and run the core's request scenarios through this host.

pub mod app;
pub mod host;
pub mod ledger_queue;
pub mod pacing;
pub mod platform;
pub mod s3;
pub mod settings;
pub mod sql_cache;
pub mod sql_ledger;
pub mod sql_trail;

#[cfg(target_arch = "wasm32")]
mod component;
