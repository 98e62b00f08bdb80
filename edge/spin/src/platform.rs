//! What the Spin host needs from the runtime, as one small trait. The component implements it
//! with spin-sdk (`component.rs`); the native tests implement it with rusqlite, maps and a
//! scripted upstream, so everything above this seam runs in `cargo test`.

use asc_core::host::{ByteSource, HostError, UpstreamResponse};

/// A SQLite value, as Spin's `spin:sqlite` interface passes it.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Text(String),
}

impl SqlValue {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::Integer(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        self.as_i64().and_then(|i| u64::try_from(i).ok())
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}

impl From<u64> for SqlValue {
    /// SQLite integers are signed: values above `i64::MAX` (never a time or a count) saturate.
    fn from(n: u64) -> Self {
        SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// An outbound HTTP request, already egress-checked (upstream) or built for the audit bucket.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

#[allow(async_fn_in_trait)]
pub trait Platform {
    type Body: ByteSource;
    /// Wall-clock milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    fn fill_random(&self, buf: &mut [u8]);
    /// A Spin variable; `None` if the application does not define it.
    async fn variable(&self, name: &str) -> Result<Option<String>, HostError>;
    /// Reads the config key-value store.
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// Writes the config key-value store (the admin plane publishing a config or key record).
    async fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), HostError>;
    /// Runs one SQL statement; returns its rows (for `SELECT` and `RETURNING`).
    async fn sql(
        &self,
        statement: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, HostError>;
    /// Sends a request; returns once the response headers have arrived, or
    /// `HostError::Timeout` after `timeout_ms`.
    async fn send(&self, req: Outbound) -> Result<UpstreamResponse<Self::Body>, HostError>;
    /// Waits `ms` milliseconds (a retry's backoff).
    async fn sleep(&self, ms: u64);
}
