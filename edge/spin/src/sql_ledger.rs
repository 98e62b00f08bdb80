//! Tenant ledgers in Spin SQLite: one row per ledger, its JSON and an optimistic version. The
//! core's `ledger::stored::apply_stored` runs the compare-and-swap loop; this is its table.
//!
//! Why compare-and-swap on one row, not counters in columns: the ledger's decision (admit only
//! if every hard budget and rate window has room, then hold the amount against all of them) reads
//! and writes many counters at once; one conditional `UPDATE ... WHERE id = ? AND version = ?`
//! makes that whole step atomic without transactions spanning several statements (Spin's SQLite
//! interface runs one statement per call) and keeps the arithmetic in the core, identical to the
//! Worker's Durable Object.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;

use asc_core::host::HostError;
use asc_core::ledger::insights::{hour_bucket_floor, merge_groups, Rollup};
use asc_core::ledger::stored::{LedgerStore, Loaded, StoredLedger};
use asc_core::ledger::LedgerId;

use crate::platform::{Platform, SqlValue};

pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS asc_ledger (
        id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        state TEXT NOT NULL
    )",
    // Usage rollups (analytics), one row per ledger and hourly bucket `h<start>:<key>`: kept out
    // of the ledger's row, which every operation rewrites.
    "CREATE TABLE IF NOT EXISTS asc_rollups (
        ledger TEXT NOT NULL,
        bucket TEXT NOT NULL,
        groups TEXT NOT NULL,
        PRIMARY KEY (ledger, bucket)
    )",
];

/// Hourly rollups are kept this long on Spin (the Durable Object folds them into days instead).
const ROLLUP_KEEP_MS: u64 = 400 * asc_core::ledger::insights::DAY_MS;

pub struct SqlLedgers<'p, P>(pub &'p P);

/// At most this many states (and rows' last lost races) are kept per instance, then all are
/// dropped: a busy ledger's row is ~12 KB at 16 requests in flight and grows with a backlog, so
/// this bounds the instance's memory for them.
const KEPT_MAX: usize = 64;

/// A kept state: its version and the state (a ledger, a circuit board, an admin store).
type Kept = (u64, Box<dyn Any>);

/// How long after a lost race an instance takes the lock first on that row.
const CONTENDED_FOR_MS: u64 = 1_000;

thread_local! {
    /// When this instance last lost a race on each row (see `contention_expected`).
    static LOST_AT: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
    /// The states this instance last stored or read, by row id, with their versions (see
    /// `LedgerStore::take_kept`): while no other instance wrote the row since, an operation skips
    /// reading and parsing a row that holds the ledger's open requests and unforwarded records.
    static KEPT: RefCell<HashMap<String, Kept>> = RefCell::new(HashMap::new());
}

