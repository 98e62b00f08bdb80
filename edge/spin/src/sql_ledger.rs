//! Tenant ledgers in Spin SQLite: one row per ledger, its JSON and an optimistic version. The
//! core's `ledger::stored::apply_stored` runs the compare-and-swap loop; this is its table.
//!
//! Why compare-and-swap on one row, not counters in columns: the ledger's decision (admit only
//! if every hard budget and rate window has room, then hold the amount against all of them) reads
//! and writes many counters at once; one conditional `UPDATE ... WHERE id = ? AND version = ?`
//! makes that whole step atomic without transactions spanning several statements (Spin's SQLite
//! interface runs one statement per call) and keeps the arithmetic in the core, identical to the
//! Worker's Durable Object.

use asc_core::host::HostError;
use asc_core::ledger::stored::{LedgerStore, StoredLedger};
use asc_core::ledger::LedgerId;

use crate::platform::{Platform, SqlValue};

pub const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS asc_ledger (
        id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        state TEXT NOT NULL
    )"];

pub struct SqlLedgers<'p, P>(pub &'p P);

impl<P: Platform> LedgerStore for SqlLedgers<'_, P> {
    async fn load(&self, id: &LedgerId) -> Result<Option<StoredLedger>, HostError> {
        let rows = self
            .0
            .sql(
                "SELECT version, state FROM asc_ledger WHERE id = ?1",
                &[id.as_str().into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        match (
            row.first().and_then(SqlValue::as_u64),
            row.get(1).and_then(SqlValue::as_str),
        ) {
            (Some(version), Some(json)) => Ok(Some(StoredLedger {
                version,
                json: json.to_string(),
            })),
            _ => Err(HostError::Store(format!(
                "ledger {}: malformed row",
                id.as_str()
            ))),
        }
    }

    async fn swap(&self, id: &LedgerId, expected: u64, json: &str) -> Result<bool, HostError> {
        let rows = if expected == 0 {
            self.0
                .sql(
                    "INSERT INTO asc_ledger (id, version, state) VALUES (?1, 1, ?2)
                     ON CONFLICT (id) DO NOTHING RETURNING version",
                    &[id.as_str().into(), json.into()],
                )
                .await?
        } else {
            self.0
                .sql(
                    "UPDATE asc_ledger SET state = ?2, version = version + 1
                     WHERE id = ?1 AND version = ?3 RETURNING version",
                    &[id.as_str().into(), json.into(), expected.into()],
                )
                .await?
        };
        Ok(!rows.is_empty())
    }

    /// Takes SQLite's write lock for the attempt (`BEGIN IMMEDIATE` waits its turn under the
    /// connection's busy timeout), so the swap cannot lose. A backend without interactive
    /// transactions refuses it and the compare-and-swap alone keeps the ledger right.
    async fn lock(&self) -> bool {
        self.0.sql("BEGIN IMMEDIATE", &[]).await.is_ok()
    }

    async fn unlock(&self) {
        // Only a failed swap can leave nothing to commit; either way the lock goes.
        if self.0.sql("COMMIT", &[]).await.is_err() {
            let _ = self.0.sql("ROLLBACK", &[]).await;
        }
    }

    /// Instances race for real here: wait a random 1..=2^lost ms (at most 64) before re-running,
    /// so the losers spread out instead of colliding again.
    async fn contended(&self, lost: usize) {
        let cap = 1u64 << lost.min(6);
        let mut r = [0u8; 8];
        self.0.fill_random(&mut r);
        self.0.sleep(1 + u64::from_le_bytes(r) % cap).await;
    }
}
