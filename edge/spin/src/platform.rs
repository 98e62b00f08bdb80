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

/// How many times a statement refused with SQLite's "database is locked" is re-run.
pub const BUSY_RETRIES: u32 = 40;

/// Whether a store error is SQLite refusing for a lock another connection holds.
pub fn is_busy(e: &HostError) -> bool {
    let text = e.to_string();
    text.contains("database is locked") || text.contains("database is busy")
}

/// Runs `statement` again while SQLite answers "database is locked", waiting a little longer each
/// time (`sleep(ms)`). The busy timeout does not cover every case: with two `spin up` processes
/// on one database, a few statements were refused at once (WAL checkpoints and connections
/// closing between requests), and a refused statement changed nothing, so running it again is
/// safe (for `COMMIT`, it is SQLite's documented remedy).
pub async fn retry_busy<T, F, Fut, S, SFut>(mut statement: F, mut sleep: S) -> Result<T, HostError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, HostError>>,
    S: FnMut(u64) -> SFut,
    SFut: std::future::Future<Output = ()>,
{
    let mut tries = 0;
    loop {
        match statement().await {
            Err(e) if is_busy(&e) && tries < BUSY_RETRIES => {
                tries += 1;
                sleep(u64::from(tries.min(10)) * 5).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    fn locked() -> HostError {
        HostError::Store("asc_state: Error::Io(\"database is locked\")".into())
    }

    #[test]
    fn a_locked_statement_is_run_again_and_other_errors_are_not() {
        let calls = Cell::new(0);
        let slept = RefCell::new(Vec::new());
        let got = futures::executor::block_on(retry_busy(
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        Err(locked())
                    } else {
                        Ok(n)
                    }
                }
            },
            |ms| {
                slept.borrow_mut().push(ms);
                async {}
            },
        ));
        assert_eq!(got.expect("third run"), 3);
        assert_eq!(*slept.borrow(), vec![5, 10]);

        calls.set(0);
        let other = futures::executor::block_on(retry_busy(
            || {
                calls.set(calls.get() + 1);
                async { Err::<(), _>(HostError::Store("no such table".into())) }
            },
            |_| async {},
        ));
        assert!(other.is_err());
        assert_eq!(calls.get(), 1, "not a lock: not run again");

        calls.set(0);
        let stuck = futures::executor::block_on(retry_busy(
            || {
                calls.set(calls.get() + 1);
                async { Err::<(), _>(locked()) }
            },
            |_| async {},
        ));
        assert!(is_busy(&stuck.expect_err("gives up")));
        assert_eq!(calls.get(), BUSY_RETRIES as usize + 1);
    }
}