impl<P: Platform> LedgerStore for SqlLedgers<'_, P> {
    fn take_kept<T: 'static>(&self, id: &LedgerId) -> Option<(u64, T)> {
        let (version, state) = KEPT.with(|kept| kept.borrow_mut().remove(id.as_str()))?;
        Some((version, *state.downcast::<T>().ok()?))
    }

    /// For `CONTENDED_FOR_MS` after this instance lost a race on `id`, its operations on `id`
    /// take SQLite's write lock before reading: a lost race costs a re-read and re-parse of
    /// the row, a pause and a locked re-run, which under load cost more than the lock.
    fn contention_expected(&self, id: &LedgerId) -> bool {
        let now = self.0.now_ms();
        LOST_AT.with(|lost_at| {
            lost_at
                .borrow()
                .get(id.as_str())
                .is_some_and(|at| now.saturating_sub(*at) < CONTENDED_FOR_MS)
        })
    }

    fn remember<T: 'static>(&self, id: &LedgerId, stored: Option<(u64, T)>) {
        KEPT.with(|kept| {
            let mut kept = kept.borrow_mut();
            match stored {
                Some((version, state)) => {
                    if kept.len() >= KEPT_MAX && !kept.contains_key(id.as_str()) {
                        kept.clear();
                    }
                    kept.insert(id.as_str().to_string(), (version, Box::new(state)));
                }
                None => {
                    kept.remove(id.as_str());
                }
            }
        });
    }

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

    async fn load_unless(&self, id: &LedgerId, version: u64) -> Result<Loaded, HostError> {
        let rows = self
            .0
            .sql(
                "SELECT version, CASE WHEN version = ?2 THEN NULL ELSE state END
                 FROM asc_ledger WHERE id = ?1",
                &[id.as_str().into(), version.into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(Loaded::Row(None));
        };
        match (row.first().and_then(SqlValue::as_u64), row.get(1)) {
            (Some(v), Some(SqlValue::Null)) if v == version => Ok(Loaded::Unchanged),
            (Some(version), Some(SqlValue::Text(json))) => Ok(Loaded::Row(Some(StoredLedger {
                version,
                json: json.clone(),
            }))),
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

    /// Adds the deltas into their buckets under SQLite's write lock (read, add, write), and drops
    /// buckets past the retention. Without interactive transactions (another backend) two
    /// instances adding to one bucket at once could lose one's counts: analytics only.
    async fn merge_rollups(
        &self,
        id: &LedgerId,
        deltas: Vec<(String, Vec<Rollup>)>,
    ) -> Result<(), HostError> {
        let locked = self.0.sql("BEGIN IMMEDIATE", &[]).await.is_ok();
        let merged = async {
            let mut newest = 0u64;
            for (bucket, delta) in deltas {
                let rows = self
                    .0
                    .sql(
                        "SELECT groups FROM asc_rollups WHERE ledger = ?1 AND bucket = ?2",
                        &[id.as_str().into(), bucket.as_str().into()],
                    )
                    .await?;
                let mut groups: Vec<Rollup> = match rows.first().and_then(|r| r.first()) {
                    Some(v) => serde_json::from_str(v.as_str().unwrap_or("[]"))
                        .map_err(|e| HostError::Store(format!("rollup {bucket}: {e}")))?,
                    None => Vec::new(),
                };
                merge_groups(&mut groups, delta);
                let json = asc_core::json_ser::to_string(&groups)
                    .map_err(|e| HostError::Store(e.to_string()))?;
                self.0
                    .sql(
                        "INSERT INTO asc_rollups (ledger, bucket, groups) VALUES (?1, ?2, ?3)
                         ON CONFLICT (ledger, bucket) DO UPDATE SET groups = excluded.groups",
                        &[id.as_str().into(), bucket.as_str().into(), json.into()],
                    )
                    .await?;
                let start = bucket
                    .get(1..14)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                newest = newest.max(start);
            }
            let cutoff = hour_bucket_floor(newest.saturating_sub(ROLLUP_KEEP_MS));
            self.0
                .sql(
                    "DELETE FROM asc_rollups WHERE ledger = ?1 AND bucket < ?2",
                    &[id.as_str().into(), cutoff.into()],
                )
                .await?;
            Ok::<(), HostError>(())
        }
        .await;
        if locked {
            let end = if merged.is_ok() { "COMMIT" } else { "ROLLBACK" };
            if self.0.sql(end, &[]).await.is_err() {
                let _ = self.0.sql("ROLLBACK", &[]).await;
            }
        }
        merged
    }

    async fn load_rollups(
        &self,
        id: &LedgerId,
        from_name: &str,
        to_name: &str,
    ) -> Result<Vec<(String, String)>, HostError> {
        let rows = self
            .0
            .sql(
                "SELECT bucket, groups FROM asc_rollups
                 WHERE ledger = ?1 AND bucket >= ?2 AND bucket < ?3",
                &[id.as_str().into(), from_name.into(), to_name.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some((
                    r.first()?.as_str()?.to_string(),
                    r.get(1)?.as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// Instances race for real here: wait a random 1..=2^lost ms (at most 64) before re-running,
    /// so the losers spread out instead of colliding again. The loss is remembered (see
    /// `contention_expected`).
    async fn contended(&self, id: &LedgerId, lost: usize) {
        let now = self.0.now_ms();
        LOST_AT.with(|lost_at| {
            let mut lost_at = lost_at.borrow_mut();
            if lost_at.len() >= KEPT_MAX && !lost_at.contains_key(id.as_str()) {
                lost_at.clear();
            }
            lost_at.insert(id.as_str().to_string(), now);
        });
        let cap = 1u64 << lost.min(6);
        let mut r = [0u8; 8];
        self.0.fill_random(&mut r);
        self.0.sleep(1 + u64::from_le_bytes(r) % cap).await;
    }
}
